"""The `edge-os` command, run as a user runs it: real processes, real files, bad input included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

EDGE_OS = str(Path(sys.executable).parent / "edge-os")


def edge_os(*args, timeout=300, env=None):
    return subprocess.run([EDGE_OS, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("edge-os: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".")]


def test_generate_json_reports_text_usage_and_timings(tiny_package):
    result = edge_os("generate", "-m", tiny_package, "hello", "--max-tokens", "5", "--temperature", "0",
                     "--ignore-eos", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["finish_reason"] == "length"
    assert len(out["token_ids"]) == out["usage"]["completion_tokens"] == 5
    assert out["usage"]["prompt_tokens"] > 5
    assert set(out["timings"]) == {"load_s", "ttft_s", "prefill_tok_s", "decode_tok_s"}


def test_info_prints_memory_figures(tiny_package):
    result = edge_os("info", tiny_package, "--json", "--verify", "--ctx", "100")
    info = json.loads(result.stdout)
    assert info["memory_at_ctx"] == info["weight_bytes"] + info["workspace_bytes"] + 100 * info["kv_bytes_per_token"]
    assert info["verified"] is True
    assert (info["scale_dtype"], info["decode_activations"]) == ("float32", "int16")  # q4f32, pack's default


def test_truncated_gguf_is_refused_and_nothing_is_written(tmp_path):
    from tests.tiny_model import write_gguf

    good = tmp_path / "m.gguf"
    write_gguf(good)
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = edge_os("pack", bad, "--out", tmp_path / "pkg")
    assert_one_line_error(result, "truncated")
    assert not (tmp_path / "pkg").exists() and not leftovers(tmp_path)


def test_an_out_path_that_cannot_be_created_is_one_line(tmp_path, tiny_hf_folder):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_one_line_error(edge_os("pack", tiny_hf_folder, "--out", blocker / "pkg"), "cannot use", str(blocker))


def test_packing_the_default_model_where_it_cannot_be_stored_is_one_line(tmp_path):
    # generate packs the default model in a child `edge-os pack`; its error is the only one shown.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**os.environ, "EDGE_OS_HOME": str(blocker / "home")}
    result = edge_os("generate", "hi", env=env)
    assert_one_line_error(result, "packing the default model failed", "cannot use", str(blocker))


def test_garbage_file_is_refused(tmp_path):
    bad = tmp_path / "noise.gguf"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_one_line_error(edge_os("pack", bad, "--out", tmp_path / "pkg"), "not a readable GGUF")


def one_tensor_gguf(path: Path, architecture: str, embedding: np.ndarray) -> Path:
    """A GGUF file of ``architecture`` holding only ``token_embd.weight``."""
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tensor("token_embd.weight", embedding)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_unsupported_architecture_and_tensor_type_are_named(tmp_path):
    path = one_tensor_gguf(tmp_path / "gpt2.gguf", "gpt2", np.zeros((4, 32), np.float32))
    assert_one_line_error(edge_os("pack", path, "--out", tmp_path / "a"), "'gpt2' is not supported",
                          "supported: llama, qwen2, gemma3")

    path = one_tensor_gguf(tmp_path / "f64.gguf", "llama", np.zeros((4, 32), np.float64))
    assert_one_line_error(edge_os("pack", path, "--out", tmp_path / "b"), "type F64", "supported:")


def test_hf_folder_without_config_or_weights(tmp_path, tiny_hf_folder):
    no_config = shutil.copytree(tiny_hf_folder, tmp_path / "a")
    (no_config / "config.json").unlink()
    assert_one_line_error(edge_os("pack", no_config, "--out", tmp_path / "p1"), "no config.json")
    no_weights = shutil.copytree(tiny_hf_folder, tmp_path / "b")
    (no_weights / "model.safetensors").unlink()
    assert_one_line_error(edge_os("pack", no_weights, "--out", tmp_path / "p2"), "no *.safetensors")


def test_existing_output_is_not_overwritten_without_force(tmp_path, tiny_hf_folder):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "something").write_text("")  # an empty folder may receive a package
    assert_one_line_error(edge_os("pack", tiny_hf_folder, "--out", out), "already exists", "--force")


@pytest.fixture
def package_copy(tmp_path, tiny_package):
    return shutil.copytree(tiny_package, tmp_path / "pkg")


def test_missing_file_in_package(package_copy):
    (package_copy / "tokenizer.json").unlink()
    assert_one_line_error(edge_os("generate", "-m", package_copy, "hi"), "missing tokenizer.json")


def test_edited_file_in_package(package_copy):
    shard = next((package_copy / "weights").iterdir())
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert_one_line_error(edge_os("generate", "-m", package_copy, "hi"), "does not match its sha256")


def _edit_manifest(package: Path, change) -> None:
    path = package / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_unknown_schema_version(package_copy):
    _edit_manifest(package_copy, lambda m: m.update(schema_version=99))
    assert_one_line_error(edge_os("info", package_copy), "schema version 99")


def test_package_for_another_target(package_copy):
    _edit_manifest(package_copy, lambda m: m["target"].update(arch="aarch64", name="rpi5"))
    assert_one_line_error(edge_os("generate", "-m", package_copy, "hi"), "compiled for rpi5")


def test_package_needing_instructions_this_cpu_lacks(package_copy):
    _edit_manifest(package_copy, lambda m: m["target"].update(cpu_features=["avx2", "made_up_isa"]))
    assert_one_line_error(edge_os("generate", "-m", package_copy, "hi"), "made_up_isa")


def test_prompt_longer_than_the_context(tiny_package):
    result = edge_os("generate", "-m", tiny_package, "--ctx", "64", "--raw", "x" * 300)
    assert_one_line_error(result, "context window holds 64")


@pytest.mark.parametrize("flag,value", [("--temperature", "-1"), ("--top-p", "0"), ("--max-tokens", "0")])
def test_invalid_sampling_parameters(tiny_package, flag, value):
    named = flag.strip("-").replace("-", "_").split("_")[0]
    assert_one_line_error(edge_os("generate", "-m", tiny_package, "hi", flag, value), named)


def test_perplexity_json(tiny_package, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 8)
    result = edge_os("perplexity", "-m", tiny_package, text, "--ctx", "64", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    n_tokens = len(text.read_text().encode())  # byte-level tokenizer: one token per byte
    windows = -(-n_tokens // 64)
    assert out["tokens"] == n_tokens - windows
    assert 1.0 < out["perplexity"] < 1e4


def test_chat_without_a_terminal_reads_turns_from_stdin(tiny_package):
    result = subprocess.run([EDGE_OS, "chat", "-m", str(tiny_package), "--temperature", "0", "--max-tokens", "4"],
                            input="hello\nagain\n", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("assistant> ") == 2
    assert "you> hello" in result.stdout and "you> again" in result.stdout
