"""edge-os: run real LLMs on edge devices under memory and thermal budgets.

```python
from edge_os import Engine

engine = Engine.load("pkgs/smollm2")
print(engine.complete("Name a herb that likes shade.", max_tokens=32, temperature=0))
print(engine.chat([{"role": "user", "content": "Is 7 C too cold for basil?"}], max_tokens=64).content)
```

The engine and request types load on first use, so ``import edge_os`` stays light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "edge_os.runtime.engine",
    "ChatSession": "edge_os.runtime.engine",
    "GenerationRequest": "edge_os.runtime.request",
    "SamplingParams": "edge_os.runtime.request",
    "OutputConstraint": "edge_os.runtime.request",
    "Priority": "edge_os.runtime.request",
    "TextDelta": "edge_os.runtime.request",
    "Finished": "edge_os.runtime.request",
    "Refused": "edge_os.runtime.request",
    "FinishReason": "edge_os.runtime.request",
    "ChatReply": "edge_os.runtime.tools",
    "ToolCall": "edge_os.runtime.tools",
}
__all__ = [
    "ChatReply",
    "ChatSession",
    "Engine",
    "FinishReason",
    "Finished",
    "GenerationRequest",
    "OutputConstraint",
    "Priority",
    "Refused",
    "SamplingParams",
    "TextDelta",
    "ToolCall",
    "__version__",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edge_os' has no attribute {name!r}")
