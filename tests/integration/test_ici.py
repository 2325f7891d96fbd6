"""The IciBroker SOAP port over real sockets: events, outcomes, faults, versions."""
import json
import os
import socket

from harness import call_xml, chat_xml, envelope, fault_of, find_local, parse, read_until_closed, status_of


def test_a_call_reported_through_its_states_is_listed_by_commbrokerctl(broker):
    for version, state in enumerate(["alerting", "connected", "held", "connected"], start=1):
        status, _, text = broker.soap(envelope(call_xml(version=version, state=state)))
        assert status == 200, text
        assert status_of(text) == "accepted"
    out = broker.ctl("items")
    assert out.returncode == 0, out.stderr
    row = [l for l in out.stdout.splitlines() if "c-1001" in l]
    assert row and "connected" in row[0] and "alice" in row[0] and "+493012345678" in row[0]
    items = json.loads(broker.ctl("items", "--json").stdout)["items"]
    assert [(i["id"], i["version"], i["state"]) for i in items] == [("c-1001", 4, "connected")]
    status, _, text = broker.soap(envelope(call_xml(version=5, state="disconnected")))
    assert status_of(text) == "accepted"
    assert broker.items() == []


def test_a_resent_snapshot_is_duplicate_and_an_older_one_stale(broker):
    broker.soap(envelope(call_xml(version=1)))
    broker.soap(envelope(call_xml(version=3, state="connected")))
    assert status_of(broker.soap(envelope(call_xml(version=3, state="connected")))[2]) == "duplicate"
    assert status_of(broker.soap(envelope(call_xml(version=2, state="alerting")))[2]) == "stale"
    assert [(i["version"], i["state"]) for i in broker.items()] == [(3, "connected")]


def test_message_id_is_echoed_in_the_response_header(broker):
    header = "<ici:context><messageId>m-42</messageId></ici:context>"
    _, _, text = broker.soap(envelope(call_xml(), header=header))
    echoed = find_local(parse(text), "messageId")
    assert echoed is not None and echoed.text == "m-42"


def test_each_bad_input_gets_its_fault_and_changes_nothing(broker):
    broker.soap(envelope(call_xml(version=1)))
    broker.soap(envelope(chat_xml(id="chat-1", version=1)))
    before = broker.items()
    bad = {
        "malformed XML": ("<soap:Envelope><oops></soap:Envelope>", "malformed", None),
        "DOCTYPE": ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + envelope(call_xml(version=2)),
                    "malformed", None),
        "unknown operation": (envelope("<ici:launchRocket/>"), "unknownOperation", None),
        "missing field": (envelope(call_xml(version=2).replace("<state>alerting</state>", "")), "invalidField", "state"),
        "bad E.164 number": (envelope(call_xml(version=2, remote="030-1234")), "invalidField", "remoteNumbers"),
        "forbidden state move": (envelope(call_xml(version=2, state="held")), "invalidTransition", "state"),
        "wrong channel for an ID": (envelope(chat_xml(id="c-1001", version=2)), "invalidField", "id"),
        "second Body child": (envelope(call_xml(version=2) + "<ici:x/>"), "malformed", None),
        "too many attributes": (envelope(call_xml(version=2).replace(
            "<call>", "<call " + " ".join(f'a{i}="1"' for i in range(200)) + ">")), "tooLarge", None),
    }
    for name, (body, code, field) in bad.items():
        status, headers, text = broker.soap(body)
        assert status == 500, f"{name}: {status} {text}"
        assert headers["Content-Type"].startswith("text/xml"), name
        assert fault_of(text) == (code, field), f"{name}: {text}"
        assert find_local(parse(text), "faultcode").text.endswith("Client"), name
    assert broker.items() == before


