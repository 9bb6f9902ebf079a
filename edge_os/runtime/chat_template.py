"""Renders chat messages with the model's own Jinja2 template, in a bounded sandbox.

Templates come from model files, so they run in Jinja2's immutable sandbox (no attribute access to
Python internals, no mutation of the messages) with bounds on top, so that no template can hang
or exhaust the device: ``range`` is short, ``lipsum`` is gone, string and list repetition,
concatenation, padding and replacement are capped, the output is capped, and a watchdog stops a
render that runs longer than ``RENDER_SECONDS`` (it raises in the rendering thread, so pure-Python
loops of any shape stop). Every failure is an ``InputError`` with one line.
"""

from __future__ import annotations

import ctypes
import json
import re
import threading
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge_os.errors import InputError

# ChatML, for models that ship no template.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

RENDER_SECONDS = 2.0  # a real chat template renders in well under a millisecond
MAX_RANGE = 10_000  # items one range() may produce
MAX_TEXT = 1 << 18  # characters of template-made text, on top of what the messages bring
MAX_INT_ARG = 100_000  # largest number a template may pass to a function or filter (widths, counts)
MAX_INT_BITS = 4096
_WIDE_FORMAT = re.compile(r"[%:.{][^a-zA-Z%}]*\d{6,}")  # a printf/format width of a million or more

# Conversations every template is tried on once, at pack time.
SAMPLE_CONVERSATIONS: tuple[tuple[dict, ...], ...] = (
    ({"role": "user", "content": "Hello!"},),
    ({"role": "system", "content": "You are brief."}, {"role": "user", "content": "What is 2+2?"}),
    ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
     {"role": "user", "content": "Name a colour."}),
)


class TemplateLimit(Exception):
    """A bound of the sandbox was hit (size, range, number)."""


class _RenderTimeout(BaseException):
    """Raised inside the rendering thread by the watchdog (a BaseException so no template-level
    ``except Exception`` can swallow it)."""


def _raise(message: str):
    from jinja2 import TemplateError

    raise TemplateError(message)


