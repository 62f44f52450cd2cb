"""Inbound idempotency: a repeat of a provider id gets the stored reply and causes nothing new."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import event, func, select, update

from bot import inbound as inbox
from bot.inbound import Inbound, Reply
from bot.storage.models import Customer, Device, InboundMessage, OutboxMessage
from tests.harness import converse


class Responder:
    """A fake core that answers with the given replies in turn and counts its calls."""

    def __init__(self, *replies: Reply):
        self.replies, self.calls = list(replies), 0

    def __call__(self, session, inbound: Inbound) -> Reply:
        self.calls += 1
        return self.replies.pop(0)


def sms(provider_id: str = "SM1", text: str = "CODE") -> Inbound:
    return Inbound(channel="sms", provider_id=provider_id, sender="+254712345678", text=text)


def handle(world, inbound: Inbound, respond) -> Reply:
    with world.session() as s:
        return inbox.answer_once(s, inbound, respond)


def stored(world) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(InboundMessage))


def test_a_repeat_gets_the_first_reply_without_calling_the_core_again(world):
    core = Responder(Reply.say("first"), Reply.say("second"))
    assert handle(world, sms(), core).texts == ("first",)
    assert handle(world, sms(), core).texts == ("first",)
    assert core.calls == 1 and stored(world) == 1


def test_an_empty_reply_is_stored_and_repeated_as_empty(world):
    core = Responder(Reply(), Reply.say("should not be sent"))
    assert handle(world, sms(text="STOP"), core) == Reply()
    assert handle(world, sms(text="STOP"), core) == Reply()
    assert core.calls == 1


IDENTITIES = [
    pytest.param(sms("SM2"), id="another MessageSid"),
    pytest.param(
        Inbound(channel="telegram", provider_id="SM1", sender="42"),
        id="the same id on another channel",
    ),
]


@pytest.mark.parametrize("other", IDENTITIES)
def test_a_different_message_is_answered_afresh(world, other):
    core = Responder(Reply.say("one"), Reply.say("two"))
    handle(world, sms("SM1"), core)
    assert handle(world, other, core).texts == ("two",)
    assert core.calls == 2 and stored(world) == 2


def test_a_concurrent_duplicate_that_answered_first_wins(world):
    """Both deliveries passed the check; the core committed midway (as the ledger does)."""
    winner = Responder(Reply.say("winner"))

    def loser(session, inbound):
        session.commit()  # the ledger commits its mint attempt before calling the API
        assert handle(world, inbound, winner).texts == ("winner",)  # the duplicate lands
        return Reply.say("loser")

    assert handle(world, sms(), loser).texts == ("winner",)
    assert handle(world, sms(), Responder()).texts == ("winner",)
    assert stored(world) == 1


def test_a_failing_core_stores_nothing_so_a_retry_is_answered_afresh(world):
    def broken(session, inbound):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handle(world, sms(), broken)
    assert stored(world) == 0
    assert handle(world, sms(), Responder(Reply.say("now it works"))).texts == ("now it works",)


REPLIES = [
    pytest.param(Reply(), id="no answer"),
    pytest.param(Reply.say("one"), id="one text"),
    pytest.param(Reply.say("one", "two"), id="two texts"),
    pytest.param(
        Reply.say("Bienvenue! é à ù", request_contact="Partager mon numéro"),
        id="with a contact button",
    ),
    pytest.param(Reply(texts=("PIN?",), end=False), id="USSD continue"),
    pytest.param(Reply.say('quotes " and \\ and \n newline'), id="characters JSON escapes"),
    pytest.param(
        Reply.say("Which one?", choices=(("1001", "code 1001"), ("X2", "code 1002"))),
        id="with device buttons",
    ),
    pytest.param(Reply.say("Linked", remove_keyboard=True), id="removing the keyboard"),
    pytest.param(Reply(texts=("pushed",), pushed=True), id="pushed"),
]


@pytest.mark.parametrize("reply", REPLIES)
def test_a_reply_survives_storage_unchanged(reply):
    again = Reply.from_json(reply.to_json())
    assert again == reply and isinstance(again.texts, tuple)


def test_a_reply_stored_before_buttons_existed_still_reads():
    old = '{"texts": ["hi"], "request_contact": null, "end": true, "final": true}'
    assert Reply.from_json(old) == Reply.say("hi")


def test_say_drops_empty_texts_and_text_joins_lines():
    reply = Reply.say("a", "", "b")
    assert reply.texts == ("a", "b") and reply.text == "a\nb"


# -- reads: answered without a write -----------------------------------------------------


class Statements:
    """The SQL statements an engine runs while this is open."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, *args):
        self.seen.append(statement.split()[0].upper())

    @property
    def writes(self) -> list[str]:
        return [s for s in self.seen if s in {"INSERT", "UPDATE", "DELETE"}]


def from_amina(provider_id: str, text: str) -> Inbound:
    return Inbound(channel="sms", provider_id=provider_id, sender="+254712345678", text=text)


@pytest.mark.parametrize("text", ["STATUS", "history", "DEVICES", "HELP", "what?"])
def test_a_read_command_writes_nothing_and_is_answered_afresh_when_repeated(world, text):
    world.customer("+254712345678", 1001)
    converse(world.services, from_amina("SM0", "STATUS"))  # the first message records sms
    with Statements(world.services.engine) as sql:
        first = converse(world.services, from_amina("SM1", text))
        again = converse(world.services, from_amina("SM1", text))
    assert first == again and first.texts
    assert sql.writes == [] and "SAVEPOINT" not in sql.seen
    assert stored(world) == 1  # the first message's, which recorded the channel


