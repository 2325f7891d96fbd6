"""The recovery module end to end: orphans, reconciliation against the simulators, and the
operators' commands (commbrokerctl recovery, logoff, audit) on real processes."""
import json
import signal
import subprocess

import harness
from harness import CTL, Desktop, beating, call_xml, envelope, logged_on, status_of, wait_for

FAST = 'interval="1s" lag="1s"'


def orphans(broker):
    """The orphans by ID (of tests that use one system)."""
    return {o["id"]: o for o in orphans_list(broker)}


def orphans_list(broker):
    status, body = broker.admin("GET", "/admin/v1/recovery/orphans")
    assert status == 200, body
    return body["orphans"]


def answered_call(loop, desktop, agent, sim=None):
    sim = sim or loop.sim
    call = sim.offer("phone", agent)
    desktop.expect_event("phoneCallChanged", id=call, state="alerting")
    assert desktop.request({"type": "command", "item": call, "op": "answer"})["ok"]
    desktop.expect_event("phoneCallChanged", id=call, state="connected")
    return call


def sim_items(sim):
    return {i["id"]: i for i in sim.state()["items"]}


def ctl(broker, *args):
    """commbrokerctl without the harness's check of its exit status: (status, stdout, stderr)."""
    r = subprocess.run([CTL, "--socket", broker.socket_path, *args], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


def audit_actions(broker, item):
    status, body = broker.admin("GET", f"/admin/v1/audit?item={item}")
    assert status == 200, body
    return [e["action"] for e in body["entries"]]


def keep_alive(desktops, predicate, timeout=15.0, what="condition"):
    return harness.keep_alive(desktops, predicate, timeout, what)


def test_operators_close_assign_and_release_orphans_with_dry_runs_and_audit(make_loop):
    loop = make_loop(grace="1s", heartbeat=FAST)
    bob = logged_on(loop, "bob")
    with beating(bob):
        _operators_act(loop, bob)


def _operators_act(loop, bob):
    """The body of the test above, run while bob keeps beating."""
    alice = logged_on(loop)
    calls = [answered_call(loop, alice, "alice") for _ in range(4)]
    # alice falls silent; bob keeps beating. Her four calls become orphans, checked at CMS-A.
    keep_alive([bob], lambda: len(orphans(loop)) == 4, what="alice's calls orphaned")
    keep_alive([bob], lambda: all(o["classification"] == "alive" for o in orphans(loop).values()),
               what="the orphans classified alive")
    listed = orphans(loop)
    assert {o["reason"] for o in listed.values()} == {"heartbeatLost"}
    assert listed[calls[0]]["remoteNumbers"] and listed[calls[0]]["orphanedFrom"] == "alice"

    # The table shows what an operator needs to find the customer; --json is the API's answer.
    code, out, _ = ctl(loop, "recovery", "list")
    assert code == 0 and "CLASSIFICATION" in out and calls[0] in out and "alive" in out
    code, out, _ = ctl(loop, "--json", "recovery", "list", "--agent", "alice")
    assert code == 0 and {o["id"] for o in json.loads(out)["orphans"]} == set(calls)

    # close: a dry run asks nothing; then the CMS ends the call and the orphan is gone.
    code, out, _ = ctl(loop, "--dry-run", "recovery", "close", "CMS-A", calls[0], "--reason", "customer gone")
    assert code == 0 and "would ask CMS-A to hangupCall" in out
    assert loop.sim.state()["requests"].get("hangupCall", 0) == 0 and calls[0] in orphans(loop)
    code, out, _ = ctl(loop, "recovery", "close", "CMS-A", calls[0], "--reason", "customer gone")
    assert code == 0, out
    keep_alive([bob], lambda: calls[0] not in orphans(loop), what="the closed call no longer an orphan")
    assert calls[0] not in sim_items(loop.sim)

    # A close the CMS refuses is reported, exits 1, and changes nothing.
    loop.sim.control("fail", {"op": "hangupCall", "count": 1, "code": "notAllowed"})
    code, out, err = ctl(loop, "recovery", "close", "CMS-A", calls[1], "--reason", "try")
    assert code == 1 and "notAllowed" in err and "nothing changed" in err
    assert calls[1] in orphans(loop) and calls[1] in sim_items(loop.sim)

    # assign: to bob, who is logged on at CMS-A; both the dry run and the real one.
    code, out, _ = ctl(loop, "--dry-run", "recovery", "assign", "CMS-A", calls[1], "bob", "--reason", "takes over")
    assert code == 0 and "would give" in out and calls[1] in orphans(loop)
    code, out, _ = ctl(loop, "recovery", "assign", "CMS-A", calls[1], "bob", "--reason", "takes over")
    assert code == 0, out
    bob.expect_event("phoneCallChanged", id=calls[1], agentId="bob")
    assert calls[1] not in orphans(loop)
    assert [i["id"] for i in loop.items("?agent=bob")] == [calls[1]]
    # Not to someone who is not logged on there, nor to nobody.
    code, _, err = ctl(loop, "recovery", "assign", "CMS-A", calls[2], "carol", "--reason", "x")
    assert code == 1 and "not logged on at CMS-A" in err
    code, _, err = ctl(loop, "recovery", "assign", "CMS-A", calls[2], "nobody", "--reason", "x")
    assert code == 1 and "no agent nobody" in err

    # release: forgotten here, the CMS not told.
    code, out, _ = ctl(loop, "--dry-run", "recovery", "release", "CMS-A", calls[2], "--reason", "duplicate")
    assert code == 0 and "would forget" in out and calls[2] in orphans(loop)
    code, out, _ = ctl(loop, "recovery", "release", "CMS-A", calls[2], "--reason", "duplicate")
    assert code == 0, out
    assert calls[2] not in orphans(loop) and calls[2] not in {i["id"] for i in loop.items()}
    assert calls[2] in sim_items(loop.sim)

    # Every action is in the audit log, with who did it and the item before (and after).
    wait_for(lambda: "orphanRelease" in audit_actions(loop, calls[2]), what="the release audited")
    assert "orphanClose" in audit_actions(loop, calls[0])
    assert {"orphanCloseRefused", "orphanAssign"} <= set(audit_actions(loop, calls[1]))
    entries = loop.admin("GET", f"/admin/v1/audit?item={calls[1]}")[1]["entries"]
    assign = next(e for e in entries if e["action"] == "orphanAssign")
    assert assign["actor"] == "admin socket" and assign["reason"] == "takes over"
    assert assign["details"]["before"]["agentId"] == "alice" and assign["details"]["after"]["agentId"] == "bob"
    code, out, _ = ctl(loop, "audit", "--item", calls[1])
    assert code == 0 and "orphanAssign" in out
    code, out, _ = ctl(loop, "recovery", "show", "CMS-A", calls[3])
    assert code == 0 and "heartbeatLost" in out and "itemOrphaned" in out

    # Helpful errors: usage (2), an unknown orphan (1), a wrong socket (1).
    assert ctl(loop, "recovery", "close", "CMS-A", calls[3])[0] == 2  # no reason
    assert ctl(loop, "recovery", "frobnicate")[0] == 2
    code, _, err = ctl(loop, "recovery", "release", "CMS-A", "no-such", "--reason", "x")
    assert code == 1 and "no orphan no-such" in err
    code, _, err = ctl(loop, "recovery", "release", "CMS-A", calls[3], "--reason", "two\nlines")
    assert code == 1 and "control characters" in err
    r = subprocess.run([CTL, "--socket", loop.dir + "/nope.sock", "recovery", "list"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "cannot reach the broker" in r.stderr
    # The API refuses bad bodies with a JSON error.
    status, body = loop.admin("POST", f"/admin/v1/recovery/orphans/CMS-A/{calls[3]}/close", "{\"reason\": 1}")
    assert status == 400 and body["error"]["code"] == "badRequest"
    status, body = loop.admin("POST", f"/admin/v1/recovery/orphans/CMS-A/{calls[3]}/close",
                              json.dumps({"reason": "x", "frob": True}))
    assert status == 400 and "unknown field" in body["error"]["message"]
    assert loop.admin("GET", f"/admin/v1/recovery/orphans/CMS-A/{calls[3]}/close")[0] == 405

    # Reconciling brings the released call back (CMS-A still has it), an orphan again because
    # alice is still gone; reconciling once more changes nothing.
    code, out, _ = ctl(loop, "recovery", "reconcile")
    assert code == 0 and "CMS-A" in out
    keep_alive([bob], lambda: set(orphans(loop)) == {calls[2], calls[3]}
               and all(o["classification"] == "alive" for o in orphans(loop).values())
               and loop.status()["reconciliation"]["state"] == "done", what="the released call back")
    assert orphans(loop)[calls[2]]["reason"] == "heartbeatLost"
    before = orphans(loop)
    code, out, _ = ctl(loop, "recovery", "reconcile")
    assert code == 0 and "CMS-A" in out
    assert orphans(loop) == before
    assert loop.status()["reconciliation"]["state"] == "done"


def test_an_operator_logoff_orphans_the_agents_items_and_a_new_hello_readopts_them(make_loop):
    loop = make_loop()
    sue = Desktop(loop, "sue")
    sue.expect_type("welcome")
    assert sue.request({"type": "monitor", "scope": "system:CMS-A"})["ok"]
    alice = logged_on(loop)
    call = answered_call(loop, alice, "alice")
    code, out, _ = ctl(loop, "--dry-run", "logoff", "alice")
    assert code == 0 and "would orphan CMS-A/" + call in out
    assert orphans(loop) == {}
    code, out, _ = ctl(loop, "logoff", "alice", "--reason", "end of shift")
    assert code == 0 and "orphaned CMS-A/" + call in out
    assert orphans(loop)[call]["reason"] == "operatorLogoff"
    wait_for(lambda: {a["id"]: a["state"] for a in loop.sim.state()["agents"]}["alice"] == "loggedOff",
             what="alice logged off at the CMS")
    sue.expect_event("itemOrphaned", id=call, reason="operatorLogoff")
    assert ctl(loop, "logoff", "alice")[0] == 1  # not logged on any more
    assert ctl(loop, "logoff", "nobody")[0] == 1
    # A reload of alice's desktop does not undo the operator's logoff: still an orphan...
    alice.close()
    again = Desktop(loop, "alice")
    again.expect_type("welcome")
    again.send({"type": "heartbeat"})
    again.expect_type("heartbeat")
    assert list(orphans(loop)) == [call]
    # ...until she logs on again: then her call is hers again, and supervisors are told.
    assert again.request({"type": "logon", "system": "CMS-A", "address": "+49301111",
                          "channels": ["phone"]})["ok"]
    wait_for(lambda: orphans(loop) == {}, what="the orphan re-adopted")
    recovered = sue.expect_event("itemRecovered", id=call)
    assert recovered["data"]["recoveredBy"] == "agentBack"
    wait_for(lambda: "orphanRecovered" in audit_actions(loop, call), what="the re-adoption audited")


def test_after_kill_9_orphans_are_found_and_classified_against_both_simulators(make_loop):
    loop = make_loop(grace="1s", heartbeat=FAST, probe_timeout="1s")
    sue = Desktop(loop, "sue")
    sue.expect_type("welcome")
    alice = logged_on(loop)
    bob = logged_on(loop, "bob")
    carol = Desktop(loop, "carol")
    carol.expect_type("welcome")
    carol.expect_type("snapshot")
    assert carol.request({"type": "logon", "system": "CMS-B", "address": "+49302222",
                          "channels": ["phone"]})["ok"]
    kept, dropped = answered_call(loop, alice, "alice"), answered_call(loop, alice, "alice")
    bobs = answered_call(loop, bob, "bob")
    carols = answered_call(loop, carol, "carol", sim=loop.sim_b)
    bob_welcome = next(f for f in bob.frames if f.get("type") == "welcome")
    for d in (sue, alice, bob, carol):
        d.close()
    loop.desktops.clear()

    loop.send_signal(signal.SIGKILL)
    loop.proc.wait()
    # Meanwhile CMS-A forgets one of alice's calls, and CMS-B stops answering.
    loop.sim.control("drop", {"item": dropped})
    loop.sim_b.control("stall", {"on": True})
    loop.start()
    # Item IDs are per system: the two simulators both number their calls from 1.
    keys = lambda items: {(i["system"], i["id"]) for i in items}
    held = keys(loop.items())
    assert {("CMS-A", kept), ("CMS-A", bobs), ("CMS-B", carols)} <= held  # still there
    # bob's desktop resumes in time and keeps beating: his call never becomes an orphan.
    bob = Desktop(loop, "bob", resume={"session": bob_welcome["session"], "lastSeq": 0})
    assert bob.expect_type("welcome")["resumed"]
    with beating(bob):
        # The start-up reconciliation closes what CMS-A no longer has.
        keep_alive([bob], lambda: ("CMS-A", dropped) not in keys(loop.items()), what="the dropped call closed")
        wait_for(lambda: "reconcileGone" in audit_actions(loop, dropped), what="the closing audited")
        # After the window, alice's and carol's calls are orphans; CMS-B's cannot be checked.
        def by_key():
            return {(o["system"], o["id"]): o for o in orphans_list(loop)}
        a, b = ("CMS-A", kept), ("CMS-B", carols)
        keep_alive([bob], lambda: set(by_key()) == {a, b}, what="the orphans after the restart")
        keep_alive([bob], lambda: by_key()[a]["classification"] == "alive"
                   and by_key()[b]["classification"] == "unknown", what="the orphans classified")
        assert {o["reason"] for o in by_key().values()} == {"brokerRestart"}
        assert loop.status()["reconciliation"]["state"] in ("incomplete", "running")
        # CMS-B answers again: its orphan is checked and found alive.
        loop.sim_b.control("stall", {"on": False})
        keep_alive([bob], lambda: by_key()[b]["classification"] == "alive", what="CMS-B's orphan alive")
        keep_alive([bob], lambda: loop.status()["reconciliation"]["state"] == "done", what="reconciliation done")
        # Listed once each, and bob's never.
        code, out, _ = ctl(loop, "--json", "recovery", "list")
        listed = [(o["system"], o["id"]) for o in json.loads(out)["orphans"]]
        assert sorted(listed) == sorted([a, b]) and ("CMS-A", bobs) not in listed
        assert ("CMS-A", bobs) in keys(loop.items("?agent=bob"))

    # The orphans survive a clean restart as they were.
    loop.stop()
    loop.start()
    after = by_key()
    assert set(after) == {a, b} and {o["reason"] for o in after.values()} == {"brokerRestart"}


def test_an_item_that_changes_hands_while_no_desktop_is_connected_is_not_sent_to_its_old_owner(make_loop):
    loop = make_loop(grace="1s", heartbeat=FAST)

    def event(**kw):
        status, _, text = loop.soap(envelope(call_xml(id="x-1", **kw)))
        assert status == 200 and status_of(text) == "accepted", text

    # The simulator knows nothing of x-1: it must not answer getItems, or x-1 would be closed.
    loop.sim.control("fail", {"op": "getItems", "count": 1000, "code": "unavailable"})
    alice = Desktop(loop, "alice")
    alice.expect_type("welcome")
    event(version=1, state="alerting", agent="alice")
    alice.expect_event("phoneCallChanged", id="x-1")
    # alice falls silent and her session ends: no desktop session is left at all.
    assert alice.expect_type("bye")["reason"] == "heartbeatLost"
    wait_for(lambda: loop.status()["counts"]["desktopSessions"] == 0, what="alice's session gone")
    event(version=2, state="connected", agent="bob")  # the call moves to bob, unseen
    alice = Desktop(loop, "alice")
    alice.expect_type("welcome")
    event(version=3, state="held", agent="bob")
    # Answered after the event was routed: anything for alice would have come before it.
    alice.send({"type": "heartbeat"})
    alice.expect_type("heartbeat")
    assert not [f for f in alice.frames if f.get("type") == "event" and f["data"].get("id") == "x-1"]


def test_an_item_nobody_touches_becomes_an_orphan_until_its_cms_changes_it(make_loop):
    loop = make_loop(extra='<recovery orphanAfter="2s"/>', heartbeat='lag="60s"')
    sue = Desktop(loop, "sue")
    sue.expect_type("welcome")
    assert sue.request({"type": "monitor", "scope": "system:CMS-A"})["ok"]
    alice = logged_on(loop)
    call = answered_call(loop, alice, "alice")
    sue.expect_event("itemOrphaned", id=call, reason="untouched", timeout=20)
    assert orphans(loop)[call]["orphanedFrom"] == "alice"
    wait_for(lambda: "itemOrphaned" in audit_actions(loop, call), what="the orphaning audited")
    # alice never left: her desktop coming back settles nothing.
    alice.close()
    alice = Desktop(loop, "alice")
    alice.expect_type("welcome")
    alice.send({"type": "heartbeat"})
    alice.expect_type("heartbeat")
    assert orphans(loop)[call]["reason"] == "untouched"
    # Its CMS changes it: somebody works on it after all.
    assert alice.request({"type": "command", "item": call, "op": "hold"})["ok"]
    recovered = sue.expect_event("itemRecovered", id=call)
    assert recovered["data"]["recoveredBy"] == "changedAtCms"
    wait_for(lambda: "orphanRecovered" in audit_actions(loop, call), what="the recovery audited")
    # Untouched again for orphanAfter, it is an orphan again (a frame is taken once: a new one).
    sue.expect_event("itemOrphaned", id=call, reason="untouched", timeout=20)
