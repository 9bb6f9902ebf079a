"""Shared fixtures: tiny packed models (built once per test session) and the default model.

Every test runs with ``EDGE_OS_HOME`` in a temporary directory made for the session (removed at
its end), so the suite never writes to the user's ``~/.cache/edge-os``; the real default model is
packed there once per session.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from tests.tiny_model import write_hf_folder


@pytest.fixture(scope="session", autouse=True)
def _session_home():
    home = tempfile.mkdtemp(prefix="edge-os-test-home-")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_OS_HOME", home)
        yield home
    shutil.rmtree(home, ignore_errors=True)


def _pack(source, out, quant="auto", activations="int16", kv_dtype="auto"):
    from edge_os.package.pack import PackOptions, pack

    return pack(PackOptions(source, out, quant=quant, force=True, progress=False, activations=activations,
                            kv_dtype=kv_dtype))


@pytest.fixture(scope="session")
def tiny_hf_folder(tmp_path_factory):
    return write_hf_folder(tmp_path_factory.mktemp("tiny-hf"), seed=0)


@pytest.fixture(scope="session")
def tiny_package_factory(tmp_path_factory, tiny_hf_folder):
    """``make(quant="q4f32", seed=0, activations="int16", kv_dtype="auto", **config_overrides) ->
    package dir``, cached per arguments. ``activations`` is the decode kernels' rounding (pack's
    default is int16; float32 makes decode equal to prefill up to float rounding); ``kv_dtype="float32"``
    for tests that need float32 exactness (the default is the target's choice, float16 on x86-64
    with F16C)."""
    cache = {}

    def make(quant: str = "q4f32", seed: int = 0, activations: str = "int16", kv_dtype: str = "auto", **overrides):
        key = (quant, seed, activations, kv_dtype, repr(sorted(overrides.items())))
        if key not in cache:
            folder = tiny_hf_folder if (seed, overrides) == (0, {}) else write_hf_folder(
                tmp_path_factory.mktemp("tiny-hf"), seed=seed, **overrides)
            cache[key] = _pack(folder, tmp_path_factory.mktemp("pkg") / f"tiny-{quant}-{activations}-{kv_dtype}",
                               quant, activations, kv_dtype)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_package(tiny_package_factory):
    """The tiny Llama packed as q4f32: the default small model for engine and front-door tests."""
    return tiny_package_factory("q4f32")


@pytest.fixture(scope="session")
def default_package(_session_home):
    """The bundled SmolLM2-135M packed for this machine into the session's EDGE_OS_HOME (slow:
    packs once per session)."""
    from edge_os.default_model import default_package as pack_default

    return pack_default(progress=False)


# Hypothesis checks properties, not speed: on a shared, loaded machine its per-example deadline and
# "data generation is slow" health check fail tests whose properties hold, so the default profile
# drops both. `pytest --hypothesis-profile=fuzz tests/unit/test_fuzz_readers.py` runs the fuzz targets long.
from hypothesis import HealthCheck as _HealthCheck  # noqa: E402
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("default", deadline=None, suppress_health_check=[_HealthCheck.too_slow])
_hypothesis_settings.register_profile("fuzz", max_examples=5_000, deadline=None)
_hypothesis_settings.load_profile("default")
