import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_os.mqtt.redact import RedactionConfig, Redactor

default = Redactor(RedactionConfig())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to jo.doe+iot@mail.example.org now", "write to [EMAIL] now"),
        ("call +44 20 7946 0958", "call [PHONE]"),
        ("call (555) 123-4567 or 555.123.4567", "call [PHONE] or [PHONE]"),
        ("mobile 0612345678", "mobile [PHONE]"),
        ("+33612345678 is mine", "[PHONE] is mine"),
    ],
)
def test_emails_and_phone_numbers_are_replaced(text, expected):
    assert default.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["room 101 at 21.5 C", "on 2024-01-15", "host 192.168.1.10", "pi is 3.14159", "order 123456", "12/05/2024"],
)
def test_numbers_that_are_not_phone_numbers_are_kept(text):
    assert default.redact(text) == text


def test_names_are_whole_word_and_case_insensitive():
    r = Redactor(RedactionConfig(names=("Alice Smith", "Bob", " ")))
    assert r.redact("bob and ALICE SMITH met Bobby") == "[NAME] and [NAME] met Bobby"


def test_disabled_redaction_changes_nothing():
    text = "alice@example.com +1 415 555 0100"
    assert Redactor(RedactionConfig(enabled=False)).redact(text) == text


def test_messages_keep_roles():
    out = default.redact_messages([{"role": "user", "content": "me@x.io", "name": "n"}])
    assert out == [{"role": "user", "content": "[EMAIL]", "name": "n"}]


@given(
    st.from_regex(r"[a-z][a-z0-9._]{0,10}@[a-z]{2,8}\.(com|org|de|io)", fullmatch=True),
    st.text(alphabet=st.characters(whitelist_categories=("Ll", "Zs")), max_size=20),
)
def test_any_email_is_removed(email, filler):
    assert email not in default.redact(f"{filler} {email} {filler}")