def test_http_level_refusals(broker):
    status, headers, _ = broker.soap(envelope(call_xml()), password="wrong")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    status, headers, _ = broker.soap(envelope(call_xml()), system=None)
    assert status == 401
    status, _, _ = broker.soap(envelope(call_xml(extra="<queue>" + "q" * 20000 + "</queue>")))
    assert status == 413
    status, headers, _ = broker.soap("", method="DELETE")
    assert status == 405 and "POST" in headers["Allow"]
    status, _, _ = broker.soap(envelope(call_xml()), content_type="application/json")
    assert status == 415
    status, _, _ = broker.soap(envelope(call_xml()), target="/other")
    assert status == 404
    assert broker.items() == []


def test_a_body_cannot_speak_for_another_system(make_broker):
    b = make_broker(systems=("CMS-A", "CMS-B")).start()
    b.soap(envelope(call_xml(id="same")), system="CMS-A")
    b.soap(envelope(call_xml(id="same", agent="bob")), system="CMS-B")
    got = sorted((i["system"], i["agentId"]) for i in b.items())
    assert got == [("CMS-A", "alice"), ("CMS-B", "bob")]
    status, _, _ = b.soap(envelope(call_xml()), system="CMS-A", password="pw-CMS-B")
    assert status == 401


def test_soap_12_requests_get_soap_12_responses_and_faults(broker):
    status, headers, text = broker.soap(envelope(call_xml(), version=12), version=12)
    assert status == 200
    assert headers["Content-Type"].startswith("application/soap+xml")
    assert parse(text).tag == "{http://www.w3.org/2003/05/soap-envelope}Envelope"
    assert status_of(text) == "accepted"
    status, headers, text = broker.soap(envelope("<ici:nope/>", version=12), version=12)
    assert status == 400
    root = parse(text)
    assert root.tag == "{http://www.w3.org/2003/05/soap-envelope}Envelope"
    assert find_local(root, "Value").text.endswith("Sender")
    assert find_local(root, "faultcode") is None
    assert fault_of(text) == ("unknownOperation", None)


def test_euro_sign_survives_the_round_trip(broker):
    attached = "&lt;ItemAttachedData&gt;&lt;Application id=\"SAP-IC\"&gt;&lt;BP&gt;Müller €&lt;/BP&gt;&lt;/Application&gt;&lt;/ItemAttachedData&gt;"
    status, _, text = broker.soap(envelope(call_xml(attached=attached)))
    assert status == 200, text
    broker.soap(envelope(chat_xml(id="chat-9", version=1, state="active")))
    posting = ("<ici:chatNewPosting><posting><chatSessionId>chat-9</chatSessionId><chatParticipant>Ana</chatParticipant>"
               "<contentText>Preis: 10 €</contentText><systemMessage>false</systemMessage>"
               "<postDate>2026-11-22T10:00:05Z</postDate></posting></ici:chatNewPosting>")
    assert status_of(broker.soap(envelope(posting))[2]) == "accepted"
    assert status_of(broker.soap(envelope(posting))[2]) == "duplicate"
    items = {i["id"]: i for i in broker.items()}
    assert "Müller €" in items["c-1001"]["attachedData"]
    assert items["chat-9"]["postings"][0]["contentText"] == "Preis: 10 €"


def test_agent_state_and_subscription_end_are_accepted(broker):
    user = ("<ici:userChanged><user><userId>alice</userId><state>ready</state><reasonCode>0</reasonCode>"
            "<addresses><item>+49301111</item></addresses><channels><item>phone</item></channels></user></ici:userChanged>")
    assert status_of(broker.soap(envelope(user))[2]) == "accepted"
    assert status_of(broker.soap(envelope(user))[2]) == "duplicate"
    agents = json.loads(broker.ctl("agents", "--json").stdout)["agents"]
    assert [(a["userId"], a["state"]) for a in agents] == [("alice", "ready")]
    ended = "<ici:subscriptionEnded><reason>maintenance</reason></ici:subscriptionEnded>"
    assert status_of(broker.soap(envelope(ended))[2]) == "accepted"
    systems = json.loads(broker.ctl("systems", "--json").stdout)["systems"]
    assert systems[0]["subscription"] == "ended"


