"""Pipeline TOML: every malformed field is one line naming the pipeline and what to fix."""

import pytest

from edge_os.errors import InputError
from edge_os.pipelines.config import Condition, parse_pipelines

BASE = 'name = "p"\nport = "/dev/ttyACM0"\nsensor = "temperature"\nperiod_ms = 100\nmodel = "m"\n'


def test_a_full_pipeline_parses():
    (p,) = parse_pipelines("[[pipeline]]\n" + BASE + 'window = 4\nwhen = { output = "score", index = 1, above = 0.5 }\n'
                           'ask = "{sensor} at {score:.1f}"\nllm = "smollm2"\ncooldown_s = 5\nevent = false\n', "f")
    assert (p.window, p.when, p.ask, p.llm, p.cooldown_s, p.event) == (
        4, Condition("score", 1, 0.5, None), "{sensor} at {score:.1f}", "smollm2", 5.0, False)
    assert p.when.holds(0.6) and not p.when.holds(0.5)


@pytest.mark.parametrize("text, fragment", [
    ("[[pipeline]]\n" + BASE + "window = 0\n", "window must be"),
    ("[[pipeline]]\n" + BASE + "colour = 1\n", "unknown field(s) ['colour']"),
    ("[[pipeline]]\n" + BASE.replace("period_ms = 100", "period_ms = 1"), "period_ms must be"),
    ("[[pipeline]]\n" + BASE + "when = { above = 1, over = 2 }\n", "when must be"),
    ("[[pipeline]]\n" + BASE + "when = { output = 0 }\n", "when needs above or below"),
    ("[[pipeline]]\n" + BASE + 'ask = "{nope}"\n', "ask may use"),
    ("[[pipeline]]\n" + BASE + "[[pipeline]]\n" + BASE, "must be unique"),
    ("[[pipeline]]\n" + BASE.replace('sensor = "temperature"\n', ""), "sensor must be given"),
    ("pipeline = 3\n", "one or more [[pipeline]]"),
    ("[[pipeline]\n", "not valid TOML"),
])
def test_malformed_pipelines_are_one_line(text, fragment):
    with pytest.raises(InputError) as err:
        parse_pipelines(text, "f.toml")
    assert fragment in str(err.value) and "\n" not in str(err.value)
