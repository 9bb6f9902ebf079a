"""The TFLite engine: LiteRT's interpreter (``ai-edge-litert``), or ``tflite-runtime`` where only
that is installed, with the tensor arena measured when the interpreter allocates.

The arena is measured, not estimated: the bytes glibc's ``malloc`` holds (``mallinfo2``: in use
plus mmap'ed blocks) before the interpreter is built and after ``allocate_tensors``. The
interpreter's own copy of tensors, its op data and its arena all land there.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.metadata
import logging
import os
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass

import numpy as np

from edge_os.errors import InputError, ModelSourceError, PackageError

# (module with an ``Interpreter``, the PyPI distribution that provides it), in order of preference.
INTERPRETERS = (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime"))
FLATBUFFER_ID = b"TFL3"  # a TFLite flatbuffer's file identifier, bytes 4..8
_MALLOC_LOCK = threading.Lock()  # measurements of two loads at once would count each other
log = logging.getLogger(__name__)


def interpreter_class() -> tuple[type, str]:
    """The ``Interpreter`` class to use and what provides it (``ai-edge-litert 2.3.0``)."""
    for module, dist in INTERPRETERS:
        try:
            cls = importlib.import_module(module).Interpreter
        except ImportError:
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        return cls, f"{dist} {version}"
    raise PackageError("no TFLite interpreter is installed; pip install 'edge-os[tflite]' (ai-edge-litert) "
                       "or tflite-runtime")


def check_flatbuffer(data: bytes, where: str) -> None:
    """Raise ``ModelSourceError`` unless ``data`` looks like a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != FLATBUFFER_ID:
        raise ModelSourceError(f"{where} is not a TFLite model (no TFL3 flatbuffer identifier); "
                               "give a .tflite file written by a TFLite converter")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, shape, dtype and quantization (``None``: float tensor;
    else ``{"scale": [..], "zero_point": [..], "axis": n}``, one entry per channel or one in all)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: dict | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> TensorSpec:
        return cls(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data["dtype"]), data["quantization"])

    @classmethod
    def from_detail(cls, detail: dict) -> TensorSpec:
        params = detail.get("quantization_parameters") or {}
        scales = [float(s) for s in params.get("scales", ())]
        quant = None
        if scales:
            quant = {"scale": scales, "zero_point": [int(z) for z in params["zero_points"]],
                     "axis": int(params.get("quantized_dimension", 0))}
        return cls(str(detail["name"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name, quant)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _malloc_bytes() -> int | None:
    """Bytes malloc holds for the program (in use + mmap'ed), or None off glibc >= 2.33."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


@contextlib.contextmanager
def _library_chatter_to_log():
    """The interpreter's C++ library writes notes ("Created TensorFlow Lite XNNPACK delegate") to
    file descriptor 2 while it is built; they go to the debug log, not to the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read(1 << 16).decode("utf-8", "replace").splitlines():
                log.debug("interpreter: %s", line)


class TFLiteModel:
    """An allocated interpreter of one model; ``run`` checks its inputs and returns every output."""

    def __init__(self, model_bytes: bytes, threads: int = 1, where: str = "model"):
        check_flatbuffer(model_bytes, where)
        cls, self.interpreter_name = interpreter_class()
        self._model_bytes = model_bytes  # the interpreter reads the model from this buffer: keep it alive
        with _MALLOC_LOCK:
            before = _malloc_bytes()
            try:
                with _library_chatter_to_log():
                    self._interp = cls(model_content=model_bytes, num_threads=max(1, threads))
                    self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelSourceError(f"{where} cannot be loaded by {self.interpreter_name}: {first}") from None
            after = _malloc_bytes()
        self.arena_bytes = max(0, after - before) if before is not None and after is not None else 0
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = tuple(TensorSpec.from_detail(d) for d in self._in)
        self.outputs = tuple(TensorSpec.from_detail(d) for d in self._out)

    def check_inputs(self, inputs: np.ndarray | list | tuple | dict, cast: bool = False) -> list[np.ndarray]:
        """The arrays for each input in order, or ``InputError`` saying which is wrong and how.

        ``cast`` (numbers that came as JSON): an array of another dtype is converted to the input's
        when every value fits it (whole numbers in range for integer inputs)."""
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {s.name for s in self.inputs})
            if unknown:
                raise InputError(f"the model has no input named {unknown[0]!r}; its inputs are "
                                 f"{', '.join(s.name for s in self.inputs)}")
            missing = [s.name for s in self.inputs if s.name not in inputs]
            if missing:
                raise InputError(f"input {missing[0]!r} is missing")
            inputs = [inputs[s.name] for s in self.inputs]
        inputs = list(inputs)
        if len(inputs) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} input(s), got {len(inputs)}")
        arrays = []
        for spec, value in zip(self.inputs, inputs, strict=True):
            array = np.asarray(value)
            if cast:
                array = cast_exactly(array, spec.dtype, f"input {spec.name!r}")
            if array.dtype.name != spec.dtype:
                raise InputError(f"input {spec.name!r} must be {spec.dtype}, got {array.dtype.name}; "
                                 f"convert it (e.g. numpy .astype(np.{spec.dtype}))")
            if tuple(array.shape) != spec.shape:
                raise InputError(f"input {spec.name!r} must have shape {list(spec.shape)}, got {list(array.shape)}")
            arrays.append(np.ascontiguousarray(array))
        return arrays

    def run(self, inputs: np.ndarray | list | tuple | dict, cast: bool = False) -> dict[str, np.ndarray]:
        """Invoke once; every output by name (copies, safe to keep). ``cast``: see ``check_inputs``."""
        for detail, array in zip(self._in, self.check_inputs(inputs, cast), strict=True):
            self._interp.set_tensor(detail["index"], array)
        self._interp.invoke()
        return {spec.name: self._interp.get_tensor(d["index"]).copy() for spec, d in zip(self.outputs, self._out,
                                                                                        strict=True)}


def cast_exactly(array: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """``array`` as ``dtype``: floats round to a float input; an integer input takes only whole
    numbers in its range (``InputError`` otherwise, never a silent wrap-around)."""
    if array.dtype.name == dtype or array.dtype.kind not in "biuf":
        return array
    target = np.dtype(dtype)
    if target.kind == "f":
        return array.astype(target)
    if target.kind in "iu":
        info = np.iinfo(target)
        values = array.astype(np.float64)
        if not (np.all(np.mod(values, 1) == 0) and np.all(values >= info.min) and np.all(values <= info.max)):
            raise InputError(f"{where} must hold whole numbers from {info.min} to {info.max} for a {dtype} input")
        return array.astype(target)
    return array
