"""The heartbeat monitor end to end: real commbrokerd, real commbroker-cmss, short intervals."""
import sqlite3
import time

from harness import Desktop, envelope, keep_alive, logged_on, status_of, wait_for

FAST = 'interval="1s" lag="1s"'


def sim_agent(sim, agent):
    return {a["id"]: a["state"] for a in sim.state()["agents"]}.get(agent)


def audit(broker):
    """The audit log, read from the journal file as an operator's tool would."""
    db = sqlite3.connect(f"file:{broker.journal_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT action, agent, system, item, reason, details FROM audit ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_silent_desktop_is_set_not_ready_after_lag_then_logged_off_after_grace(make_loop):
    loop = make_loop(grace="1500ms", heartbeat=FAST)
    sue = Desktop(loop, "sue")
    sue.expect_type("welcome")
    assert sue.request({"type": "monitor", "scope": "all"})["ok"]
    alice = logged_on(loop)
    call = loop.sim.offer("phone", "alice")
    alice.expect_event("phoneCallChanged", id=call, state="alerting")
    assert alice.request({"type": "command", "item": call, "op": "answer"})["ok"]
    alice.expect_event("phoneCallChanged", id=call, state="connected")
    # From now on alice is silent; sue keeps sending heartbeats.
    keep_alive([sue], lambda: sim_agent(loop.sim, "alice") == "notReady", what="alice set notReady")
    suspect = sue.expect_event("agentHeartbeat", userId="alice", state="suspect")
    assert suspect["data"]["system"] == "CMS-A"
    agents = {a["userId"]: a for a in loop.admin("GET", "/admin/v1/agents")[1]["agents"]}
    assert agents["alice"]["heartbeat"]["state"] == "suspect"
    assert agents["alice"]["heartbeat"]["silentSeconds"] >= 1.0
    keep_alive([sue], lambda: sim_agent(loop.sim, "alice") == "loggedOff", what="alice logged off")
    assert alice.expect_type("bye")["reason"] == "heartbeatLost"
    assert alice.wait_closed()
    sue.expect_event("agentHeartbeat", userId="alice", state="lost")
    # The live call is listed as an orphan of the lost agent.
    orphans = loop.admin("GET", "/admin/v1/recovery/orphans")[1]["orphans"]
    assert [(o["id"], o["reason"], o["orphanedFrom"]) for o in orphans] == [(call, "heartbeatLost", "alice")]
    wait_for(lambda: loop.status()["counts"]["orphans"] == 1, what="the orphan counted in status")
    # Sue, monitoring every system, is told; the simulator still has the call, so it is alive.
    orphaned = sue.expect_event("itemOrphaned", id=call)
    assert orphaned["data"]["reason"] == "heartbeatLost" and orphaned["data"]["orphanedFrom"] == "alice"
    wait_for(lambda: loop.admin("GET", "/admin/v1/recovery/orphans")[1]["orphans"][0]["classification"]
             == "alive", what="the orphan classified alive")
    # Sue was never suspect: her heartbeats counted.
    assert loop.sim.state()["requests"]["setWorkMode"] == 1
    # The evidence is in the audit log, and commbrokerctl shows it.
    wait_for(lambda: [r[0] for r in audit(loop) if r[1] == "alice" and r[0].startswith("heartbeat")]
             == ["heartbeatSuspect", "heartbeatLogoff"],
             what="the audit records")
    records = {r[0]: r for r in audit(loop) if r[1] == "alice"}
    assert '"previousMode":"ready"' in records["heartbeatSuspect"][5]
    assert f'"orphaned":["CMS-A/{call}"]' in records["heartbeatLogoff"][5]
    assert '"peer":"127.0.0.1:' in records["heartbeatLogoff"][5]
    assert loop.admin("GET", "/admin/v1/audit?since=200000000000d")[0] == 400
    assert loop.admin("GET", "/admin/v1/audit?limit=0")[0] == 400
    out = loop.ctl("audit", "--agent", "alice").stdout
    assert "heartbeatLogoff" in out and "heartbeatSuspect" in out
    # The metrics are copied from the core every 500 ms.
    wait_for(lambda: 'commbroker_heartbeat_actions_total{action="logoff"} 1' in loop.admin_text("/metrics")
             and "commbroker_orphans 1" in loop.admin_text("/metrics"), what="the logoff and orphan in /metrics")


def test_a_desktop_that_resumes_inside_lag_never_leaves_its_work_mode(make_loop):
    loop = make_loop(grace="2s", heartbeat='interval="1s" lag="2s"')
    alice = logged_on(loop)
    welcome = alice.frames[0]
    for _ in range(3):
        alice.close()
        time.sleep(0.5)
        alice = Desktop(loop, "alice", resume={"session": welcome["session"], "lastSeq": 0})
        assert alice.expect_type("welcome")["resumed"] is True
    # Well past lag + grace since the first drop, heard from all along.
    keep_alive([alice], lambda: loop.sim.state()["requests"].get("getSystemInfo", 0) > 30,
               timeout=15, what="several probe rounds")
    requests = loop.sim.state()["requests"]
    assert "setWorkMode" not in requests and "logoff" not in requests
    assert sim_agent(loop.sim, "alice") == "ready"


def test_a_desktop_that_resumes_after_lag_gets_its_work_mode_back_and_stays_logged_on(make_loop):
    loop = make_loop(grace="3s", heartbeat=FAST)
    alice = logged_on(loop)
    welcome = alice.frames[0]
    alice.close()
    wait_for(lambda: sim_agent(loop.sim, "alice") == "notReady", what="alice set notReady")
    alice = Desktop(loop, "alice", resume={"session": welcome["session"], "lastSeq": 0})
    assert alice.expect_type("welcome")["resumed"] is True
    keep_alive([alice], lambda: sim_agent(loop.sim, "alice") == "ready", what="alice ready again")
    assert loop.sim.state()["requests"]["setWorkMode"] == 2
    keep_alive([alice], lambda: loop.sim.state()["requests"].get("getSystemInfo", 0) > 25, timeout=15,
               what="several probe rounds")
    assert "logoff" not in loop.sim.state()["requests"]
    assert [r[0] for r in audit(loop) if r[1] == "alice"] == ["heartbeatSuspect", "heartbeatCleared"]


def test_on_contact_a_silent_agent_is_rejected_and_logged_off_only_when_offered_something(make_loop):
    loop = make_loop(grace="1s", heartbeat='mode="onContact" ' + FAST)
    alice = logged_on(loop, "alice")
    bob = logged_on(loop, "bob")
    # Both silent well past lag + grace: nobody is logged off by time.
    time.sleep(2.5)
    assert "logoff" not in loop.sim.state()["requests"]
    bob.send({"type": "heartbeat"})
    bob.expect_type("heartbeat")
    # Bob, just heard from, takes his call.
    call_b = loop.sim.offer("phone", "bob")
    bob.expect_event("phoneCallChanged", id=call_b, state="alerting")
    # Alice, silent, is offered one: rejected at the CMS, logged off, told why.
    call_a = loop.sim.offer("phone", "alice")
    wait_for(lambda: sim_agent(loop.sim, "alice") == "loggedOff", what="alice logged off")
    assert loop.sim.state()["requests"]["rejectCall"] == 1
    assert alice.expect_type("bye")["reason"] == "heartbeatLost"
    assert sim_agent(loop.sim, "bob") != "loggedOff"
    wait_for(lambda: [r[0] for r in audit(loop) if r[1] == "alice" and r[0].startswith("heartbeat")]
             == ["heartbeatReject"], what="the audit")
    assert [r[3] for r in audit(loop) if r[0] == "heartbeatReject"] == [call_a]


def test_a_cms_that_stops_answering_is_unavailable_and_subscribed_again_when_it_answers(make_loop):
    loop = make_loop(probe_timeout="1s")
    alice = logged_on(loop)
    subscribes = loop.sim.state()["requests"]["subscribe"]

    def available():
        return {s["id"]: s["available"] for s in loop.status()["systems"]}["CMS-A"]

    loop.sim.control("stall", {"on": True})
    keep_alive([alice], lambda: available() is False, what="CMS-A unavailable")
    alice.expect_event("systemStateChanged", system="CMS-A", available=False)
    loop.sim.control("stall", {"on": False})
    keep_alive([alice], lambda: available() is True, what="CMS-A available again")
    alice.expect_event("systemStateChanged", system="CMS-A", available=True)
    wait_for(lambda: loop.sim.state()["requests"]["subscribe"] > subscribes, what="a new subscribe")
    assert 'commbroker_cms_outages_total 1' in loop.admin_text("/metrics")
    # The first probe's answer at start-up is audited too, then the outage and the recovery.
    wait_for(lambda: [r[0] for r in audit(loop) if r[2] == "CMS-A" and r[0] in ("cmsAvailable", "cmsUnavailable")]
             == ["cmsAvailable", "cmsUnavailable", "cmsAvailable"], what="the outage audited")


def test_after_subscription_ended_the_broker_subscribes_again(loop):
    subscribes = loop.sim.state()["requests"]["subscribe"]
    body = envelope("<ici:subscriptionEnded><reason>maintenance</reason></ici:subscriptionEnded>")
    code, _, text = loop.soap(body)
    assert code == 200 and status_of(text) == "accepted"
    wait_for(lambda: loop.sim.state()["requests"]["subscribe"] > subscribes, what="a new subscribe")

    def subscription():
        return {s["id"]: s["subscription"] for s in loop.admin("GET", "/admin/v1/systems")[1]["systems"]}["CMS-A"]

    wait_for(lambda: subscription() == "active", what="the ended subscription cleared")


def test_a_restart_gives_every_desktop_a_fresh_window_and_logs_off_those_that_stay_away(make_loop):
    loop = make_loop(grace="2s", heartbeat=FAST)
    alice = logged_on(loop, "alice")
    bob = logged_on(loop, "bob")
    alice_welcome = alice.frames[0]
    loop.stop()
    loop.start()
    # Alice comes back in time; bob does not.
    alice = Desktop(loop, "alice", resume={"session": alice_welcome["session"], "lastSeq": 0})
    assert alice.expect_type("welcome")["resumed"] is True
    keep_alive([alice], lambda: sim_agent(loop.sim, "bob") == "loggedOff", what="bob logged off")
    assert sim_agent(loop.sim, "alice") == "ready"
    # The audit record is journaled beside the logoff request, not before it: wait for it.
    wait_for(lambda: [r for r in audit(loop) if r[0] == "heartbeatLogoff"], what="the logoff audited")
    records = [r for r in audit(loop) if r[0] == "heartbeatLogoff"]
    assert [r[1] for r in records] == ["bob"]
    assert '"contact":"restart"' in records[0][5]
