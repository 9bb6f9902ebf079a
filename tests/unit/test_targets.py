from pathlib import Path

import pytest

from edge_os.errors import TargetError
from edge_os.targets import available_targets, check_toolchain, load_target


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


def test_a_users_descriptor_file_is_loaded_by_path(tmp_path):
    text = (Path(__file__).parents[2] / "targets" / "rpi5.toml").read_text().replace('"rpi5"', '"my-board"')
    path = tmp_path / "my-board.toml"
    path.write_text(text.replace("memory_fraction = 0.7", "memory_fraction = 0.5"))
    target = load_target(str(path))
    assert (target.name, target.arch, target.budgets.memory_fraction) == ("my-board", "aarch64", 0.5)


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    ("name = ", "not valid TOML"),
    ('name = "x"\narch = "aarch64"\n', "lacks the field 'triple'"),
])
def test_a_bad_descriptor_file_gets_one_clear_error(tmp_path, content, message):
    path = tmp_path / "board.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TargetError, match=message):
        load_target(str(path))


def test_the_shipped_descriptors_are_the_top_level_folder():
    """The wheel's data package and the source tree's ``targets/`` are one set of files."""
    folder = Path(__file__).parents[2] / "targets"
    assert available_targets() == sorted(p.stem for p in folder.glob("*.toml"))


def test_a_missing_cross_compiler_names_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetError, match="gcc-aarch64-linux-gnu"):
        check_toolchain(load_target("rpi5"))
    check_toolchain(load_target("host"))  # no cross compiler needed
