"""Real TFLite models that ship inside PyPI packages (installed by ``make install``, never downloaded
at run time): keyword spotting from ``pymicro-wakeword`` and the sine model from ``tflite-micro``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def keyword_spotting_model(name: str = "okay_nabu") -> Path:
    """A micro-wakeword streaming keyword-spotting model (int8 features in, uint8 probability out)."""
    return Path(str(files("pymicro_wakeword") / "models" / f"{name}.tflite"))


def sine_model() -> Path:
    """TFLite Micro's hello-world model: one float in, sin(x) (approximately) out."""
    return Path(str(files("tflite_micro") / "python" / "tflite_micro" / "sine_float.tflite"))
