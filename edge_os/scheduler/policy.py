"""Memory policy: pure functions from a snapshot of the table to a decision. No I/O, no clocks.

Everything is in bytes. What edge-os *accounts* for a model is its weights and workspace while
it is loaded, plus the KV pages reserved for each request it serves (the request's worst case:
prompt bound plus ``max_tokens``, capped at the context window, rounded up to 16-token pages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge_os.runtime.kv_pool import PAGE_TOKENS
from edge_os.runtime.request import GenerationRequest
from edge_os.scheduler.probes.memory import MemoryReading
from edge_os.scheduler.sizes import format_size


def round_to_pages(tokens: int) -> int:
    """``tokens`` rounded up to whole KV pages."""
    return -(-tokens // PAGE_TOKENS) * PAGE_TOKENS


def prompt_token_bound(request: GenerationRequest) -> int:
    """An upper bound on the prompt's tokens before tokenizing: its UTF-8 bytes.

    Byte-level tokenizers never emit more tokens than bytes; the chat template's own tokens are
    covered separately by an allowance.
    """
    texts = [request.prompt] if request.prompt is not None else [m["content"] for m in request.messages]
    return sum(len(t.encode("utf-8")) for t in texts)


def request_kv_tokens(request: GenerationRequest, context_length: int, template_allowance: int) -> int:
    """KV tokens to reserve for ``request``: its worst case, capped at the context window, in pages."""
    worst = prompt_token_bound(request) + template_allowance + request.max_tokens
    return round_to_pages(min(context_length, worst))


@dataclass(frozen=True)
class MemoryState:
    """The budget and what fills it.

    ``device`` is the host-memory reading when models draw from host memory (CPU targets and
    unified-memory boards such as Jetson); it is None for a discrete accelerator, whose memory only
    the budget describes. Our own loaded models are already *inside* ``MemAvailable``, so they are
    counted once: against the budget, never again against the device (ollama#16719).
    ``unbacked`` is what is accounted but not yet allocated (reserved KV pages not yet filled);
    it will come out of ``MemAvailable`` later, so it is held back from it now. ``reserve`` is
    what the device keeps free for everything else: below it, idle models are unloaded.
    """

    budget: int
    accounted: int
    device: MemoryReading | None = None
    unbacked: int = 0
    reserve: int = 0

    @property
    def ceiling(self) -> int:
        """The most edge-os could ever hold: the budget, and never more than the device has."""
        if self.device is None:
            return self.budget
        return min(self.budget, self.device.total_bytes - self.reserve)

    @property
    def headroom(self) -> int:
        """Bytes that may be newly accounted right now (negative: the device is short)."""
        by_budget = self.budget - self.accounted
        if self.device is None:
            return by_budget
        return min(by_budget, self.device.available_bytes - self.unbacked - self.reserve)


@dataclass(frozen=True)
class ModelView:
    """What the policy needs to know about one loaded model."""

    name: str
    resident: int  # weights + workspace
    kv: int  # KV pages reserved by its running requests
    active: int  # requests running on it
    pinned: bool
    last_used: float
    keep_alive_s: float

    @property
    def bytes(self) -> int:
        return self.resident + self.kv


@dataclass(frozen=True)
class Admit:
    """Start now, after unloading ``evict`` (idle models, least recently used first)."""

    evict: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Not now. ``drain`` lists busy models that must finish their requests and take no new ones."""

    reason: str
    drain: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refuse:
    """Never: it cannot fit even with every unpinned model unloaded. Nothing is evicted."""

    code: str
    reason: str


def lru_victims(shortfall: int, models: Iterable[ModelView]) -> tuple[tuple[str, ...], int]:
    """Idle, unpinned models in least-recently-used order until ``shortfall`` bytes are freed.

    Returns the names and the bytes they free; the bytes may fall short when too few are idle.
    """
    victims, freed = [], 0
    for model in sorted((m for m in models if m.active == 0 and not m.pinned), key=lambda m: m.last_used):
        if freed >= shortfall:
            break
        victims.append(model.name)
        freed += model.bytes
    return tuple(victims), freed


def plan_memory(
    what: str, request_bytes: int, model_bytes: int, loaded: bool, mem: MemoryState, others: list[ModelView]
) -> Admit | Wait | Refuse:
    """Decide whether a request of ``request_bytes`` KV on a model of ``model_bytes`` can start.

    ``others`` are the loaded models other than the request's own. The never-fits test comes
    first and evicts nothing, so a model that can never fit cannot start an evict/reload loop
    (ollama#18282). Eviction is all-or-nothing: if unloading every idle model is not enough,
    nothing is unloaded now and the request waits for busy models to drain.
    """
    pinned = sum(m.resident for m in others if m.pinned)
    ceiling = mem.ceiling - pinned
    if request_bytes + model_bytes > ceiling:
        return Refuse(
            "over_memory",
            f"{what} needs {format_size(request_bytes + model_bytes)} but at most {format_size(ceiling)} "
            f"can ever be free for it (budget {format_size(mem.ceiling)}, pinned {format_size(pinned)})",
        )
    need = request_bytes + (0 if loaded else model_bytes)
    shortfall = need - mem.headroom
    if shortfall <= 0:
        return Admit()
    victims, freed = lru_victims(shortfall, others)
    if freed >= shortfall:
        return Admit(evict=victims)
    busy = sorted((m for m in others if m.active > 0 and not m.pinned), key=lambda m: m.last_used)
    drain, still = [], shortfall - freed
    for model in busy:
        if still <= 0:
            break
        drain.append(model.name)
        still -= model.bytes
    holder = f"busy models {', '.join(drain)} finish" if drain else "other programs free memory"
    return Wait(f"{what} needs {format_size(shortfall)} more; waiting until {holder}", tuple(drain))


def keep_alive_expired(models: Iterable[ModelView], now: float) -> tuple[str, ...]:
    """Idle, unpinned models whose keep-alive ran out."""
    return tuple(
        m.name for m in models if m.active == 0 and not m.pinned and now - m.last_used >= m.keep_alive_s
    )


def pressure_victims(mem: MemoryState, models: Iterable[ModelView]) -> tuple[str, ...]:
    """Idle models to unload when other programs squeezed the device below what we hold."""
    if mem.headroom >= 0:
        return ()
    return lru_victims(-mem.headroom, models)[0]
