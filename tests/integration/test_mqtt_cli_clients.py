"""Ask the device with the stock mosquitto command-line clients, as an operator would."""

from __future__ import annotations

from tests.integration.echo_scheduler import EchoScheduler, expected_answer
from tests.integration.mqtt_cli import ask_with_mosquitto_clients


def test_mosquitto_pub_asks_and_mosquitto_sub_reads_the_answer(start_bridge, mosquitto):
    start_bridge(EchoScheduler())
    question = "How warm is the greenhouse right now?"
    answers = ask_with_mosquitto_clients(mosquitto.port, "edge-os/dev1/req", {"prompt": question}, "ask-42")
    assert len(answers) == 1
    correlation, answer = answers[0]
    assert correlation == "ask-42"
    assert answer["type"] == "final" and answer["served_by"] == "local"
    assert answer["text"] == expected_answer(question)


def test_mosquitto_clients_see_streamed_deltas_then_the_final(start_bridge, mosquitto):
    start_bridge(EchoScheduler())
    question = "list three sensors"
    n_words = len(expected_answer(question).split())
    answers = ask_with_mosquitto_clients(
        mosquitto.port, "edge-os/dev1/req", {"prompt": question, "stream": True}, "ask-43", count=n_words + 1
    )
    kinds = [a["type"] for _, a in answers]
    assert kinds == ["delta"] * n_words + ["final"]
    assert "".join(a["text"] for _, a in answers[:-1]) == answers[-1][1]["text"] == expected_answer(question)