def test_a_read_that_changes_something_is_answered_the_writing_way(world):
    """The first message on a channel records it: that read is redone in a transaction."""
    world.customer("+254712345678", 1001)
    with Statements(world.services.engine) as sql:
        reply = converse(world.services, from_amina("SM1", "STATUS"))
    assert reply.texts and sql.writes  # the customer's last channel, and the stored reply
    with world.session() as s:
        assert s.scalar(select(Customer.last_channel)) == "sms"
    assert stored(world) == 1


def test_a_writing_command_is_still_stored_and_repeated(world):
    world.customer("+254712345678", 1001)
    converse(world.services, from_amina("SM0", "STATUS"))
    converse(world.services, from_amina("SM1", "LANG fr"))
    assert converse(world.services, from_amina("SM1", "LANG fr")) == converse(
        world.services,
        from_amina("SM1", "LANG sw"),  # same id: the stored reply, nothing new
    )
    with world.session() as s:
        assert s.scalar(select(Customer.language)) == "fr"


def test_only_a_commit_that_queued_something_wakes_the_drain(world):
    woken = []
    deps = dataclasses.replace(world.services, after_commit=lambda: woken.append(1))
    world.customer("+254712345678", 1001)
    converse(deps, from_amina("SM0", "STATUS"))  # a write (last channel), nothing queued
    converse(deps, from_amina("SM1", "STATUS"))  # a read
    converse(deps, from_amina("SM2", "LANG fr"))  # a write, nothing queued
    assert woken == []
    world.pay(1001, 2, "pay-1")
    converse(deps, from_amina("SM3", "CODE"))  # mints: the code is answered, not queued
    with world.session() as s:
        queued = s.scalar(select(func.count()).select_from(OutboxMessage))
    assert len(woken) == (1 if queued else 0)


@pytest.mark.parametrize(
    "text, selects",
    [
        pytest.param("STATUS", 1, id="STATUS: the customer with devices and their figures"),
        pytest.param("DEVICES", 1, id="DEVICES: the customer with devices"),
        pytest.param("HELP", 1, id="HELP: the customer"),
        pytest.param("HISTORY", 2, id="HISTORY: the customer with devices, then codes"),
    ],
)
def test_a_read_command_runs_one_or_two_queries(world, text, selects):
    world.customer("+254712345678", 1001, 1002)
    world.pay(1001, 2, "pay-1")
    converse(world.services, from_amina("SM0", "CODE 1001"))  # a code to show, and sms
    with Statements(world.services.engine) as sql:
        reply = converse(world.services, from_amina("SM1", f"{text} 1001"))
    assert reply.texts
    assert [s for s in sql.seen if s == "SELECT"] == ["SELECT"] * selects
    assert sql.writes == []


@pytest.mark.parametrize(
    "text, connections",
    [("STATUS", 0), ("DEVICES", 0), ("HELP", 0), ("HISTORY 1001", 1)],
)
def test_a_read_checks_out_a_sqlalchemy_connection_only_for_the_orm(world, text, connections):
    """STATUS, DEVICES and HELP run their prepared statement on the pooled driver
    connection alone (db.Reader); HISTORY's ORM query needs one SQLAlchemy connection."""
    world.customer("+254712345678", 1001)
    converse(world.services, from_amina("SM0", "HELP"))  # the channel recorded: now reads
    opened: list[object] = []
    listener = lambda connection: opened.append(connection)  # noqa: E731
    event.listen(world.services.engine, "engine_connect", listener)
    try:
        reply = converse(world.services, from_amina("SM1", text))
    finally:
        event.remove(world.services.engine, "engine_connect", listener)
    assert reply.texts and len(opened) == connections


@pytest.mark.parametrize("text", ["STATUS", "STATUS 1002", "DEVICES", "HELP", "HISTORY 1001"])
def test_a_read_loads_no_customer_or_device_objects_and_answers_as_the_writing_way(world, text):
    """The read way takes the sender's facts from one Core statement (no ORM objects);
    its answer is the one the writing way gives (a first message on a channel)."""
    world.customer("+254712345678", 1001, 1002)
    world.pay(1001, 2, "pay-1")
    converse(world.services, from_amina("SM0", "CODE 1001"))
    with world.session() as s:  # forget the channel: the next message is a write again
        s.execute(update(Customer).values(last_channel=None))
        s.commit()
    written = converse(world.services, from_amina("SM1", text))
    loaded: list[object] = []

    def count(target, _context):
        loaded.append(target)

    event.listen(Customer, "load", count)
    event.listen(Device, "load", count)
    try:
        with Statements(world.services.engine) as sql:
            read = converse(world.services, from_amina("SM2", text))
    finally:
        event.remove(Customer, "load", count)
        event.remove(Device, "load", count)
    assert read == written and read.texts
    assert sql.writes == [] and loaded == []


def test_a_read_whose_answer_would_write_is_redone_the_writing_way(world):
    """A responder called a read that queues a message after all: nothing is written in
    the read-only transaction, and the message is answered in a writing one."""
    from bot.customers import conversation
    from bot.outbox import queue

    world.customer("+254712345678", 1001)
    converse(world.services, from_amina("SM0", "STATUS"))

    def respond(deps, session, inbound):
        customer = session.scalar(select(Customer))
        queue.enqueue(session, customer, "pushed")  # flushes: a write
        return Reply.say("queued")

    responder = inbox.Responder(respond, conversation.language, reads=lambda inbound: True)
    with Statements(world.services.engine) as sql:
        reply = converse(world.services, from_amina("SM1", "STATUS"), responder)
    assert reply.texts == ("queued",)
    assert sql.seen.count("INSERT") == 2  # the message and the stored reply, once each
    with world.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
