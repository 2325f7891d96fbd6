"""Agent desktops over WebSocket against the real commbrokerd and commbroker-cmss."""
import json
import re
import time

from harness import Desktop, logged_on, wait_for


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


def test_a_chat_with_postings_and_an_email_go_through_their_states(loop):
    d = logged_on(loop)
    chat = loop.sim.offer("chat", "alice")
    d.expect_event("chatChanged", id=chat, state="offered")
    assert d.request({"type": "command", "item": chat, "op": "accept"})["ok"]
    d.expect_event("chatChanged", id=chat, state="active")
    assert d.request({"type": "command", "item": chat, "op": "post", "args": {"text": "Guten Tag, €"}})["ok"]
    posting = d.expect_event("chatNewPosting", chatSessionId=chat)
    assert posting["data"]["contentText"] == "Guten Tag, €"
    assert loop.sim.control("post", {"chat": chat, "text": "Hallo"})[0] == 200
    d.expect_event("chatNewPosting", chatSessionId=chat, contentText="Hallo")
    # The chat as the admin API and a desktop's snapshot show it carries its postings; its
    # chatChanged events do not repeat them (they came one by one).
    items = loop.items("?agent=alice")
    assert [p["contentText"] for p in items[0]["postings"]] == ["Guten Tag, €", "Hallo"]
    again = Desktop(loop, "alice")
    snapshot = again.expect_type("snapshot")
    assert [p["contentText"] for p in snapshot["items"][0]["postings"]] == ["Guten Tag, €", "Hallo"]
    d = again
    assert d.request({"type": "command", "item": chat, "op": "end"})["ok"]
    ended = d.expect_event("chatChanged", id=chat, state="ended")
    assert "postings" not in ended["data"]

    mail = loop.sim.offer("email", "alice")
    d.expect_event("messageChanged", id=mail, state="offered")
    assert d.request({"type": "command", "item": mail, "op": "accept"})["ok"]
    d.expect_event("messageChanged", id=mail, state="active")
    assert d.request({"type": "command", "item": mail, "op": "close"})["ok"]
    d.expect_event("messageChanged", id=mail, state="closed")
    r = d.request({"type": "command", "item": mail, "op": "close"})
    assert not r["ok"] and r["error"]["code"] == "notFound"


def test_a_command_that_does_not_fit_the_channel_is_refused_before_the_cms(loop):
    d = logged_on(loop)
    chat = loop.sim.offer("chat", "alice")
    d.expect_event("chatChanged", id=chat, state="offered")
    r = d.request({"type": "command", "item": chat, "op": "hold"})
    assert not r["ok"] and r["error"]["code"] == "invalidField"
    assert "holdCall" not in loop.sim.state()["requests"]


def test_a_reconnect_with_the_resume_token_gets_exactly_the_missed_events_in_order(loop):
    d = logged_on(loop)
    welcome = d.frames[0]
    call = loop.sim.offer("phone", "alice")
    d.expect_event("phoneCallChanged", id=call, state="alerting")
    last = d.events()[-1]["seq"]
    d.close()
    # While the desktop is away: three changes.
    # (each waits until the broker has it: the simulator sends over several connections)
    ids = lambda: sorted(i["id"] for i in loop.items("?agent=alice"))
    other = loop.sim.offer("phone", "alice")
    wait_for(lambda: ids() == sorted([call, other]), what="the second call")
    loop.sim.control("end", {"item": call})
    wait_for(lambda: ids() == [other], what="the first call ended")
    loop.sim.control("end", {"item": other})
    wait_for(lambda: ids() == [], what="both calls ended")
    d2 = Desktop(loop, "alice", resume={"session": welcome["session"], "lastSeq": last})
    w = d2.expect_type("welcome")
    assert w["resumed"] is True and w["session"] == welcome["session"]
    missed = [d2.expect_type("event") for _ in range(3)]
    assert [f["seq"] for f in missed] == [last + 1, last + 2, last + 3]
    assert [(f["data"]["id"], f["data"]["state"]) for f in missed] == [
        (other, "alerting"), (call, "disconnected"), (other, "disconnected")]
    assert w["seq"] == last  # the last seq sent; what waited while away follows it
    # Nothing else: no snapshot after a resume that lost nothing.
    d2.send({"type": "heartbeat"})
    d2.expect_type("heartbeat")
    assert not [f for f in d2.frames if f["type"] == "snapshot"]


