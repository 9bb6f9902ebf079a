"""Shared fixtures: tiny packed models (built once per test session) and the default model."""

from __future__ import annotations

import pytest

from tests.tiny_model import write_hf_folder


def _pack(source, out, quant="auto", activations="int16"):
    from edge_os.package.pack import PackOptions, pack

    return pack(PackOptions(source, out, quant=quant, force=True, progress=False, activations=activations))


@pytest.fixture(scope="session")
def tiny_hf_folder(tmp_path_factory):
    return write_hf_folder(tmp_path_factory.mktemp("tiny-hf"), seed=0)


@pytest.fixture(scope="session")
def tiny_package_factory(tmp_path_factory, tiny_hf_folder):
    """``make(quant="q4f32", seed=0, activations="int16", **config_overrides) -> package dir``,
    cached per arguments. ``activations`` is the decode kernels' rounding (pack's default is int16;
    float32 makes decode equal to prefill up to float rounding)."""
    cache = {}

    def make(quant: str = "q4f32", seed: int = 0, activations: str = "int16", **overrides):
        key = (quant, seed, activations, repr(sorted(overrides.items())))
        if key not in cache:
            folder = tiny_hf_folder if (seed, overrides) == (0, {}) else write_hf_folder(
                tmp_path_factory.mktemp("tiny-hf"), seed=seed, **overrides)
            cache[key] = _pack(folder, tmp_path_factory.mktemp("pkg") / f"tiny-{quant}", quant, activations)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_package(tiny_package_factory):
    """The tiny Llama packed as q4f32: the default small model for engine and front-door tests."""
    return tiny_package_factory("q4f32")


@pytest.fixture(scope="session")
def default_package(tmp_path_factory):
    """The bundled SmolLM2-135M packed for this machine (slow: packs once per session)."""
    from edge_os.default_model import default_package as pack_default

    return pack_default(progress=False)
