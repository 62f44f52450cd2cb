"""The device keypad simulator against codes made straight from a chain."""

import pytest

from bot.omnivoltaic import acp1
from bot.omnivoltaic.simulator import Device, Entry


class Chain:
    """A tiny generator following OMNIVOLTAIC.md section 2, for making test codes."""

    def __init__(self, length: int = 5_000):
        self.root, self.index = acp1.root_for("sim", 1), length
        self.top = acp1.walk(self.root, length)

    def code(self, jump: int) -> str:
        self.index -= jump
        return acp1.format_code(acp1.walk(self.root, self.index))


@pytest.fixture
def chain():
    return Chain()


def test_days_code_credits_its_days(chain):
    device = Device(chain.top)
    assert device.locked
    assert device.enter(chain.code(7)) == Entry("days", 7)
    assert device.days_credited == 7 and not device.locked


def test_reused_code_is_rejected(chain):
    device, code = Device(chain.top), chain.code(3)
    device.enter(code)
    assert device.enter(code) == Entry("rejected", 0)
    assert device.days_credited == 3


def test_older_code_rejected_after_newer(chain):
    device, old, new = Device(chain.top), chain.code(2), chain.code(4)
    assert device.enter(new) == Entry("days", 6)  # the skipped code's days come too
    assert device.enter(old).outcome == "rejected"
    assert device.days_credited == 6


def test_newer_of_two_unentered_codes_credits_both(chain):
    device = Device(chain.top)
    chain.code(10)
    assert device.enter(chain.code(20)) == Entry("days", 30)


def test_max_days_then_free_then_reset(chain):
    device = Device(chain.top)
    assert device.enter(chain.code(acp1.MAX_DAYS)) == Entry("days", acp1.MAX_DAYS)
    assert device.enter(chain.code(acp1.FREE_JUMP)) == Entry("free", 0)
    assert device.free and not device.locked
    assert device.enter(chain.code(acp1.RESET_JUMP)) == Entry("reset", 0)
    assert device.locked and not device.free and device.balance == 0
    assert device.days_credited == acp1.MAX_DAYS


def test_jump_beyond_reset_is_rejected(chain):
    device = Device(chain.top)
    assert device.enter(chain.code(acp1.RESET_JUMP + 1)).outcome == "rejected"


@pytest.mark.parametrize(
    "garbage", ["", "hello", "*000 000 000 000 000 000 000#", "*1" + "0" * 20 + "#"]
)
def test_garbage_rejected(chain, garbage):
    device = Device(chain.top)
    assert device.enter(garbage) == Entry("rejected")
    assert device.last == chain.top
