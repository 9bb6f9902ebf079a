import random

import pytest

from edge_os.errors import InputError, MqttError
from edge_os.mqtt.config import Backoff, BridgeConfig, BrokerConfig


def test_plain_url_defaults_to_port_1883():
    b = BrokerConfig.from_url("mqtt://hub.local")
    assert (b.host, b.port, b.tls, b.username, b.password) == ("hub.local", 1883, False, None, None)


def test_tls_url_defaults_to_8883_and_takes_tls_files(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    b = BrokerConfig.from_url("mqtts://10.0.0.2", ca_file=ca)
    assert (b.port, b.tls, b.ca_file) == (8883, True, ca)
    assert b.url == "mqtts://10.0.0.2:8883"


def test_credentials_from_url_are_unquoted_and_kept_out_of_repr():
    b = BrokerConfig.from_url("mqtt://dev%40site:p%3Ass@127.0.0.1:1999")
    assert (b.username, b.password, b.port) == ("dev@site", "p:ss", 1999)
    assert "p:ss" not in repr(b) and "p:ss" not in b.url


def test_explicit_credentials_win_over_the_url():
    b = BrokerConfig.from_url("mqtt://u:p@h", username="other", password="secret")
    assert (b.username, b.password) == ("other", "secret")


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h:1883", "mqtt:// or mqtts://"),
        ("mqtt://", "no host"),
        ("mqtt://h:99999", "bad port"),
        ("mqtt://h/topic", "must be only"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(MqttError, match=message):
        BrokerConfig.from_url(url)


def test_tls_files_need_mqtts_and_must_exist(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(MqttError, match="mqtts://"):
        BrokerConfig.from_url("mqtt://h", ca_file=ca)
    with pytest.raises(MqttError, match="does not exist"):
        BrokerConfig.from_url("mqtts://h", ca_file=tmp_path / "missing.pem")
    with pytest.raises(MqttError, match="certificate"):
        BrokerConfig.from_url("mqtts://h", key_file=ca)


def test_password_without_user_is_refused():
    with pytest.raises(MqttError, match="user name"):
        BrokerConfig.from_url("mqtt://h", password="secret")


def test_backoff_grows_is_capped_and_jittered():
    backoff = Backoff(initial_s=1.0, max_s=8.0, factor=2.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0), (1000, 8.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # really jittered, not lock-step


@pytest.mark.parametrize(
    "device_id", ["", "a/b", "a+b", "x#", "all", "cloud", "$SYS", ".", "..", "a\\b", "a\nb", "x" * 129]
)
def test_device_ids_that_break_the_topic_tree_are_refused(device_id):
    with pytest.raises(InputError):
        BridgeConfig(BrokerConfig.from_url("mqtt://h"), device_id=device_id)


def test_state_lives_under_edge_os_home_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OS_HOME", str(tmp_path))
    config = BridgeConfig(BrokerConfig.from_url("mqtt://h"), device_id="cam-7")
    assert config.state_path == tmp_path / "mqtt" / "cam-7" / "bridge.sqlite3"


def test_answer_retention_comes_from_the_environment_and_is_checked(monkeypatch):
    from edge_os.errors import MqttError
    from edge_os.mqtt.config import BridgeConfig, BrokerConfig

    monkeypatch.setenv("EDGE_OS_MQTT_ANSWER_RETENTION", "120")
    assert BridgeConfig(BrokerConfig("h"), device_id="d").answer_retention_s == 120
    for bad in ("soon", "-1", "inf", "nan"):
        monkeypatch.setenv("EDGE_OS_MQTT_ANSWER_RETENTION", bad)
        with pytest.raises(MqttError, match="EDGE_OS_MQTT_ANSWER_RETENTION"):
            BridgeConfig(BrokerConfig("h"), device_id="d")


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("", "empty"),
        (None, "empty"),
        ("x/#", "wildcard"),
        ("a/+/b", "wildcard"),
        ("a\0b", "NUL"),
        ("$SYS/x", "reserved"),
        ("\ud800", "UTF-8"),
        ("é" * 32768, "65536 bytes"),
    ],
)
def test_topics_that_cannot_be_published_to_are_named(topic, problem):
    from edge_os.mqtt.topics import publish_topic_problem

    assert problem in publish_topic_problem(topic)


def test_good_topics_pass():
    from edge_os.mqtt.topics import publish_topic_problem

    assert publish_topic_problem("me/answers") is None
    assert publish_topic_problem("x" * 65535) is None
