"""The letters' queue and the engine's hook, without a network: dedup, leases, cost.

On both state engines (sqlite, PostgreSQL)."""

from __future__ import annotations

import email
import time
import uuid
from email import policy

import pytest
from harness import event

from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.mail.plan import Sent
from radicale_meetplugin.state.letters import Outgoing, Round, Told

CAL = "alice/calendar"
ORGANIZER = "ORGANIZER;CN=Alice:mailto:alice@example.com"


@pytest.fixture
def engine(tmp_path, state_url):
    conf = tmp_path / "meetplugin.conf"
    conf.write_text(
        f"[meetplugin]\nowner_addresses = {{user}}@example.com\nstate_url = {state_url}\n"
        "[mail]\nenabled = true\nhost = 127.0.0.1\nsecurity = none\n"
        "sender = calendar@example.com\n"
    )
    return build_engine(str(conf), str(tmp_path / "state"))


def meeting(uid: str, attendees: int) -> str:
    people = "\n".join(
        f"ATTENDEE;CN=Участник {i}:mailto:user{i}@example.com" for i in range(attendees)
    )
    return event(
        uid,
        location="jitsi",
        start="20300315T100000",
        end="20300315T110000",
        extra=f"{ORGANIZER}\n{people}",
    )


def test_the_save_only_queues_and_stays_linear_in_the_attendees(engine):
    """Letters are built by the sender, not under the storage lock: a save stays cheap."""
    took = {}
    for count in (500, 2000):
        key = EventKey("alice", CAL, f"{uuid.uuid4()}@big")
        started = time.perf_counter()
        decision = engine.on_put(key, meeting(key.uid, count))
        took[count] = time.perf_counter() - started
        assert decision.text is not None
        assert len(engine.store.mails(key)) == count
    assert took[2000] < took[500] * 8 + 0.5  # 4x the people: about 4x the time
    assert took[2000] < 10


def test_a_letter_is_built_when_it_is_sent(engine):
    key = EventKey("alice", CAL, f"{uuid.uuid4()}@t")
    engine.on_put(key, meeting(key.uid, 60))
    letters = engine.store.letters_queue
    [first, *_] = letters.due(time.time())
    mail = letters.claim(first, "me:1:x", 60, lambda holder: True)
    sender, raw = engine.mailing.render(mail)
    assert sender == "calendar@example.com"
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    assert "… и ещё 10" in text  # 50 named, the rest counted
    ics = next(p for p in msg.walk() if p.get_content_type() == "text/calendar").get_content()
    assert ics.count("ATTENDEE") == 60  # the calendar part names everyone


def test_a_letter_is_queued_once_per_event_sequence_recipient_and_method(engine):
    store = engine.store
    key = EventKey("alice", CAL, "dup@t")
    state = Told(Sent(0, frozenset({"ivan@example.com"}), "c"), "snapshot")
    letter = Outgoing(0, "ivan@example.com", "REQUEST", "invite")
    first = store.mail_round(key, lambda told: Round([letter], state, "BEGIN:VCALENDAR", ""))
    again = store.mail_round(key, lambda told: Round([letter], state, "BEGIN:VCALENDAR", ""))
    assert len(first) == 1 and again == []  # the UNIQUE key, whatever the caller decides
    cancel = Outgoing(0, "ivan@example.com", "CANCEL", "uninvite")
    assert len(store.mail_round(key, lambda told: Round([cancel], state, "x", ""))) == 1
    assert store.mail_state(key) == state


def test_data_is_sent_at_most_once_even_when_a_sender_dies(engine):
    store = engine.store
    key = EventKey("alice", CAL, "lease@t")
    [mail_id] = store.mail_round(
        key,
        lambda told: Round(
            [Outgoing(0, "ivan@example.com", "REQUEST", "invite")],
            Told(Sent(0, frozenset({"ivan@example.com"}), "c"), ""),
            "text",
            "",
        ),
    )
    letters = store.letters_queue
    mail = letters.claim(mail_id, "host:1:a", 0.01, lambda holder: True)
    assert mail is not None and not mail.interrupted_in_data
    assert letters.start(mail_id, "host:1:b") is False  # not the lease holder
    assert letters.start(mail_id, "host:1:a") is True
    assert letters.start(mail_id, "host:1:a") is False  # once
    # The holder dies mid-DATA; the next worker learns that and must not send again.
    taken = letters.claim(mail_id, "host:2:c", 60, lambda holder: False)
    assert taken is not None and taken.interrupted_in_data
    letters.finish(mail_id, "unknown", "interrupted")
    assert letters.claim(mail_id, "host:3:d", 60, lambda holder: False) is None
    assert letters.due(time.time() + 10) == []


def test_a_definite_refusal_lets_it_be_tried_again(engine):
    store = engine.store
    key = EventKey("alice", CAL, "retry@t")
    [mail_id] = store.mail_round(
        key,
        lambda told: Round(
            [Outgoing(0, "ivan@example.com", "REQUEST", "invite")],
            Told(Sent(0, frozenset({"ivan@example.com"}), "c"), ""),
            "text",
            "",
        ),
    )
    letters = store.letters_queue
    letters.claim(mail_id, "host:1:a", 60, lambda holder: True)
    assert letters.start(mail_id, "host:1:a")
    letters.retry(mail_id, "host:1:a", time.time() - 1, "451 try later")  # the server said no
    again = letters.claim(mail_id, "host:1:a", 60, lambda holder: True)
    assert again is not None and not again.interrupted_in_data and again.tries == 1
    assert letters.start(mail_id, "host:1:a")
    letters.finish(mail_id, "sent")
    [(rounds,)] = store.db.query("SELECT COUNT(*) FROM mail_rounds")
    assert rounds == 0  # the event text goes with the round's last letter


def test_the_state_follows_the_event_when_it_moves(engine):
    old = EventKey("alice", CAL, f"{uuid.uuid4()}@move")
    new = EventKey("alice", "alice/work", old.uid)
    engine.on_put(old, meeting(old.uid, 2))
    told = engine.store.mail_state(old)
    engine.on_move(old, new)
    assert engine.store.mail_state(old) is None and engine.store.mail_state(new) == told
    assert engine.on_delete(old) == [] and len(engine.store.mails()) == 2  # nothing at old
    engine.on_delete(new)
    assert [m[4] for m in engine.store.mails()] == ["REQUEST", "REQUEST", "CANCEL", "CANCEL"]
