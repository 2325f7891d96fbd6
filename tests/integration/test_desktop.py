"""Agent desktops over WebSocket against the real commbrokerd and commbroker-cmss."""
import json

from harness import Desktop, wait_for


def logged_on(broker, agent="alice"):
    d = Desktop(broker, agent)
    d.expect_type("welcome")
    d.expect_type("snapshot")
    r = d.request({"type": "logon", "system": "CMS-A", "address": "+49301111", "channels": ["phone", "chat", "email"]})
    assert r["ok"], r
    d.expect_event("userChanged", userId=agent, state="ready")
    return d


def test_a_call_is_offered_answered_held_retrieved_and_hung_up(loop):
    d = logged_on(loop)
    call = loop.sim.offer("phone", "alice")
    ev = d.expect_event("phoneCallChanged", id=call, state="alerting")
    assert ev["data"]["system"] == "CMS-A" and ev["data"]["channel"] == "phone"
    for op, state in (("answer", "connected"), ("hold", "held"), ("retrieve", "connected"),
                      ("hangup", "disconnected")):
        r = d.request({"type": "command", "item": call, "op": op})
        assert r["ok"], r
        d.expect_event("phoneCallChanged", id=call, state=state)
    seqs = [f["seq"] for f in d.events()]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert loop.items("?agent=alice") == []
