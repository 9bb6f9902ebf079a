"""TFLite packages with real models from PyPI packages: pack, info, sign/verify, infer, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_os.errors import InputError, ModelSourceError, PackageError
from edge_os.package.tflite import load_model, pack_tflite, read_manifest
from edge_os.package.writer import sha256_file
from edge_os.runtime.tflite import interpreter_class
from tests.bounded_cli import assert_one_line_error, run_edge_os
from tests.tflite_models import keyword_spotting_model, sine_model


@pytest.fixture(scope="module")
def kws_package(tmp_path_factory) -> Path:
    return pack_tflite(keyword_spotting_model(), tmp_path_factory.mktemp("kws") / "kws", name="okay-nabu")


@pytest.fixture(scope="module")
def sine_package(tmp_path_factory) -> Path:
    return pack_tflite(sine_model(), tmp_path_factory.mktemp("sine") / "sine")


def direct_interpreter(model: Path):
    """The interpreter itself, driven the documented way (the oracle for ``infer``)."""
    cls, _ = interpreter_class()
    interp = cls(model_path=str(model))
    interp.allocate_tensors()
    return interp


def test_the_manifest_describes_tensors_quantization_arena_and_hashes_every_file(kws_package):
    m = read_manifest(kws_package)
    interp = direct_interpreter(keyword_spotting_model())
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert m.name == "okay-nabu" and m.kind == "tflite"
    assert [(t.name, list(t.shape), t.dtype) for t in m.inputs] == [(inp["name"], list(inp["shape"]),
                                                                      np.dtype(inp["dtype"]).name)]
    assert [(t.name, list(t.shape), t.dtype) for t in m.outputs] == [(out["name"], list(out["shape"]),
                                                                       np.dtype(out["dtype"]).name)]
    assert m.inputs[0].quantization["scale"] == pytest.approx(list(inp["quantization_parameters"]["scales"]))
    assert m.inputs[0].quantization["zero_point"] == list(inp["quantization_parameters"]["zero_points"])
    assert m.arena_bytes > 0 and m.model_bytes == keyword_spotting_model().stat().st_size
    assert m.interpreter == interpreter_class()[1]
    on_disk = {p.relative_to(kws_package).as_posix() for p in kws_package.rglob("*") if p.is_file()}
    assert set(m.files) == on_disk - {"manifest.json"}
    for rel, info in m.files.items():
        assert info["sha256"] == sha256_file(kws_package / rel)


def test_a_float_model_has_no_quantization(sine_package):
    m = read_manifest(sine_package)
    assert m.inputs[0].quantization is None and m.inputs[0].dtype == "float32"


@pytest.mark.parametrize("which", ["kws", "sine"])
def test_infer_equals_the_interpreter_on_the_same_input(which, kws_package, sine_package, tmp_path):
    package, source = (kws_package, keyword_spotting_model()) if which == "kws" else (sine_package, sine_model())
    interp = direct_interpreter(source)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    rng = np.random.default_rng(7)
    if np.dtype(inp["dtype"]).kind == "f":
        x = rng.uniform(0, 6, size=inp["shape"]).astype(inp["dtype"])
    else:
        info = np.iinfo(inp["dtype"])
        x = rng.integers(info.min, info.max, size=inp["shape"], endpoint=True).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    expected = interp.get_tensor(out["index"])
    np.save(tmp_path / "x.npy", x)
    result = run_edge_os("infer", "-m", str(package), "--input", str(tmp_path / "x.npy"), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    got = doc["outputs"][out["name"]]
    assert got["shape"] == list(expected.shape) and got["dtype"] == expected.dtype.name
    np.testing.assert_array_equal(np.array(got["data"], dtype=expected.dtype), expected)
    assert doc["interpreter"] == interpreter_class()[1]


def test_infer_reads_npy_from_stdin(sine_package, tmp_path):
    x = np.array([[1.5]], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    exe = Path(sys.executable).with_name("edge-os")
    proc = subprocess.run([str(exe), "infer", "-m", str(sine_package), "--input", "-", "--json"],
                          input=(tmp_path / "x.npy").read_bytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    _, model = load_model(sine_package)
    (name, want), = model.run(x).items()
    np.testing.assert_array_equal(np.array(json.loads(proc.stdout)["outputs"][name]["data"], np.float32), want)


def test_a_packed_tflite_package_signs_and_verifies_like_any_package(sine_package, tmp_path):
    key = tmp_path / "k"
    assert run_edge_os("keys", "generate", "--out", str(key)).returncode == 0
    assert run_edge_os("sign", str(sine_package), "--key", f"{key}.key").returncode == 0
    ok = run_edge_os("verify", str(sine_package), "--trust", f"{key}.pub")
    assert ok.returncode == 0, ok.stderr
    model = sine_package / "model.tflite"
    original = model.read_bytes()
    try:
        model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        bad = run_edge_os("verify", str(sine_package), "--trust", f"{key}.pub")
        assert bad.returncode != 0 and "model.tflite" in bad.stdout + bad.stderr
        with pytest.raises(PackageError, match="sha256"):
            load_model(sine_package)
    finally:
        model.write_bytes(original)


def test_info_says_which_interpreter_and_the_arena(kws_package):
    result = run_edge_os("info", str(kws_package), "--json", "--verify")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    m = read_manifest(kws_package)
    assert doc["interpreter"] == interpreter_class()[1] and doc["arena_bytes"] == m.arena_bytes
    assert doc["verified"] and doc["kind"] == "tflite"
    text = run_edge_os("info", str(kws_package))
    assert interpreter_class()[1] in text.stdout and "arena" in text.stdout


def test_pack_cli_writes_a_package(tmp_path):
    result = run_edge_os("pack", str(sine_model()), "--out", str(tmp_path / "p"))
    assert result.returncode == 0, result.stderr
    assert read_manifest(tmp_path / "p").outputs[0].dtype == "float32"


def test_a_file_that_is_not_a_flatbuffer_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"\x00" * 64)
    result = run_edge_os("pack", str(fake), "--out", str(tmp_path / "p"))
    assert_one_line_error(result, "not a TFLite model")
    assert not (tmp_path / "p").exists()
    with pytest.raises(ModelSourceError):
        pack_tflite(fake, tmp_path / "q")


def test_a_damaged_flatbuffer_is_refused_in_one_line(tmp_path):
    data = sine_model().read_bytes()
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(data[:8] + b"\xff" * (len(data) - 8))  # the identifier, then garbage
    result = run_edge_os("pack", str(broken), "--out", str(tmp_path / "p"))
    assert_one_line_error(result, "broken.tflite")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((1, 2), np.float32), "shape [1, 1]"),
    (np.zeros((1, 1), np.float64), "must be float32"),
])
def test_an_input_of_the_wrong_shape_or_dtype_is_refused_in_one_line(array, fragment, sine_package, tmp_path):
    np.save(tmp_path / "x.npy", array)
    assert_one_line_error(run_edge_os("infer", "-m", str(sine_package), "--input", str(tmp_path / "x.npy")), fragment)
    _, model = load_model(sine_package)
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        model.run(array)


def test_an_input_that_is_not_npy_is_refused_in_one_line(sine_package, tmp_path):
    (tmp_path / "x.npy").write_text("1.5\n")
    assert_one_line_error(run_edge_os("infer", "-m", str(sine_package), "--input", str(tmp_path / "x.npy")),
                          "not a .npy array")


def test_infer_refuses_a_language_model_package(tiny_package, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(1, np.float32))
    assert_one_line_error(run_edge_os("infer", "-m", str(tiny_package), "--input", str(tmp_path / "x.npy")),
                          "not a TFLite package")


def test_http_infer_equals_the_interpreter_and_refuses_bad_input(tmp_path, kws_package, tiny_package):
    import base64

    import httpx

    from tests.integration.http_service import HttpService

    svc = HttpService(tmp_path, [tiny_package, kws_package])
    try:
        _, model = load_model(kws_package)
        x = np.random.default_rng(5).integers(-128, 127, size=(1, 3, 40), endpoint=True).astype(np.int8)
        (name, want), = model.run(x).items()
        r = httpx.post(svc.url + "/v1/infer", json={"model": "okay-nabu", "inputs": x.tolist()}, timeout=60)
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.array(r.json()["outputs"][name]["data"], np.uint8), want)
        b64 = {"dtype": "int8", "shape": [1, 3, 40], "b64": base64.b64encode(x.tobytes()).decode()}
        r = httpx.post(svc.url + "/v1/infer", json={"model": "okay-nabu", "inputs": b64, "output_encoding": "base64"},
                       timeout=60)
        out = r.json()["outputs"][name]
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(out["b64"]), np.uint8).reshape(out["shape"]), want)
        bad = httpx.post(svc.url + "/v1/infer", json={"model": "okay-nabu", "inputs": x[:, :2].tolist()}, timeout=60)
        assert bad.status_code == 400 and "shape [1, 3, 40]" in bad.json()["error"]["message"]
        llm = json.loads((tiny_package / "manifest.json").read_text())["name"]
        wrong = httpx.post(svc.url + "/v1/infer", json={"model": llm, "inputs": x.tolist()}, timeout=60)
        assert wrong.status_code == 404 and "okay-nabu" in wrong.json()["error"]["message"]
        models = {m["id"] for m in httpx.get(svc.url + "/v1/models").json()["data"]}
        assert models == {llm, "okay-nabu"}
    finally:
        assert svc.stop() == 0
