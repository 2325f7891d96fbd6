"""TLS on every listener and to the CMSs, with a test CA made by openssl at test time: the ici
port, the admin API and the desktop WebSocket (wss) over TLS; plain text and weak ciphers
refused on a TLS port; a CMS reached over https with its certificate verified, and refused with
a CA that did not sign it; the broker's certificate renewed by a reload without dropping the
connections already open, and a reload with a broken certificate refused as a whole."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile

import pytest

from harness import Desktop, call_xml, envelope, read_until_closed, status_of, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
            cwd=directory)
    return os.path.join(directory, f"{name}.crt")


def make_cert(directory, ca, name, cn):
    """A certificate for 127.0.0.1 and localhost, signed by `ca`: (certificate, key) paths."""
    with open(os.path.join(directory, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="commbroker-pki-")
    p = {"dir": d, "ca": make_ca(d, "test-ca"), "other_ca": make_ca(d, "other-ca")}
    p["server"] = make_cert(d, "test-ca", "server", "broker-first")
    p["renewed"] = make_cert(d, "test-ca", "renewed", "broker-renewed")
    p["cms"] = make_cert(d, "test-ca", "cms", "cms-a")
    yield p
    shutil.rmtree(d, ignore_errors=True)


def tls_attrs(cert, key):
    return f'tlsCertificate="{cert}" tlsKey="{key}"'


def https(port, ca):
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cafile=ca))


def peer_cn(conn):
    subject = dict(x[0] for x in conn.sock.getpeercert()["subject"])
    return subject["commonName"]


def test_every_listener_speaks_tls_and_refuses_plain_text(make_broker, pki):
    cert, key = pki["server"]
    broker = make_broker(desktop=True, admin_tcp=True, agents=(("alice", "agent", "CMS-A"),),
                         listen_attrs={s: tls_attrs(cert, key) for s in ("ici", "desktop", "admin")},
                         desktop_ca=pki["ca"]).start()
    assert all(l.get("tls") for l in broker.status()["listeners"] if "port" in l)

    # ici: a SOAP event over https, verified against the test CA.
    conn = https(broker.port, pki["ca"])
    status, _, text = broker.soap(envelope(call_xml()), connection=conn)
    assert status == 200 and status_of(text) == "accepted", text
    assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert peer_cn(conn) == "broker-first"
    conn.close()

    # admin API over TLS.
    conn = https(broker.admin_port, pki["ca"])
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()

    # desktop over wss: hello, welcome.
    d = Desktop(broker, agent="alice")
    d.expect_type("welcome")

    # Plain HTTP on the TLS port gets no HTTP answer: the handshake fails and the socket closes.
    for port in (broker.port, broker.admin_port, broker.desktop_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_until_closed(s)
            assert not data.startswith(b"HTTP/"), data

    # A client that offers only a CBC cipher over TLS 1.2 finds nothing in common.
    weak = ssl.create_default_context(cafile=pki["ca"])
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-ECDSA-AES128-SHA")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
            weak.wrap_socket(raw, server_hostname="127.0.0.1")

    # A client that does not trust the broker's CA refuses it.
    with pytest.raises(ssl.SSLCertVerificationError):
        c = https(broker.port, pki["other_ca"])
        c.request("GET", "/ici")

    metrics = broker.admin_text("/metrics")
    # HTTPS clients that close without TLS's close_notify are not malformed requests.
    assert 'commbroker_http_closed_total{reason="badRequest"} 0' in metrics
    assert 'commbroker_http_closed_total{reason="tlsHandshake"} ' in metrics
    failed = int(metrics.split('commbroker_http_closed_total{reason="tlsHandshake"} ')[1].split()[0])
    assert failed >= 3  # two plain-text connections, the weak cipher, the distrusting client
    assert 'commbroker_desktop_refused_total{reason="tlsHandshake"} 1' in metrics


def cms_with_tls(broker, sim, attrs):
    """Adds TLS attributes to the broker's <cms> of `sim` in its config file."""
    text = open(broker.config_path).read().replace(f'url="{sim.url}"', f'url="{sim.url}" {attrs}')
    broker.write_config(text)


def test_a_cms_over_https_is_verified_and_talks_back_over_https(make_broker, make_sim, pki):
    cert, key = pki["cms"]
    bcert, bkey = pki["server"]
    sim = make_sim("CMS-A", ("--tls-certificate", cert, "--tls-key", key, "--broker-ca", pki["ca"]),
                   ca=pki["ca"])
    broker = make_broker(
        cms_urls={"CMS-A": sim.url}, probe="200ms", listen_attrs={"ici": tls_attrs(bcert, bkey)})
    cms_with_tls(broker, sim, f'tlsCaFile="{pki["ca"]}"')  # the CMS's CA
    broker.start()
    wait_for(lambda: sim.state()["subscribed"], what="the broker subscribes over https")
    systems = broker.status()["systems"]
    assert systems[0]["available"] is True
    # The simulator reaches the broker at its https appURL, verified with --broker-ca.
    sim.control("offer", {"channel": "phone", "agent": "alice"})
    wait_for(lambda: len(broker.items()) == 1, what="the offer reaches the broker over https")


def test_a_cms_whose_certificate_the_ca_did_not_sign_is_unavailable(make_broker, make_sim, pki):
    cert, key = pki["cms"]
    sim = make_sim("CMS-A", ("--tls-certificate", cert, "--tls-key", key), ca=pki["ca"])
    broker = make_broker(cms_urls={"CMS-A": sim.url}, probe="200ms", probe_timeout="1s")
    cms_with_tls(broker, sim, f'tlsCaFile="{pki["other_ca"]}"')
    broker.start()

    def refused():
        status, body = broker.admin("GET", "/admin/v1/systems")
        link = body["systems"][0]
        return link["available"] is False and "certificate verify failed" in link.get("lastError", "")
    wait_for(refused, what="the CMS refused for its certificate")
    assert not sim.state()["subscribed"]


