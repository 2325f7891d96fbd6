"""What a client may cost before it has proven anything: failed logons held back and then locked
at every door, a connection budget per listener and per source address, a deadline for hello,
and an accept loop that backs off (once logged) when the process runs out of descriptors."""
import base64
import http.client
import re
import resource
import socket
import time

from harness import Desktop, call_xml, envelope, wait_for

GUARD = '<logonGuard freeFailures="1" firstDelay="300ms" maxDelay="600ms" lockAfter="4" lockFor="30s"/>'


def metric(broker, name):
    text = broker.admin_text("/metrics")
    m = re.search("^" + re.escape(name) + r" (\d+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def timed_soap(broker, **kwargs):
    t0 = time.monotonic()
    status, headers, _ = broker.soap(envelope(call_xml()), **kwargs)
    return status, headers, time.monotonic() - t0


def test_wrong_passwords_at_the_ici_port_are_held_back_then_locked_and_the_vendor_keeps_working(make_broker):
    b = make_broker(extra=GUARD).start()
    # The vendor logs on once: its credential is known from then on.
    assert b.soap(envelope(call_xml(id="c-1")))[0] == 200
    status, _, first = timed_soap(b, password="wrong-1")
    assert status == 401
    status, _, second = timed_soap(b, password="wrong-2")
    assert status == 401 and second >= 0.25, second  # held back: firstDelay
    status, _, third = timed_soap(b, password="wrong-3")
    assert status == 401 and third >= 0.5, third  # doubled (to maxDelay)
    status, _, _ = timed_soap(b, password="wrong-4")  # the 4th locks address and user
    assert status == 401
    for i in range(5):
        status, headers, took = timed_soap(b, password=f"again-{i}")
        assert status == 429, status
        assert 1 <= int(headers["Retry-After"]) <= 30
        assert took >= 0.5, took  # refusals are held back too: no flood of instant ones
    # The vendor's own credential still opens the door while its user name is locked.
    assert b.soap(envelope(call_xml(id="c-2")))[0] == 200
    assert metric(b, 'commbroker_logon_failures_total{door="ici"}') == 4
    assert metric(b, 'commbroker_logon_refused_total{door="ici"}') == 5
    assert metric(b, 'commbroker_logon_locks_total{door="ici"}') == 2  # the address and the user
    # Logged once per burst and once per lock, not once per attempt.
    log = b.log_text()
    assert log.count("failed logon ") == 2, log
    assert log.count("after 4 failed logons") == 2, log


def test_an_unknown_user_costs_a_password_check_like_a_known_one(make_broker):
    b = make_broker(extra=GUARD).start()
    before = metric(b, 'commbroker_password_checks_total{result="hashed"}')
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
    conn.request("POST", "/ici", body=envelope(call_xml()), headers={
        "Content-Type": "text/xml", "Authorization": "Basic " + base64.b64encode(b"nobody:x").decode()})
    assert conn.getresponse().status == 401
    assert metric(b, 'commbroker_password_checks_total{result="hashed"}') == before + 1
    assert b.items() == []


def test_admin_api_over_tcp_locks_a_guessing_operator(make_broker):
    from harness import hash_password
    b = make_broker(extra=GUARD + f'\n  <listen service="admin" address="127.0.0.1" port="0"/>'
                    f'\n  <operator id="ops" passwordHash="{hash_password("pw-ops")}"/>').start()
    port = next(l["port"] for l in b.status()["listeners"] if l["service"] == "admin")

    def get(password):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        auth = base64.b64encode(f"ops:{password}".encode()).decode()
        conn.request("GET", "/admin/v1/status", headers={"Authorization": "Basic " + auth})
        res = conn.getresponse()
        body = res.read()
        conn.close()
        return res.status, body

    assert get("pw-ops")[0] == 200
    assert [get(f"w{i}")[0] for i in range(4)] == [401] * 4
    status, body = get("w5")
    assert status == 429 and b"tooManyAttempts" in body
    assert get("pw-ops")[0] == 200


def test_desktop_guessing_ends_in_bye_too_many_attempts(make_loop):
    loop = make_loop(extra=GUARD)
    alice = Desktop(loop, "alice")
    alice.expect_type("welcome")
    alice.close()
    reasons = []
    for i in range(6):
        d = Desktop(loop, "bob", password=f"wrong-{i}")
        reasons.append(d.expect_type("bye", timeout=10)["reason"])
        d.close()
    assert reasons == ["authFailed"] * 4 + ["tooManyAttempts"] * 2, reasons
    # The address is locked, but an agent who logged on before with a password is let in.
    alice = Desktop(loop, "alice")
    assert alice.expect_type("welcome")
    # Anyone else from the address is not, for now.
    carol = Desktop(loop, "carol")
    assert carol.expect_type("bye")["reason"] == "tooManyAttempts"
    assert metric(loop, 'commbroker_logon_failures_total{door="desktop"}') == 4


def soap_ok(broker):
    try:
        return broker.soap(envelope(call_xml()))[0] == 200
    except OSError:  # closed unanswered while the budget is still full
        return False


def idle_connection(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def closed_by_peer(s, timeout=5.0):
    """True if the broker closed the connection without a word."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_each_listener_has_its_own_budget_and_a_source_its_share(make_broker):
    b = make_broker(limits='maxConnections="6" maxConnectionsPerAddress="4"').start()
    held = [idle_connection(b.port) for _ in range(4)]
    # The source's share of the ici listener is full: the next is closed unanswered...
    extra = idle_connection(b.port)
    assert closed_by_peer(extra)
    wait_for(lambda: 'reason="perAddress"} 1' in b.admin_text("/metrics"), what="the refusal counted")
    # ...while the admin socket, with its own budget, answers.
    assert b.status()["ready"]
    # A place given back is free again.
    held.pop().close()
    wait_for(lambda: soap_ok(b), what="a request in the freed place")
    for s in held:
        s.close()


def test_a_full_ici_listener_does_not_lock_out_the_admin_socket(make_broker):
    b = make_broker(limits='maxConnections="3" maxConnectionsPerAddress="0"').start()
    held = [idle_connection(b.port) for _ in range(3)]
    assert closed_by_peer(idle_connection(b.port))
    wait_for(lambda: 'commbroker_http_closed_total{reason="overLimit"} 1' in b.admin_text("/metrics"),
             what="the refusal counted")
    assert b.status()["ready"]
    for s in held:
        s.close()


def test_a_silent_websocket_is_closed_after_hello_timeout_and_a_ping_first_is_not_answered(make_loop):
    import websocket
    loop = make_loop(limits='helloTimeout="500ms"')
    silent = Desktop(loop, hello=False)
    assert silent.expect_type("bye", timeout=5)["reason"] == "authRequired"
    assert silent.wait_closed(5)
    wait_for(lambda: metric(loop, 'commbroker_desktop_refused_total{reason="helloTimeout"}') == 1,
             what="the timeout counted")

    pinger = websocket.create_connection(f"ws://127.0.0.1:{loop.desktop_port}/desktop", timeout=5)
    pinger.ping(b"anyone?")
    got = None
    try:
        got = pinger.recv_data(control_frame=True)
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        pass
    assert got is None or got[0] != websocket.ABNF.OPCODE_PONG, got
    wait_for(lambda: loop.status()["counts"]["desktops"] == 0, what="the pinger's socket closed")
    pinger.close()

    # A desktop that says hello in time is let in as ever.
    d = Desktop(loop, "alice")
    assert d.expect_type("welcome")


def test_a_desktop_that_sends_nothing_for_desktop_idle_timeout_is_closed(make_loop):
    import threading
    loop = make_loop(limits='desktopIdleTimeout="2s"')
    alice = Desktop(loop, "alice")
    alice.expect_type("welcome")
    bob = Desktop(loop, "bob")
    bob.expect_type("welcome")
    # Neither sends a frame after the hello. Alice does not read either, so the broker's ping
    # after half the timeout goes unanswered; bob reads all along, and his WebSocket library
    # answers the ping with a pong.
    stop = threading.Event()

    def read_bob():
        while not stop.is_set() and not bob.closed:
            bob._read_one(0.05)
    reader = threading.Thread(target=read_bob, daemon=True)
    since = time.monotonic()
    reader.start()
    try:
        wait_for(lambda: metric(loop, "commbroker_desktop_idle_closed_total") >= 1,
                 what="alice's connection closed as idle")
        assert alice.wait_closed(5)
        assert not any(f["type"] == "bye" for f in alice.frames)
        # Bob, silent but answering pings, is served well past the timeout.
        wait_for(lambda: time.monotonic() - since > 5 or bob.closed, what="5 s of bob")
        assert not bob.closed
    finally:
        stop.set()
        reader.join()
    assert bob.request({"type": "noSuchThing"})["error"]["code"] == "unknownType"
    assert metric(loop, "commbroker_desktop_idle_closed_total") == 1  # alice's only


def start_with_descriptor_limit(b, limit):
    import subprocess
    from harness import DAEMON

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    b.log = open(b.log_path, "ab")
    b.proc = subprocess.Popen([DAEMON, "--config", b.config_path], stdout=b.log, stderr=b.log,
                              preexec_fn=low_limit)
    b.watch.started()
    wait_for(b._ready, what="commbrokerd ready")
    b.port = next(l["port"] for l in b.status()["listeners"] if l["service"] == "ici")
    return b


def test_under_a_low_descriptor_limit_connections_over_its_room_are_closed_not_run_out_of(make_broker):
    # 400 descriptors: 256 are kept for the journal, the CMS links and the rest.
    b = start_with_descriptor_limit(make_broker(), 400)
    assert "at most 144 on all TCP listeners together" in b.log_text()
    held = [idle_connection(b.port) for _ in range(144)]
    assert closed_by_peer(idle_connection(b.port))
    assert b.status()["ready"]  # the admin socket is outside that budget
    assert "accept failed" not in b.log_text()
    held.pop().close()
    wait_for(lambda: soap_ok(b), what="a request in the freed place")
    for s in held:
        s.close()


def test_out_of_descriptors_the_accept_loop_backs_off_logs_once_and_recovers(make_broker):
    # No room kept: the process itself runs out of descriptors.
    b = make_broker(limits='maxBodyBytes="16384" maxOpenConnections="100000"')
    limit = 96

    start_with_descriptor_limit(b, limit)
    # More connections than the broker has descriptors: the rest wait in the backlog.
    held = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(limit + 20)]
    wait_for(lambda: "accept failed" in b.log_text(), what="the accept loop out of descriptors")
    # Out of descriptors for a while (no condition to wait on: the point is what does not
    # happen meanwhile): a spinning loop would log thousands of lines in this time.
    time.sleep(1.5)
    log = b.log_text()
    assert log.count("accept failed") == 1, log[-2000:]
    assert len(log) < 100_000
    for s in held:
        s.close()
    # Descriptors are free again: the broker answers, and says the episode ended.
    wait_for(lambda: soap_ok(b), timeout=15, what="an answer once descriptors are free")
    wait_for(lambda: "accepting again after" in b.log_text(), what="the end of the episode logged")
