"""mqtts:// with a CA, a client certificate and a user name/password, on a real mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge_os.mqtt import BridgeConfig, BrokerConfig, MqttBridge
from edge_os.mqtt.config import Backoff
from tests.integration.echo_scheduler import EchoScheduler, expected_answer
from tests.integration.mqtt_harness import Mosquitto, Requester, free_port
from tests.waiting import wait_until


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, san: str, pki: Path) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=pki)  # fmt: skip
    (pki / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=pki)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A throw-away CA, a broker certificate for 127.0.0.1 and a client certificate."""
    pki = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=edge-os test CA", cwd=pki)  # fmt: skip
    _signed("broker", "IP:127.0.0.1", pki)
    _signed("device", "DNS:device", pki)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "device", "s3cret"], check=True)
    return pki


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path):
    port = free_port()
    broker = Mosquitto(
        tmp_path / "tls-broker",
        port=port,
        listener_conf=(
            f"listener {port} 127.0.0.1\n"
            f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'broker.pem'}\nkeyfile {pki / 'broker.key'}\n"
            "require_certificate true\n"
            f"password_file {pki / 'passwd'}\nallow_anonymous false\n"
        ),
    )
    broker.start()
    yield broker
    broker.stop()


def _config(tls_broker: Mosquitto, pki: Path, tmp_path: Path, password: str) -> BridgeConfig:
    broker = BrokerConfig.from_url(
        f"mqtts://127.0.0.1:{tls_broker.port}",
        ca_file=pki / "ca.pem",
        cert_file=pki / "device.pem",
        key_file=pki / "device.key",
        username="device",
        password=password,
    )
    return BridgeConfig(broker, device_id="secure", state_dir=tmp_path / "state", backoff=Backoff(0.05, 0.5))


def test_bridge_answers_over_mutual_tls_with_password(tls_broker: Mosquitto, pki: Path, tmp_path: Path):
    with MqttBridge(EchoScheduler(), _config(tls_broker, pki, tmp_path, "s3cret")) as bridge:
        assert bridge.wait_connected(10)
        requester = Requester(
            tls_broker.port,
            "tls-hub",
            tls={
                "ca_certs": str(pki / "ca.pem"),
                "certfile": str(pki / "device.pem"),
                "keyfile": str(pki / "device.key"),
            },
            auth=("device", "s3cret"),
        )
        requester.ask({"prompt": "encrypted hello"}, b"t1", topic="edge-os/secure/req")
        assert requester.final(b"t1")["text"] == expected_answer("encrypted hello")
        requester.close()


def test_wrong_password_never_connects_and_says_why(tls_broker: Mosquitto, pki: Path, tmp_path: Path, caplog):
    with MqttBridge(EchoScheduler(), _config(tls_broker, pki, tmp_path, "wrong")) as bridge:
        assert not bridge.wait_connected(1.5)
    assert "refused the connection" in caplog.text


def test_server_certificate_from_another_ca_is_rejected(tls_broker: Mosquitto, pki: Path, tmp_path: Path, caplog):
    other = tmp_path / "other-ca.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(tmp_path / "other.key"), "-out", str(other), "-days", "1", "-subj", "/CN=evil",
             cwd=tmp_path)  # fmt: skip
    config = _config(tls_broker, pki, tmp_path, "s3cret")
    config = BridgeConfig(
        BrokerConfig.from_url(
            config.broker.url, ca_file=other, cert_file=pki / "device.pem", key_file=pki / "device.key",
            username="device", password="s3cret",
        ),  # fmt: skip
        device_id="secure",
        state_dir=tmp_path / "state2",
        backoff=Backoff(0.05, 0.5),
    )
    with MqttBridge(EchoScheduler(), config) as bridge:
        assert not bridge.wait_connected(1.5)
    wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, 2, what="the verification failure logged")
