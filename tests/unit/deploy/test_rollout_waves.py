import pytest

from edge_os.deploy.rollout import wave_sizes
from edge_os.errors import InputError


@pytest.mark.parametrize(("text", "devices", "sizes"), [
    ("1,10,50%", 100, [1, 9, 40, 50]),
    ("1,10,50%", 20, [1, 9, 10]),  # 50% of 20 is the 10 already reached: the rest is the last wave
    ("2,10", 20, [2, 8, 10]),
    ("100%", 7, [7]),
    ("5", 3, [3]),
])
def test_waves_are_totals_reached_and_the_rest_comes_last(text, devices, sizes):
    assert wave_sizes(text, devices) == sizes
    assert sum(sizes) == devices


@pytest.mark.parametrize("text", ["0", "a,b", "1,,2"])
def test_bad_waves_are_refused(text):
    with pytest.raises(InputError):
        wave_sizes(text, 10)