def range_(*args: int) -> range:
    """``range`` for templates: at most ``MAX_RANGE`` items."""
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(r)} items (at most {MAX_RANGE})")
    return r


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with size bounds on every operation that can make large values."""

    intercepted_binops = frozenset({"*", "+", "**", "%", "//"})

    def __init__(self, text_limit: int):
        super().__init__(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        self.text_limit = text_limit
        self.globals.pop("lipsum", None)
        self.globals["range"] = range_
        self.globals["raise_exception"] = _raise
        self.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False)
        for name, fn in list(self.filters.items()):
            self.filters[name] = self._bounded(name, fn)

    # -- checks --------------------------------------------------------------------------------
    def _size(self, value: Any, what: str) -> Any:
        if isinstance(value, (str, bytes, list, tuple)) and len(value) > self.text_limit:
            raise TemplateLimit(f"{what} made a value of {len(value)} items (at most {self.text_limit})")
        return value

    def _args(self, args: tuple, kwargs: dict, what: str) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT_ARG:
                raise TemplateLimit(f"{what} was given {value} (at most {MAX_INT_ARG})")

    def _replace_size(self, text: Any, old: Any, new: Any) -> None:
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            grows = (len(text) + 1 if old == "" else text.count(old)) * (len(new) - len(old))
            self._size_of(len(text) + max(grows, 0), "replace")

    def _size_of(self, n: int, what: str) -> None:
        if n > self.text_limit:
            raise TemplateLimit(f"{what} would make a value of {n} items (at most {self.text_limit})")

    def _bounded(self, name: str, fn):
        def call(*args, **kwargs):
            self._args(args[1:], kwargs, f"the filter {name}")
            if name == "format" and args and isinstance(args[0], str) and _WIDE_FORMAT.search(args[0]):
                raise TemplateLimit("a format with a width of a million or more")
            if name == "replace" and len(args) >= 3:
                self._replace_size(args[-3], args[-2], args[-1])
            return self._size(fn(*args, **kwargs), f"the filter {name}")

        for attr in ("jinja_pass_arg",):  # keep context/environment passing markers
            if hasattr(fn, attr):
                setattr(call, attr, getattr(fn, attr))
        return call

    # -- sandbox hooks -------------------------------------------------------------------------
    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    self._size_of(len(seq) * max(n, 0), "repetition with *")
            if isinstance(left, int) and isinstance(right, int):
                self._bits(left.bit_length() + right.bit_length())
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                self._size_of(len(left) + len(right), "concatenation with +")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int):
                self._bits(left.bit_length() * max(right, 0))
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise TemplateLimit("a % format with a width of a million or more")
        return super().call_binop(context, operator, left, right)

    @staticmethod
    def _bits(bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise TemplateLimit(f"a number of about {bits} bits (at most {MAX_INT_BITS})")

    def wrap_str_format(self, value: Any):
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and _WIDE_FORMAT.search(owner):
            raise TemplateLimit("a format with a width of a million or more")
        return super().wrap_str_format(value)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja2's own signature)
        owner = getattr(__obj, "__self__", None)
        what = getattr(__obj, "__name__", "a function").rstrip("_")
        __self._args(args, kwargs, what)
        if isinstance(owner, str):
            if what == "replace" and len(args) >= 2:
                __self._replace_size(owner, args[0], args[1])
        return __self._size(super().call(__context, __obj, *args, **kwargs), what)


class _Watchdog:
    """Raises ``_RenderTimeout`` in the calling thread if it is still armed after ``seconds``."""

    def __init__(self, seconds: float):
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._armed = True
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread),
                                                           ctypes.py_object(_RenderTimeout))

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


def _checkpoint() -> None:
    """A Python-level call: a pending asynchronous exception is raised at the latest here."""


class ChatTemplate:
    """A model's chat template, compiled once, rendered under the bounds above."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "",
                 seconds: float = RENDER_SECONDS):
        self.env = _BoundedSandbox(MAX_TEXT)
        self.seconds = seconds
        try:
            self.template = self.env.from_string(source or DEFAULT_TEMPLATE)
        except Exception as exc:  # TemplateSyntaxError, or a RecursionError from absurd nesting
            raise InputError(f"the model's chat template does not compile ({_first_line(exc)}); "
                             "fix the template and re-pack the model") from None
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages``; ``InputError`` if the template fails or hits a bound."""
        limit = MAX_TEXT + 4 * sum(len(m.get("content", "")) for m in messages if isinstance(m, dict))
        self.env.text_limit = limit
        variables = dict(messages=list(messages), add_generation_prompt=add_generation_prompt,
                         bos_token=self.bos_token, eos_token=self.eos_token)
        try:
            with _Watchdog(self.seconds):
                text = self._generate(variables, limit)
            _checkpoint()
        except _RenderTimeout:
            raise InputError(f"the model's chat template took longer than {self.seconds:g} s to render; "
                             "fix the template and re-pack the model") from None
        except TemplateLimit as exc:
            raise InputError(f"the model's chat template went over a limit: {exc}; fix the template and "
                             "re-pack the model") from None
        except Exception as exc:  # TemplateError, raise_exception(), or an error inside the template
            raise InputError(f"the model's chat template rejected the messages: {_first_line(exc)}") from None
        return text

    def _generate(self, variables: dict, limit: int) -> str:
        out, size = [], 0
        for chunk in self.template.generate(**variables):
            size += len(chunk)
            if size > limit:
                raise TemplateLimit(f"its output passed {limit} characters")
            out.append(chunk)
        return "".join(out)


def check_template(source: str | None, where: object) -> None:
    """Render ``source`` on sample conversations, as at pack time: a template that does not
    compile, hits a bound, or fails on a plain user message raises ``ModelSourceError``. (A
    template may refuse other samples on purpose, e.g. one without a system role.)"""
    from edge_os.errors import ModelSourceError

    try:
        template = ChatTemplate(source, "<s>", "</s>")
        for i, conversation in enumerate(SAMPLE_CONVERSATIONS):
            try:
                template.render(list(conversation))
            except InputError as exc:
                if i == 0 or "rejected the messages" not in str(exc):
                    raise
    except InputError as exc:
        raise ModelSourceError(f"{where}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
