"""Arguments of the real `edge-os` command: one rule per option, one line per mistake."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli import assert_one_line_error, edge_os


def assert_usage_error(result, *fragments):
    """A mistake in the arguments: exit 2 and one line, `edge-os: error: ...`."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-os: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_seed_minus_one_means_random(tiny_package):
    texts = set()
    for _ in range(2):
        result = edge_os("generate", "-m", tiny_package, "hi", "--seed", "-1", "--temperature", "1.5", "--top-k", "0",
                         "--max-tokens", "8", "--ignore-eos", "--json")
        assert result.returncode == 0, result.stderr
        texts.add(tuple(json.loads(result.stdout)["token_ids"]))
    assert len(texts) == 2  # two random seeds: 8 tokens sampled at 1.5 over the whole vocabulary differ
    assert_usage_error(edge_os("generate", "-m", tiny_package, "hi", "--seed", "-2"), "--seed", "-1 for a random seed")


@pytest.mark.parametrize("value", ["0", "-1", "two"])
@pytest.mark.parametrize("command", [["generate", "hi"], ["chat"], ["perplexity", "x.txt"], ["serve"], ["demo"]])
def test_threads_must_be_a_positive_whole_number(command, value):
    assert_usage_error(edge_os(*command, "--threads", value), "--threads")


@pytest.mark.parametrize("command", [["generate", "hi"], ["perplexity", "text.txt"]])
def test_one_context_rule_for_every_command(tiny_package, tmp_path, command):
    (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog " * 20)
    name = json.loads((tiny_package / "manifest.json").read_text())["name"]
    command = [str(tmp_path / c) if c.endswith(".txt") else c for c in command]
    assert_usage_error(edge_os(*command, "-m", tiny_package, "--ctx", "0"), "--ctx", "at least 1")
    for ctx in ("8", "100000"):
        assert_one_line_error(edge_os(*command, "-m", tiny_package, "--ctx", ctx),
                              f"a context of {ctx} tokens is outside what {name} supports; give --ctx from 16 to 512")


def test_a_prompt_too_long_for_the_largest_context_does_not_ask_for_a_larger_one(tiny_package):
    prompt = "word " * 600
    at_max = edge_os("generate", "-m", tiny_package, prompt, "--ctx", "512")
    assert_one_line_error(at_max, "shorten it", "maximum")
    assert "larger context" not in at_max.stderr
    below = edge_os("generate", "-m", tiny_package, prompt, "--ctx", "256")
    assert_one_line_error(below, "or load the model with a larger context (up to 512)")


def test_help_states_the_real_defaults():
    assert "(default: 512" in edge_os("perplexity", "--help").stdout
    assert "(default: 2048" in edge_os("generate", "--help").stdout


def test_small_messages_say_what_is_wrong_once(tmp_path):
    assert_one_line_error(edge_os("info", tmp_path / "nowhere"), "does not exist")
    result = edge_os("sensors", tmp_path / "ttyNOPE")
    assert_one_line_error(result, "cannot open serial port", "No such file or directory")
    assert result.stderr.count("No such file") == 1 and "Errno" not in result.stderr
