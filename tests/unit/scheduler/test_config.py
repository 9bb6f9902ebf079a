import math

import pytest

from edge_os.config import settings
from edge_os.errors import InputError
from edge_os.scheduler.config import SchedulerConfig, config_for_target, parse_keep_alive, parse_max_queue
from edge_os.targets import load_target


def test_target_budgets_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OS_HOME", str(tmp_path))
    monkeypatch.delenv("EDGE_OS_MEMORY_BUDGET", raising=False)
    monkeypatch.delenv("EDGE_OS_SOCKET", raising=False)
    jetson = config_for_target(load_target("jetson-orin"), settings())
    assert jetson.budget_bytes is None and jetson.memory_fraction == 0.6
    assert jetson.pooled_memory  # unified: the GPU draws from host RAM
    assert jetson.governor.setpoint_c == 80.0 and jetson.governor.hysteresis_c == 5.0
    assert settings().socket == tmp_path / "scheduler.sock"
    monkeypatch.setenv("EDGE_OS_MEMORY_BUDGET", "3G")
    assert config_for_target(load_target("host"), settings()).budget_bytes == 3 << 30
    assert config_for_target(load_target("host"), settings(), budget="512M").budget_bytes == 512 << 20


def test_keep_alive_and_queue_parsing():
    assert parse_keep_alive("2.5") == 2.5 and math.isinf(parse_keep_alive("inf"))
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(InputError, match="keep-alive"):
            parse_keep_alive(bad)
    assert parse_max_queue("0") == 0
    with pytest.raises(InputError, match="max queue"):
        parse_max_queue("lots")


@pytest.mark.parametrize("field, value", [("memory_fraction", 0.0), ("memory_fraction", 1.5), ("max_queue", -1),
                                          ("threads", 0), ("reserve_fraction", 1.0)])
def test_config_rejects_nonsense(field, value):
    with pytest.raises(InputError, match=field):
        SchedulerConfig(**{field: value})
