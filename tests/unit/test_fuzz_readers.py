"""Fuzz targets for the two readers of untrusted files: the GGUF importer and the manifest reader.

Whatever the bytes, a reader either accepts the input or raises its one-line error
(``ModelSourceError`` / ``PackageError``); any other exception is a bug. The normal suite runs a
few examples; run longer with the ``fuzz`` profile (registered in tests/conftest.py):

    .venv/bin/python -m pytest tests/unit/test_fuzz_readers.py --hypothesis-profile=fuzz
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_os.convert.importers import open_source
from edge_os.errors import ModelSourceError, PackageError
from edge_os.models.registry import get_architecture
from edge_os.package.checks import is_plain_relative
from edge_os.package.manifest import Manifest
from tests.gguf_craft import ARR, BOOL, F32, I32, STR, U32, U64, gguf_bytes, tiny_metadata, tiny_tensors
from tests.manifests import BASE_MANIFEST

# A few examples in the normal suite; the fuzz profile's count when it is selected.
EXAMPLES = settings.default.max_examples if settings.default.max_examples > 1000 else 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

BASE_GGUF = gguf_bytes(tiny_metadata(), tiny_tensors())
HEADER_LEN = BASE_GGUF.index(b"token_embd.weight") + 200  # metadata and tensor infos


def _read_gguf(data: bytes) -> None:
    """Everything pack does with a source before compiling; only ModelSourceError may escape."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.gguf"
        path.write_bytes(data)
        try:
            source = open_source(path)
            arch = get_architecture(source.architecture)
            config = arch.config_from_hf(source.hf_config)
            arch.check_shapes(path, config, {t.name: t.shape for t in source.tensors()})
        except ModelSourceError as exc:
            assert "\n" not in str(exc)


def test_the_base_gguf_reads():
    _read_gguf(BASE_GGUF)
    assert open_source  # the base is valid: mutations below start from a file that gets all the way


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, HEADER_LEN - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.none() | st.integers(0, len(BASE_GGUF)))
@example(flips=[(28, 6)], cut=None)  # a first key 24 GiB long: the header reader once asked for all of it
def test_gguf_reader_with_flipped_bytes(flips, cut):
    data = bytearray(BASE_GGUF)
    for at, value in flips:
        data[at] = value
    _read_gguf(bytes(data[:cut]))


def _both_header_readers(data: bytes) -> None:
    """The quick architecture look and the full header scan are one reader: whenever the scan
    accepts a header, the quick look found the same architecture (and neither raises otherwise)."""
    import gguf

    from edge_os.convert.gguf import header_architecture
    from edge_os.convert.gguf_header import scan_gguf_header

    sizes = {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.gguf"
        path.write_bytes(data)
        quick = header_architecture(path)
        try:
            summary = scan_gguf_header(path, sizes)
        except ModelSourceError as exc:
            assert "\n" not in str(exc)
            return
        assert quick == summary.architecture


def test_the_header_readers_agree_on_the_base_gguf():
    _both_header_readers(BASE_GGUF)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, HEADER_LEN - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.none() | st.integers(0, len(BASE_GGUF)))
@example(flips=[(28, 6)], cut=None)
def test_the_header_readers_agree_with_flipped_bytes(flips, cut):
    data = bytearray(BASE_GGUF)
    for at, value in flips:
        data[at] = value
    _both_header_readers(bytes(data[:cut]))


_SCALAR_VALUES = st.one_of(
    st.tuples(st.just(U32), st.integers(0, 2**32 - 1)), st.tuples(st.just(I32), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just(U64), st.integers(0, 2**64 - 1)), st.tuples(st.just(F32), st.floats(width=32)),
    st.tuples(st.just(BOOL), st.booleans()), st.tuples(st.just(STR), st.text(max_size=40)),
)
_VALUES = _SCALAR_VALUES | st.tuples(st.just(ARR), st.one_of(
    st.tuples(st.just(STR), st.lists(st.text(max_size=8), max_size=20), st.none() | st.integers(0, 2**40)),
    st.tuples(st.just(I32), st.lists(st.integers(-5, 5), max_size=300), st.none()),
))
_KEYS = [key.replace(".", "__") for key, _, _ in tiny_metadata()] + ["llama__attention__key_length",
                                                                       "tokenizer__ggml__scores"]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(_KEYS), st.none() | _VALUES, min_size=1, max_size=4))
def test_gguf_reader_with_changed_metadata(changes):
    _read_gguf(gguf_bytes(tiny_metadata(**changes), tiny_tensors()))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every (path of keys/indexes) inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


_MANIFEST_PATHS = [p for p in _paths(BASE_MANIFEST) if p]


def _read_manifest(text: str) -> None:
    try:
        manifest = Manifest.from_json(text)
    except PackageError as exc:
        assert "\n" not in str(exc)
        return
    # Accepted: then everything it names stays inside the package.
    named = [manifest.library, manifest.tokenizer["file"], *(p.shard for p in manifest.params), *manifest.files]
    assert all(is_plain_relative(rel) for rel in named), named
    assert 1 <= manifest.context_length <= 1 << 24


def test_the_base_manifest_reads():
    assert Manifest.from_json(json.dumps(BASE_MANIFEST)).library == "model.so"


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(_MANIFEST_PATHS), st.none() | _JSON, st.booleans()),
                      min_size=1, max_size=4))
def test_manifest_reader_with_changed_fields(edits):
    data = copy.deepcopy(BASE_MANIFEST)
    for path, value, delete in edits:
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    _read_manifest(json.dumps(data))


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 2000), st.characters()), min_size=1, max_size=6))
def test_manifest_reader_with_changed_characters(flips):
    text = list(json.dumps(BASE_MANIFEST))
    for at, char in flips:
        text[at % len(text)] = char
    _read_manifest("".join(text))


@pytest.mark.parametrize("depth", [10, 1000, 100_000])
def test_deep_nesting_is_a_package_error(depth):
    text = '{"schema_version": 1, "name": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(PackageError):
        Manifest.from_json(text)