def test_a_reload_renews_the_certificate_and_keeps_open_connections(make_broker, pki):
    d = tempfile.mkdtemp(prefix="commbroker-tls-reload-")
    try:
        cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        shutil.copy(pki["server"][0], cert)
        shutil.copy(pki["server"][1], key)
        broker = make_broker(listen_attrs={"ici": tls_attrs(cert, key)}).start()
        kept = https(broker.port, pki["ca"])
        status, _, _ = broker.soap(envelope(call_xml(id="c-1")), connection=kept)
        assert status == 200 and peer_cn(kept) == "broker-first"

        shutil.copy(pki["renewed"][0], cert)
        shutil.copy(pki["renewed"][1], key)
        broker.send_signal(signal.SIGHUP)

        def renewed():
            c = https(broker.port, pki["ca"])
            c.connect()
            cn = peer_cn(c)
            c.close()
            return cn == "broker-renewed"
        wait_for(renewed, what="new connections get the renewed certificate")
        # The connection made before the reload goes on with what it had.
        status, _, text = broker.soap(envelope(call_xml(id="c-2")), connection=kept)
        assert status == 200 and status_of(text) == "accepted", text
        assert peer_cn(kept) == "broker-first"
        kept.close()

        # A broken certificate refuses the whole reload; the renewed one stays in use.
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        status, body = broker.admin("POST", "/admin/v1/reload")
        assert status == 400, body
        assert "ici listener" in str(body), body
        c = https(broker.port, pki["ca"])
        c.connect()
        assert peer_cn(c) == "broker-renewed"
        c.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_listener_whose_key_does_not_match_refuses_to_start(make_broker, pki):
    cert, _ = pki["server"]
    _, other_key = pki["renewed"]
    broker = make_broker(listen_attrs={"ici": tls_attrs(cert, other_key)})
    broker.start(expect_ready=False)
    broker.proc.wait(timeout=15)
    assert broker.proc.returncode != 0
    assert "does not belong to the certificate" in broker.log_text()


def test_a_silent_client_on_a_tls_port_is_closed_after_the_handshake_timeout(make_broker, pki):
    cert, key = pki["server"]
    broker = make_broker(listen_attrs={"ici": tls_attrs(cert, key)},
                         limits='tlsHandshakeTimeout="300ms"').start()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        wait_for(lambda: "commbroker_open_connections 1\n" in broker.admin_text("/metrics"),
                 what="the silent connection counted as open")
        # Nothing sent: the broker closes the connection, without an answer, well before 10 s.
        assert s.recv(4096) == b""
    wait_for(lambda: "commbroker_open_connections 0\n" in broker.admin_text("/metrics"),
             what="its place given back")
    wait_for(lambda: 'commbroker_http_closed_total{reason="tlsHandshake"} 1' in broker.admin_text("/metrics"),
             what="the silent handshake counted")


def test_a_source_opening_tls_connections_too_fast_is_refused_before_any_tls_work(make_broker, pki):
    cert, key = pki["server"]
    broker = make_broker(listen_attrs={"ici": tls_attrs(cert, key)},
                         limits='tlsHandshakesPerSource="5"').start()
    context = ssl.create_default_context(cafile=pki["ca"])
    made = refused = 0
    for _ in range(30):
        try:
            with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    made += 1
        except (ssl.SSLError, ConnectionError, OSError):
            refused += 1
    assert made >= 5 and refused >= 10, (made, refused)
    metrics = broker.admin_text("/metrics")
    limited = int(metrics.split('commbroker_http_closed_total{reason="tlsRate"} ')[1].split()[0])
    assert limited == refused


def test_an_encrypted_key_is_refused_at_start_without_asking_for_a_passphrase(make_broker, pki):
    cert, key = pki["server"]
    encrypted = os.path.join(pki["dir"], "encrypted.key")
    openssl("pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", encrypted, cwd=pki["dir"])
    broker = make_broker(listen_attrs={"ici": tls_attrs(cert, encrypted)})
    broker.start(expect_ready=False)
    broker.proc.wait(timeout=15)  # a prompt on the terminal would hang here
    assert broker.proc.returncode != 0
    assert "is encrypted" in broker.log_text()


def test_the_broker_presents_its_client_certificate_to_a_cms_that_asks(make_broker, make_sim, pki):
    cert, key = pki["cms"]
    client_cert, client_key = pki["renewed"]  # signed by the test CA, for clientAuth too
    sim = make_sim("CMS-A", ("--tls-certificate", cert, "--tls-key", key, "--tls-client-ca", pki["ca"]),
                   ca=pki["ca"], client_cert=pki["cms"])
    without = make_broker(cms_urls={"CMS-A": sim.url}, probe="200ms", probe_timeout="1s")
    cms_with_tls(without, sim, f'tlsCaFile="{pki["ca"]}"')
    without.start()

    def refused():
        link = without.admin("GET", "/admin/v1/systems")[1]["systems"][0]
        return link["available"] is False and "certificate required" in link.get("lastError", "")
    wait_for(refused, what="the CMS refuses a broker without a client certificate")
    assert not sim.state()["subscribed"]
    without.stop()

    broker = make_broker(cms_urls={"CMS-A": sim.url}, probe="200ms")
    cms_with_tls(broker, sim,
                 f'tlsCaFile="{pki["ca"]}" tlsCertificate="{client_cert}" tlsKey="{client_key}"')
    broker.start()
    wait_for(lambda: sim.state()["subscribed"], what="the broker subscribes with its certificate")
    assert "client certificate /CN=broker-renewed" in broker.log_text()
