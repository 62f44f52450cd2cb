"""Time whole inbound requests through the webhook stack, on SQLite and the embedded emulator.

Usage: python scripts/bench_requests.py [--requests N]
Prints the median time of each path and its ratio to answering a repeat from the stored
reply (the cheapest path), all measured in this one run; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import SECRETS, build_world
from webhooks.app import create_app

PHONE, PATH = "+254712345678", "/webhooks/twilio/sms"


def sms(client, sid: str, body: str) -> float:
    form = {
        "MessageSid": "SM" + hashlib.sha256(sid.encode()).hexdigest()[:32],  # Twilio's shape
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": PHONE,
        "To": "+15005550006",
        "Body": body,
    }
    url = SECRETS["public_base_url"] + PATH
    signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(url, form)
    started = time.perf_counter()
    response = client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    n = parser.parse_args().requests
    directory = Path(tempfile.mkdtemp(prefix="ovbot-bench-"))
    world = build_world(f"sqlite:///{directory / 'bench.db'}", directory)
    world.customer(PHONE, 1001)
    world.simulator(1001)  # build the item's chain once, outside the timings
    client = create_app(deps=world.services).test_client()
    timings: dict[str, list[float]] = {
        "CODE, new payment (mints)": [],
        "RESEND": [],
        "STATUS": [],
        "repeat of one MessageSid": [],
    }
    for i in range(n):
        world.pay(1001, 1, f"bench-{i}")
        timings["CODE, new payment (mints)"].append(sms(client, f"SMmint{i}", "CODE"))
        timings["RESEND"].append(sms(client, f"SMresend{i}", "RESEND"))
        timings["STATUS"].append(sms(client, f"SMstatus{i}", "STATUS"))
        timings["repeat of one MessageSid"].append(sms(client, "SMmint0", "CODE"))
    world.services.close()
    base = statistics.median(timings["repeat of one MessageSid"])
    print(f"{n} requests per path, SQLite + embedded emulator, one process")
    for path, values in timings.items():
        median = statistics.median(values)
        print(f"  {path:28s} median {median * 1000:7.2f} ms   x{median / base:5.1f}")


if __name__ == "__main__":
    main()
