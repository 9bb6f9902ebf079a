import math

from edge_os.scheduler.report import format_status

from .conftest import G, M
from .test_loop import SMALL


def test_ps_table_shows_models_memory_thermal_governor_and_queue(harness):
    h = harness({"a": SMALL, "b": SMALL}, pinned=("b",), keep_alive_s=60.0)
    h.submit(model="a", max_tokens=50)
    h.run(3)
    text = format_status(h.scheduler.status())
    lines = text.splitlines()
    assert lines[0].split() == ["MODEL", "KIND", "LOADED", "ACTIVE", "MEMORY", "KV", "THREADS", "IDLE",
                                  "KEEP-ALIVE"]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split()[:5] == ["a", "llm", "yes", "1", "1.1G"] and row_a.endswith("60s")
    assert row_a.split()[7] == str(h.engine("a").threads)
    assert any(line.split()[:5] == ["b", "(pinned)", "llm", "yes", "0"] for line in lines)
    assert "of 4.0G budget" in text and "governor: NORMAL" in text and "1 running" in text


def test_ps_table_says_when_the_kernel_throttles_and_keep_alive_is_forever(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, keep_alive_s=math.inf)
    h.device.cooling_state = 2
    h.device.flush()
    h.clock.idle(1.0)
    h.run()
    text = format_status(h.scheduler.status())
    assert "the kernel is throttling" in text and text.splitlines()[1].endswith("forever")
