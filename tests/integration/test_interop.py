"""Clients a vendor would generate from the WSDL (gSOAP wsdl2h/soapcpp2 from the shipped copy; zeep
and Node's soap package from the served one) talk to the broker."""
import os
import subprocess

import pytest

from harness import BUILD

CLIENT = os.path.join(BUILD, "tests", "interop", "interop_client")


def run(broker, *args):
    return subprocess.run([CLIENT, f"http://127.0.0.1:{broker.port}/ici", "cms-a", "pw-CMS-A", *args],
                          capture_output=True, text=True, timeout=30)


def test_a_wsdl2h_generated_client_reports_a_call_and_gets_accepted(broker):
    out = run(broker, "gen-1", "1", "alerting")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "accepted"
    assert [(i["id"], i["state"]) for i in broker.items()] == [("gen-1", "alerting")]
    assert run(broker, "gen-1", "1", "alerting").stdout.strip() == "duplicate"


def test_the_generated_client_sees_a_fault_for_a_forbidden_move(broker):
    run(broker, "gen-2", "1", "alerting")
    out = run(broker, "gen-2", "2", "held")
    assert out.returncode == 1
    assert "alerting to held" in out.stderr


# Clients generated at run time from the WSDL the broker serves (GET /ici?wsdl) by the toolkits
# vendors use most: Python's zeep and Node's soap package. Each reports a call, a duplicate and a
# forbidden move (a fault) end to end.
INTEROP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop")
CLIENTS = {
    "zeep": ["/usr/bin/python3", os.path.join(INTEROP, "zeep_client.py")],
    "node-soap": ["node", os.path.join(INTEROP, "node", "client.js")],
}


def run_client(kind, broker, *args):
    return subprocess.run([*CLIENTS[kind], f"http://127.0.0.1:{broker.port}/ici", "cms-a", "pw-CMS-A", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_served_wsdl_has_one_schema_per_namespace(broker):
    import http.client
    import xml.etree.ElementTree as ET
    for query in ("wsdl", "wsdl=cms"):
        conn = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=10)
        conn.request("GET", "/ici?" + query)
        root = ET.fromstring(conn.getresponse().read())
        namespaces = [s.get("targetNamespace") for s in root.iter("{http://www.w3.org/2001/XMLSchema}schema")]
        assert namespaces == ["urn:commbroker:ici:1"], (query, namespaces)


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_clients_generated_from_the_served_wsdl_report_a_call_a_duplicate_and_see_a_fault(broker, kind):
    out = run_client(kind, broker, f"{kind}-1", "1", "alerting")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "accepted"
    assert (f"{kind}-1", "alerting") in [(i["id"], i["state"]) for i in broker.items()]
    assert run_client(kind, broker, f"{kind}-1", "1", "alerting").stdout.strip() == "duplicate"
    out = run_client(kind, broker, f"{kind}-1", "2", "held")
    assert out.returncode == 1, out.stdout
    assert "alerting to held" in out.stderr, out.stderr
