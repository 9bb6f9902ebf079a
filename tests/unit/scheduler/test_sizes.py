import pytest

from edge_os.errors import InputError
from edge_os.scheduler.sizes import format_size, parse_size


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2G", 2 << 30),
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("64KB", 64 << 10),
        ("1048576", 1 << 20),
        (" 3 G ", 3 << 30),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "two gigs", "2X", "-1G", "0", "1.2.3M", "2 G B"])
def test_garbage_is_a_one_line_error(text):
    with pytest.raises(InputError, match="is not a size|more than 0") as info:
        parse_size(text, "memory budget")
    assert "\n" not in str(info.value)


def test_format_size():
    assert format_size(3 << 29) == "1.5G"
    assert format_size(512 << 20) == "512M"
    assert format_size(12) == "12B"
