"""What ``edge-os list`` shows for each name."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge_os.errors import PackageError
from edge_os.package.manifest import MANIFEST, Manifest
from edge_os.store.store import Store


@dataclass(frozen=True)
class ModelRow:
    name: str  # NAME:TAG
    package: str  # the package directory
    architecture: str
    parameters: int  # counted from the config (weights of the float model)
    quantization: str
    size_bytes: int  # package files; files shared with another name are counted for each
    target: str
    last_used: float | None  # epoch seconds, None: never used since it was pulled
    pulled: float

    def to_json(self) -> dict:
        return asdict(self)


def parameter_count(config: dict) -> int:
    """Parameters of a Llama-shaped decoder from its config (Qwen2's q/k/v biases included)."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    attention = h * heads * d * 2 + h * kv * d * 2
    if config.get("attention_bias"):
        attention += (heads + 2 * kv) * d
    layer = attention + 3 * h * inter + 2 * h
    embeddings = config["vocab_size"] * h * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + config["num_hidden_layers"] * layer + h


def _quantization(quantization: dict) -> str:
    """The scheme and the format most weights have: ``auto (q4_1)``."""
    from collections import Counter

    formats = Counter(quantization.get("tensors", {}).values()).most_common(1)
    scheme = quantization.get("scheme", "?")
    return f"{scheme} ({formats[0][0]})" if formats else scheme


def list_models(store: Store) -> list[ModelRow]:
    """One row per name, sorted by name; a name whose package cannot be read says so in its row."""
    rows = []
    for ref in store.refs():
        package = store.package_dir(ref)
        try:
            m = Manifest.read(package)
            size = sum(f["size"] for f in m.files.values()) + (package / MANIFEST).stat().st_size
            rows.append(ModelRow(str(ref.name), str(package), m.architecture, parameter_count(m.config),
                                 _quantization(m.quantization), size, m.target.name,
                                 store.last_used(ref.name), ref.pulled))
        except (PackageError, KeyError, OSError) as exc:
            rows.append(ModelRow(str(ref.name), str(package), f"unreadable ({exc})", 0, "?", 0, "?", None,
                                 ref.pulled))
    return rows
