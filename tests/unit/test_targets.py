import pytest

from edge_os.errors import TargetError
from edge_os.targets import available_targets, load_target


def test_every_descriptor_loads():
    names = available_targets()
    assert "host" in names
    for name in names:
        target = load_target(name)
        assert target.name == name
        assert target.default_quant in ("q4f32", "q4f16")


def test_unknown_target_names_the_choices():
    with pytest.raises(TargetError, match="choose one of"):
        load_target("toaster")
