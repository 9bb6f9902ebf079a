"""Address and key parsing of `serve --http`, and the CLI keeping starlette out of other commands."""

import subprocess
import sys

import pytest

from edge_os.api.config import is_loopback, parse_address, read_api_keys
from edge_os.errors import InputError


@pytest.mark.parametrize("text, expected", [
    ("8081", ("127.0.0.1", 8081)),
    (":8081", ("127.0.0.1", 8081)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("localhost", ("localhost", 8080)),
    ("[::1]:8000", ("::1", 8000)),
    ("[::]", ("::", 8080)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "1.2.3.4:70000", "::1:80", "[::1]x"])
def test_bad_addresses_say_how_to_write_one(text):
    with pytest.raises(InputError, match="--http"):
        parse_address(text)


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_keys_from_file_and_environment(tmp_path):
    f = tmp_path / "keys"
    f.write_text("# team keys\nk-one\n\n  k-two  \n")
    assert read_api_keys(f, "k-three, k-four,") == {"k-one", "k-two", "k-three", "k-four"}
    assert read_api_keys(None, None) == frozenset()
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no key"):
        read_api_keys(tmp_path / "empty", None)


def test_only_serve_http_imports_the_web_stack():
    code = ("import sys; from edge_os.cli.main import build_parser; build_parser().parse_args(['generate', 'x']); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv, message", [
    (["serve", "--http", "1.2.3.4:99999"], "the port must be a number"),
    (["serve", "--api-key-file", "/nonexistent"], "--api-key-file needs --http"),
])
def test_serve_http_errors_are_one_line(argv, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edge_os.cli.main", *argv, "--socket", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("edge-os: error:") and message in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    import socket

    from tests.simulated_sysfs import SimulatedDevice

    device = SimulatedDevice(tmp_path / "dev")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "edge_os.cli.main", "serve", "--http", str(port),
                               "--socket", str(tmp_path / "s"), "--thermal-root", str(device.thermal_dir),
                               "--power-root", str(device.power_dir), "--meminfo", str(device.meminfo_path)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-os: error:")]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0]
