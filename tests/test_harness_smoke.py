from bot.inbound import Inbound
from tests.harness import converse


def test_code_by_sms_credits_the_simulated_device_with_exactly_the_paid_days(sqlite_world):
    w = sqlite_world
    w.customer("+254712345678", 1001)
    w.pay(1001, 7, "ref-1")
    reply = converse(
        w.services, Inbound(channel="sms", provider_id="SM1", sender="+254712345678", text="CODE")
    )
    assert "7 days" in reply.text, reply.text
    start = reply.text.index("*")
    code = reply.text[start : reply.text.index("#", start) + 1]
    entry = w.simulator(1001).enter(code)
    assert (entry.outcome, entry.days) == ("days", 7)
