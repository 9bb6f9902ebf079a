"""Inference requests for a TFLite model over MQTT (JSON arrays or base64), on a real broker."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from edge_os.package.tflite import load_model, pack_tflite
from tests.integration.mqtt_harness import Requester
from tests.tflite_models import keyword_spotting_model
from tests.waiting import wait_until

TOPIC = "edge-os/real/req"


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    return pack_tflite(keyword_spotting_model(), tmp_path_factory.mktemp("kws") / "kws", name="kws")


def answer(requester: Requester, correlation: bytes) -> dict:
    return wait_until(lambda: next(iter(requester.answers(correlation)), None), 20, what="an answer")


def frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 127, size=(1, 3, 40), endpoint=True).astype(np.int8)


def test_json_and_base64_requests_get_the_interpreters_outputs(serve_with_mqtt, requester, kws):
    serve_with_mqtt(kws)
    _, model = load_model(kws)
    x, y = frames(1), frames(2)
    requester.ask({"model": "kws", "inputs": x.tolist()}, b"json", topic=TOPIC)
    b64 = {"dtype": "int8", "shape": [1, 3, 40], "b64": base64.b64encode(y.tobytes()).decode()}
    requester.ask({"model": "kws", "inputs": {"serving_default_input_audio:0": b64}, "output_encoding": "base64"},
                  b"b64", topic=TOPIC)
    (name, want_x), = model.run(x).items()
    (_, want_y), = model.run(y).items()
    got = answer(requester, b"json")
    assert got["type"] == "result" and got["served_by"] == "local", got
    assert got["outputs"][name]["dtype"] == "uint8"
    np.testing.assert_array_equal(np.array(got["outputs"][name]["data"], np.uint8), want_x)
    out = answer(requester, b"b64")["outputs"][name]
    decoded = np.frombuffer(base64.b64decode(out["b64"]), np.dtype(out["dtype"])).reshape(out["shape"])
    np.testing.assert_array_equal(decoded, want_y)


@pytest.mark.parametrize("inputs, fragment", [
    (np.zeros((1, 3, 41)).tolist(), "shape [1, 3, 40]"),
    (np.full((1, 3, 40), 300).tolist(), "whole numbers from -128 to 127"),
    ({"dtype": "int8", "shape": [1, 3, 40], "b64": "AAAA"}, "needs 120"),
    ({"nope": np.zeros((1, 3, 40)).tolist()}, "no input named 'nope'"),
    ([[1, 2], [3]], "ragged"),
])
def test_a_bad_input_gets_a_one_line_error_and_the_model_keeps_serving(serve_with_mqtt, requester, kws, inputs,
                                                                       fragment):
    serve_with_mqtt(kws)
    requester.ask({"model": "kws", "inputs": inputs}, b"bad", topic=TOPIC)
    error = answer(requester, b"bad")
    assert error["type"] == "error" and error["code"] == "invalid_request" and fragment in error["message"], error
    assert "\n" not in error["message"]
    requester.ask({"model": "kws", "inputs": frames(3).tolist()}, b"after", topic=TOPIC)
    assert answer(requester, b"after")["type"] == "result"