def test_a_resume_too_late_gets_a_resync_snapshot(make_loop):
    broker = make_loop(limits='replayEvents="2" desktopQueue="3"')
    sim = broker.sim
    d = logged_on(broker)
    welcome = d.frames[0]
    last = d.events()[-1]["seq"]
    d.close()
    calls = [sim.offer("phone", "alice") for _ in range(5)]
    wait_for(lambda: len(broker.items("?agent=alice")) == 5, what="five calls")
    d2 = Desktop(broker, "alice", resume={"session": welcome["session"], "lastSeq": last})
    d2.expect_type("welcome")
    snap = d2.expect_type("snapshot")
    assert snap["resync"] is True
    assert sorted(i["id"] for i in snap["items"]) == sorted(calls)


def test_a_page_reload_does_not_log_the_agent_off_but_a_lost_desktop_is_after_grace(make_loop):
    broker = make_loop(grace="2s", heartbeat='interval="1s" lag="1s"')
    sim = broker.sim
    d = logged_on(broker)
    welcome = d.frames[0]
    d.close()
    d2 = Desktop(broker, "alice", resume={"session": welcome["session"], "lastSeq": d.events()[-1]["seq"]})
    assert d2.expect_type("welcome")["resumed"] is True
    agent_state = lambda: {a["id"]: a["state"] for a in sim.state()["agents"]}["alice"]
    assert agent_state() == "ready"
    assert "logoff" not in sim.state()["requests"]
    d2.close()
    wait_for(lambda: agent_state() == "loggedOff", timeout=10, what="logoff after lag + grace")


def test_a_second_hello_replaces_the_first(loop):
    d1 = logged_on(loop)
    d2 = Desktop(loop, "alice")
    d2.expect_type("welcome")
    assert d1.expect_type("bye")["reason"] == "replaced"
    assert d1.wait_closed()
    call = loop.sim.offer("phone", "alice")
    d2.expect_event("phoneCallChanged", id=call, state="alerting")


def test_commanding_another_agents_item_is_forbidden(loop):
    alice = logged_on(loop, "alice")
    bob = logged_on(loop, "bob")
    call = loop.sim.offer("phone", "alice")
    alice.expect_event("phoneCallChanged", id=call)
    r = bob.request({"type": "command", "item": call, "op": "answer"})
    assert not r["ok"] and r["error"]["code"] == "forbidden"
    assert "answerCall" not in loop.sim.state()["requests"]
    assert not [f for f in bob.events() if f["event"] == "phoneCallChanged"]


def test_a_cms_fault_and_a_cms_timeout_reach_the_desktop_and_change_nothing(loop):
    d = logged_on(loop)
    call = loop.sim.offer("phone", "alice")
    d.expect_event("phoneCallChanged", id=call, state="alerting")
    loop.sim.control("fail", {"op": "answerCall", "code": "lineBusy"})
    r = d.request({"type": "command", "item": call, "op": "answer"})
    assert not r["ok"] and r["error"]["code"] == "lineBusy"
    assert loop.items("?agent=alice")[0]["state"] == "alerting"
    loop.sim.control("stall", {"on": True})
    r = d.request({"type": "command", "item": call, "op": "answer"}, timeout=10)
    assert not r["ok"] and r["error"]["code"] == "timeout", r
    assert loop.items("?agent=alice")[0]["state"] == "alerting"
    loop.sim.control("stall", {"on": False})


def test_two_cms_systems_serve_different_agents_at_once(loop):
    alice = logged_on(loop, "alice")
    carol = Desktop(loop, "carol")
    carol.expect_type("welcome")
    assert carol.request({"type": "logon", "system": "CMS-B", "address": "+49302222"})["ok"]
    carol.expect_event("userChanged", userId="carol", system="CMS-B")
    a = loop.sim.offer("phone", "alice")
    c = loop.sim_b.offer("phone", "carol")
    alice.expect_event("phoneCallChanged", id=a, system="CMS-A")
    carol.expect_event("phoneCallChanged", id=c, system="CMS-B")
    assert carol.request({"type": "command", "item": c, "op": "answer"})["ok"]
    carol.expect_event("phoneCallChanged", id=c, state="connected")
    assert loop.sim_b.state()["requests"].get("answerCall") == 1
    assert "answerCall" not in loop.sim.state()["requests"]
    assert not [f for f in alice.events() if f["data"].get("system") == "CMS-B"]


def test_a_supervisor_monitoring_a_system_sees_every_event_in_it(loop):
    sue = Desktop(loop, "sue")
    sue.expect_type("welcome")
    assert sue.request({"type": "monitor", "scope": "system:CMS-A"})["ok"]
    alice = logged_on(loop, "alice")
    call = loop.sim.offer("phone", "alice")
    sue.expect_event("phoneCallChanged", id=call, state="alerting")
    bob = Desktop(loop, "bob")
    bob.expect_type("welcome")
    r = bob.request({"type": "monitor", "scope": "all"})
    assert not r["ok"] and r["error"]["code"] == "forbidden"
    alice.close()