def test_pipelined_requests_on_one_connection_are_answered_in_order(broker):
    import base64
    auth = base64.b64encode(b"cms-a:pw-CMS-A").decode()
    raw = b""
    for v in (1, 2, 3):
        body = envelope(call_xml(version=v, state="alerting" if v == 1 else "connected")).encode()
        raw += (f"POST /ici HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while data.count(b"</SOAP-ENV:Envelope>") < 3:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 3
    assert [i["version"] for i in broker.items()] == [3]


def test_the_wsdls_are_served_and_match_the_shipped_copies(broker):
    import os
    here = os.path.join(os.path.dirname(__file__), "..", "..", "protocol", "wsdl")
    status, headers, text = broker.soap("", method="GET", target="/ici?wsdl", system=None)
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert 'name="IciBroker"' in text and f"127.0.0.1:{broker.port}/ici" in text
    with open(os.path.join(here, "IciBroker.wsdl")) as f:
        shipped = f.read()
    assert text.replace(f"http://127.0.0.1:{broker.port}/ici", "http://localhost:8450/ici") == shipped
    status, _, cms = broker.soap("", method="GET", target="/ici?wsdl=cms", system=None)
    assert status == 200 and 'name="IciCms"' in cms
    with open(os.path.join(here, "IciCms.wsdl")) as f:
        assert cms == f.read()


def test_the_admin_socket_replaces_only_a_stale_socket(make_broker):
    # A file where the socket should be: refused at start, and left as it was.
    b = make_broker()
    with open(b.socket_path, "w") as f:
        f.write("keep me\n")
    b.start(expect_ready=False, clear_socket=False)
    assert b.proc.wait(timeout=10) == 1
    assert "not a socket" in b.log_text() and "left alone" in b.log_text()
    assert open(b.socket_path).read() == "keep me\n"
    os.unlink(b.socket_path)

    # A stale socket (nobody accepts on it) is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(b.socket_path)
    stale.close()
    b.start(clear_socket=False)
    assert b.status()["ready"]

    # A second broker on the same path is refused while the first serves it.
    other = make_broker()
    with open(b.config_path) as f:
        config = f.read()
    other.write_config(config.replace(b.journal_path, other.journal_path))
    other.socket_path = b.socket_path
    other.start(expect_ready=False, clear_socket=False)
    assert other.proc.wait(timeout=10) == 1
    assert "another process accepts connections on it" in other.log_text()
    assert b.status()["ready"]  # the first still answers on it

    # A clean stop removes the broker's own socket.
    b.stop()
    assert not os.path.lexists(b.socket_path)


def test_a_request_framed_by_anything_but_its_length_or_plain_chunks_is_refused_and_closed(broker):
    import base64
    auth = "Basic " + base64.b64encode(b"cms-a:pw-CMS-A").decode()
    body = envelope(call_xml(id="te-1")).encode()

    def exchange(framing, payload):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
        head = (f"POST /ici HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                f"Content-Type: text/xml; charset=utf-8\r\n{framing}\r\n").encode()
        # A second request right behind: it must not be read out of step with the first.
        second = (f"POST /ici HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n"
                  f"Content-Type: text/xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        s.sendall(head + payload + second)
        data = read_until_closed(s)
        s.close()
        return data.decode("utf-8", "replace")

    for framing in (f"Transfer-Encoding: xchunked\r\nContent-Length: {len(body)}\r\n",
                    f"Transfer-Encoding: chunked\r\nContent-Length: {len(body)}\r\n",
                    "Transfer-Encoding: gzip, chunked\r\n"):
        payload = body if "Content-Length" in framing else f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        answer = exchange(framing, payload)
        assert answer.startswith("HTTP/1.1 400"), answer[:200]
        assert answer.count("HTTP/1.1 ") == 1, "the connection was not closed after the refusal"
    assert broker.items() == []
    # Plain chunked coding is fine, and so is the request behind it (a duplicate of the first).
    answer = exchange("Transfer-Encoding: chunked\r\n", f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    assert answer.startswith("HTTP/1.1 200") and "accepted" in answer
    assert answer.count("HTTP/1.1 200") == 2 and "duplicate" in answer
