"""The C core builds warning-free, for a Cortex-M4 and an Arduino Uno, and survives fuzzing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .sim import build, require_tool


def test_core_is_strict_c99_without_warnings(tmp_path: Path) -> None:
    require_tool("gcc")
    out = build("core", tmp_path, always=True)
    assert "-std=c99 -pedantic -Wall -Wextra -Werror" in out
    assert sorted(p.name for p in (tmp_path / "core").glob("*.o")) == [
        "ebp_cobs.o",
        "ebp_crc32.o",
        "ebp_device.o",
        "ebp_frame.o",
    ]


def test_core_builds_for_cortex_m4_without_libc(tmp_path: Path) -> None:
    require_tool("arm-none-eabi-gcc")
    out = build("cortex-m", tmp_path, always=True)
    assert "-mcpu=cortex-m4 -mthumb" in out and "-Werror" in out
    objects = sorted((tmp_path / "cortex-m4").glob("*.o"))
    assert len(objects) == 4
    attributes = subprocess.run(
        ["arm-none-eabi-readelf", "-A", str(objects[0])], capture_output=True, text=True, check=True
    ).stdout
    assert 'Tag_CPU_name: "7E-M"' in attributes or "Cortex-M4" in attributes, attributes
    assert "Tag_THUMB_ISA_use: Thumb-2" in attributes
    undefined = subprocess.run(
        ["arm-none-eabi-nm", "-u", *map(str, objects)], capture_output=True, text=True, check=True
    ).stdout.split()
    symbols = {s for s in undefined if not s.endswith(".o:") and s != "U"}
    # No malloc, no printf, not even memcpy: the core needs nothing but itself.
    own = {"ebp_frame_encode", "ebp_rx_feed", "ebp_rx_init", "ebp_cobs_decode", "ebp_cobs_encode", "ebp_crc32"}
    assert symbols <= own, symbols - own


def test_arduino_sketch_builds_and_fits_an_uno(tmp_path: Path) -> None:
    require_tool("avr-gcc")
    out = build("arduino-uno", tmp_path, always=True)
    assert (tmp_path / "uno" / "edge_bridge.hex").stat().st_size > 0
    data_line = next(line for line in out.splitlines() if line.startswith("Data:"))
    ram = int(data_line.split()[1])
    assert ram < 1600, f"static RAM {ram} bytes leaves too little of the Uno's 2048 for the stack"


@pytest.mark.slow
def test_fuzz_frame_decoder_briefly(tmp_path: Path) -> None:
    require_tool("clang")
    build("fuzz", tmp_path)
    corpus = tmp_path / "corpus-ci"
    corpus.mkdir()
    result = subprocess.run(
        # ASan's shadow memory alone can pass libFuzzer's default 2 GB RSS limit (the live heap
        # stays near 24 MB), so the limit is raised; crash artifacts go to the build folder.
        [str(tmp_path / "fuzz-frame"), "-max_total_time=30", "-max_len=1024", "-print_final_stats=1",
         "-rss_limit_mb=6144", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr and "ERROR" not in result.stderr