def test_a_desktop_that_stops_reading_is_cut_off_while_others_keep_pace(make_loop):
    from harness import call_xml, envelope
    broker = make_loop(limits='maxBodyBytes="200000" desktopQueue="20" desktopSlowTimeout="1s"')
    import socket
    import websocket
    slow = websocket.create_connection(f"ws://127.0.0.1:{broker.desktop_port}/desktop", timeout=10,
                                       sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    slow.send(json.dumps({"type": "hello", "agent": "bob", "password": "pw-bob"}))
    fast = Desktop(broker, "alice")
    fast.expect_type("welcome")
    blob = "&lt;ItemAttachedData&gt;" + "x" * 60000 + "&lt;/ItemAttachedData&gt;"
    # The slow desktop reads a frame now and then: far slower than its events come.
    import threading
    frames = []

    def crawl():
        slow.settimeout(30)
        try:
            while True:
                op, data = slow.recv_data()
                if op == 8:
                    return
                frames.append(json.loads(data))
                if frames[-1].get("type") == "bye":
                    return
                time.sleep(0.2)
        except Exception:
            return

    reader = threading.Thread(target=crawl)
    reader.start()
    v = 0
    deadline = time.monotonic() + 60
    while not (frames and frames[-1].get("type") == "bye") and reader.is_alive():
        assert time.monotonic() < deadline, "no bye for the slow desktop"
        v += 1
        status, _, text = broker.soap(envelope(call_xml(id=f"b-{v % 7}", version=v, agent="bob", attached=blob)))
        assert status == 200, text
        if v % 20 == 0:
            # The other desktop keeps its pace meanwhile.
            status, _, _ = broker.soap(envelope(call_xml(id=f"a-{v}", agent="alice")))
            assert status == 200
            fast.expect_event("phoneCallChanged", id=f"a-{v}", timeout=2)
    reader.join(30)
    types = [f["type"] for f in frames]
    assert "overload" in types, " ".join(types)
    assert frames[-1] == {"type": "bye", "reason": "tooSlow"}, frames[-1]


def test_auto_logon_agents_are_logged_on_when_their_system_comes_up(make_loop):
    from harness import hash_password
    broker = make_loop(extra=f'<agent id="dave" passwordHash="{hash_password("pw-dave")}" cms="CMS-A" '
                             'autoLogon="true"/>')
    wait_for(lambda: {a["id"]: a["state"] for a in broker.sim.state()["agents"]}.get("dave") == "ready",
             what="dave logged on by the broker")
    wait_for(lambda: any(a["userId"] == "dave" for a in broker.admin("GET", "/admin/v1/agents")[1]["agents"]),
             what="the broker knows dave's state from the CMS's event")


def test_a_cms_that_stops_answering_is_unavailable_then_subscribed_again(make_loop):
    broker = make_loop(probe_timeout="1s")
    d = logged_on(broker)
    subscribes = broker.sim.state()["requests"]["subscribe"]
    broker.sim.control("stall", {"on": True})
    d.expect_event("systemStateChanged", system="CMS-A", available=False, timeout=10)
    systems = {s["id"]: s for s in broker.admin("GET", "/admin/v1/systems")[1]["systems"]}
    assert systems["CMS-A"]["available"] is False and systems["CMS-B"]["available"] is True
    broker.sim.control("stall", {"on": False})
    d.expect_event("systemStateChanged", system="CMS-A", available=True, timeout=10)
    assert broker.sim.state()["requests"]["subscribe"] > subscribes


def test_a_resume_key_replaces_the_password_once_and_survives_a_restart(make_loop):
    loop = make_loop()
    d = Desktop(loop, "alice")
    w1 = d.expect_type("welcome")
    assert len(w1["resumeKey"]) == 48
    d.close()
    # The key of the last welcome lets the session back in, whatever the password says.
    d = Desktop(loop, "alice", password="wrong", resume={"session": w1["session"], "lastSeq": 0, "key": w1["resumeKey"]})
    w2 = d.expect_type("welcome")
    assert w2["resumed"] is True and w2["resumeKey"] != w1["resumeKey"]
    d.close()
    # The old key no longer works: with a wrong password that is a refusal.
    d = Desktop(loop, "alice", password="wrong", resume={"session": w1["session"], "lastSeq": 0, "key": w1["resumeKey"]})
    assert d.expect_type("bye")["reason"] == "authFailed"
    # A key is no good for another agent's session either.
    bob = Desktop(loop, "bob", password="wrong", resume={"session": w1["session"], "lastSeq": 0, "key": w2["resumeKey"]})
    assert bob.expect_type("bye")["reason"] == "authFailed"
    # The journal keeps the key's hash: it works after a restart, with no password at all.
    loop.stop()
    loop.start()
    d = Desktop(loop, hello=False)
    d.send({"type": "hello", "agent": "alice", "resume": {"session": w1["session"], "lastSeq": 0, "key": w2["resumeKey"]}})
    assert d.expect_type("welcome")["resumed"] is True
    w3 = d.frames[0]
    with open(loop.journal_path, "rb") as f:
        assert w2["resumeKey"].encode() not in f.read()
    # A new password ends the key: a reload that changes alice's hash refuses the key alone.
    d.close()
    from harness import hash_password
    with open(loop.config_path) as f:
        text = f.read()
    loop.write_config(text.replace(hash_password("pw-alice"), hash_password("pw-alice-new")))
    assert loop.ctl("reload").returncode == 0
    d = Desktop(loop, hello=False)
    d.send({"type": "hello", "agent": "alice", "resume": {"session": w1["session"], "lastSeq": 0, "key": w3["resumeKey"]}})
    assert d.expect_type("bye")["reason"] == "authFailed"
    d = Desktop(loop, "alice", password="pw-alice-new", resume={"session": w1["session"], "lastSeq": 0})
    assert d.expect_type("welcome")["resumed"] is True


def send_together(d, *messages):
    """Sends the messages as WebSocket frames in one TCP write: the broker reads the later ones
    while the first (a hello) is still pending."""
    from websocket import ABNF
    d.ws.sock.sendall(b"".join(ABNF.create_frame(json.dumps(m), ABNF.OPCODE_TEXT).format()
                               for m in messages))


def test_frames_sent_right_after_the_hello_are_answered_after_its_welcome(make_loop):
    loop = make_loop()
    # A desktop need not wait for its welcome: a heartbeat and a request sent behind a hello
    # (its password being checked, then its turn on the core) are answered after the welcome,
    # in order, and the session goes on.
    d = Desktop(loop, hello=False)
    send_together(d, {"type": "hello", "agent": "alice", "password": "pw-alice"},
                  {"type": "heartbeat"}, {"type": "noSuchThing", "id": 7})
    d.expect(lambda f: f.get("type") == "result" and f.get("id") == 7, what="the request's result")
    types = [f["type"] for f in d.frames]
    assert types == ["welcome", "snapshot", "heartbeat", "result"], types
    assert d.frames[3]["error"]["code"] == "unknownType"
    welcome = d.frames[0]
    d.close()
    # The same behind a resume, after a restart (every desktop's timer keeps running).
    loop.stop()
    loop.start()
    d = Desktop(loop, hello=False)
    send_together(d, {"type": "hello", "agent": "alice",
                      "resume": {"session": welcome["session"], "lastSeq": welcome["seq"],
                                 "key": welcome["resumeKey"]}},
                  {"type": "heartbeat"}, {"type": "heartbeat"})
    w = d.expect_type("welcome")
    assert w["resumed"] is True
    d.expect_type("heartbeat")
    d.expect_type("heartbeat")
    assert not any(f["type"] == "bye" for f in d.frames)
    assert [f["type"] for f in d.frames].index("welcome") == 0
    assert d.request({"type": "noSuchThing"})["error"]["code"] == "unknownType"
    # The session rows of these hellos went to the journal: nothing waits in the hub's backlog.
    wait_for(lambda: re.search(r"^commbroker_journal_hub_backlog 0$",
                               loop.admin_text("/metrics"), re.M),
             what="the hub's records all handed to the journal")


def test_logons_beyond_the_password_queue_get_bye_busy_and_the_broker_keeps_answering(make_loop):
    import subprocess
    from harness import CTL
    # A hash that takes the verifier's one thread most of a second, and a queue of one behind it.
    slow = subprocess.run([CTL, "hash-password", "--iterations", "3000000"], input="pw-dave\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    broker = make_loop(limits='passwordQueue="1"',
                       extra=f'  <agent id="dave" passwordHash="{slow}" role="agent" cms="CMS-A"/>')
    desktops = [Desktop(broker, "dave", password=f"wrong-{i}") for i in range(6)]
    # The verifier runs the hash off the I/O threads: the broker answers meanwhile.
    t0 = time.monotonic()
    assert broker.status()["ready"]
    assert time.monotonic() - t0 < 0.5
    reasons = [d.expect_type("bye", timeout=30)["reason"] for d in desktops]
    # One in hand and one queued at most were checked (and refused); the rest were turned away
    # at once, with a reason that says to try again.
    assert 1 <= reasons.count("authFailed") <= 2, reasons
    assert reasons.count("busy") == 6 - reasons.count("authFailed"), reasons
    metrics = broker.admin_text("/metrics")
    assert f'commbroker_password_checks_total{{result="busy"}} {reasons.count("busy")}' in metrics
    # Once the queue has room, the right password gets in.
    d = Desktop(broker, "dave")
    assert d.expect_type("welcome", timeout=30)["resumed"] is False
