"""Starts the real commbrokerd on port 0 with a generated config and drives it over real sockets.

Every wait is on a condition with a deadline; every process started here is stopped at teardown,
and teardown fails the test if one of them wrote a sanitizer report or died of a signal the test
did not send it.
"""
import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

BUILD = os.environ.get("COMMBROKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
DAEMON = os.path.join(BUILD, "daemon", "commbrokerd")
CTL = os.path.join(BUILD, "ctl", "commbrokerctl")
CMSS = os.path.join(BUILD, "sim", "commbroker-cmss")

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ICI = "urn:commbroker:ici:1"

# What AddressSanitizer, UndefinedBehaviorSanitizer, LeakSanitizer and ThreadSanitizer write when
# they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer")

_hash_cache = {}


def sanitizer_reports(text):
    """The lines of a process's output that start a sanitizer report."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def check_tool_output(what, result):
    """Fails when a short-lived tool (commbrokerctl) wrote a sanitizer report or died of a signal."""
    reports = sanitizer_reports(result.stderr or "")
    if reports or result.returncode < 0:
        raise AssertionError(f"{what} exited with {result.returncode}, sanitizer reports {reports}:\n"
                             f"{result.stderr}")
    return result


class ProcessWatch:
    """Remembers how each process a wrapper started ended, for the check at cleanup."""

    def __init__(self, name):
        self.name = name
        self.problems = []
        self._signals_sent = set()

    def started(self):
        self._signals_sent = set()

    def sent(self, sig):
        self._signals_sent.add(sig)

    def ended(self, returncode):
        if returncode is not None and returncode < 0 and -returncode not in self._signals_sent:
            self.problems.append(f"{self.name} died of {signal.Signals(-returncode).name}")

    def check(self, log_text):
        """Raises if a process died of a signal nobody sent, or its log has a sanitizer report."""
        reports = sanitizer_reports(log_text)
        if reports:
            self.problems.append(f"{self.name} wrote sanitizer reports: {reports}")
        if self.problems:
            raise AssertionError("; ".join(self.problems) + "\n--- log ---\n" + log_text[-20000:])


def cleanup_all(wrappers):
    """Cleans up every wrapper, then raises the first failure any of them reported."""
    failures = []
    for w in wrappers:
        try:
            w.cleanup()
        except AssertionError as e:
            failures.append(e)
    if failures:
        raise failures[0]


def hash_password(password):
    if password not in _hash_cache:
        out = check_tool_output("commbrokerctl hash-password", subprocess.run(
            [CTL, "hash-password", "--iterations", "10000"], input=password + "\n",
            capture_output=True, text=True, check=True))
        _hash_cache[password] = out.stdout.strip()
    return _hash_cache[password]


def wait_for(predicate, timeout=10.0, what="condition", between=None, every=0.02):
    """Polls `predicate` every `every` seconds until it is true; `between` runs before each look."""
    deadline = time.monotonic() + timeout
    while True:
        if between:
            between()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def read_until_closed(sock):
    """Everything the peer sends on `sock` until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Broker:
    """One commbrokerd process with its own directory, config and journal."""

    def __init__(self, sync="normal", systems=("CMS-A",), extra="", directory=None, cms_urls=None,
                 agents=(), desktop=False, limits='maxBodyBytes="16384"', probe="5s", grace="30s",
                 probe_timeout="15s", journal_attrs="", env=None, heartbeat='lag="15s"',
                 listen_attrs=None, admin_tcp=False, desktop_ca=None):
        # listen_attrs: {"ici": 'tlsCertificate="…" tlsKey="…"', …}, added to that <listen>;
        # desktop_ca: the CA file a Desktop trusts for wss (None: ws in clear)
        self.dir = directory or tempfile.mkdtemp(prefix="commbroker-it-")
        self.config_path = os.path.join(self.dir, "commbroker.xml")
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.journal_path = os.path.join(self.dir, "journal.db")
        self.log_path = os.path.join(self.dir, "commbrokerd.log")
        self.systems = systems
        self.proc = None
        self.env = dict(os.environ, **(env or {}))
        self.watch = ProcessWatch("commbrokerd")
        self.desktops = []  # closed before the broker stops, so that it need not wait for them
        cms_urls = cms_urls or {}
        cms = "\n".join(
            f'  <cms id="{s}" url="{cms_urls.get(s, "http://127.0.0.1:9/cms")}" user="broker" password="secret" '
            f'inboundUser="{s.lower()}" inboundPasswordHash="{hash_password("pw-" + s)}" '
            f'probeInterval="{probe}" probeTimeout="{probe_timeout}" requestTimeout="1s"/>' for s in systems)
        # agents: (id, role, cms) tuples; every agent's password is "pw-" + id
        agent_xml = "\n".join(
            f'  <agent id="{a}" passwordHash="{hash_password("pw-" + a)}" role="{role}" cms="{c}"/>'
            for a, role, c in agents)
        listen_attrs = listen_attrs or {}
        self.desktop_ca = desktop_ca
        desktop_listen = (f'  <listen service="desktop" address="127.0.0.1" port="0" {listen_attrs.get("desktop", "")}/>'
                          if desktop else "")
        if admin_tcp:
            desktop_listen += f'\n  <listen service="admin" address="127.0.0.1" port="0" {listen_attrs.get("admin", "")}/>'

        self.write_config(f"""<commbroker>
  <node id="it-broker"/>
  <listen service="ici" address="127.0.0.1" port="0" {listen_attrs.get("ici", "")}/>
{desktop_listen}
  <adminSocket path="{self.socket_path}" mode="0600"/>
  <journal path="{self.journal_path}" sync="{sync}" {journal_attrs}/>
  <limits {limits}/>
  <heartbeatProfile id="default" grace="{grace}" {heartbeat}/>
{cms}
{agent_xml}
{extra}
</commbroker>
""")

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, expect_ready=True, clear_socket=True):
        if clear_socket and os.path.lexists(self.socket_path):
            os.unlink(self.socket_path)
        if self.proc:
            self.watch.ended(self.proc.poll())
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DAEMON, "--config", self.config_path], stdout=self.log, stderr=self.log,
                                     env=self.env)
        self.watch.started()
        if expect_ready:
            wait_for(self._ready, what="commbrokerd ready")
            listeners = self.status()["listeners"]
            self.port = next(l["port"] for l in listeners if l["service"] == "ici")
            self.desktop_port = next((l["port"] for l in listeners if l["service"] == "desktop"), None)
            self.admin_port = next((l["port"] for l in listeners if l["service"] == "admin" and "port" in l),
                                   None)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"commbrokerd exited with {self.proc.returncode}:\n{self.log_text()}")
        if not os.path.exists(self.socket_path):
            return False
        try:
            return self.status()["ready"]
        except OSError:
            return False

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def admin(self, method, path, body=None):
        conn = UnixHTTPConnection(self.socket_path)
        conn.request(method, path, body=body)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, json.loads(data) if data else None

    def status(self):
        return self.admin("GET", "/admin/v1/status")[1]

    def admin_get_text(self, path):
        """GET of a text resource (/metrics, /healthz) on the admin socket: (status, body)."""
        conn = UnixHTTPConnection(self.socket_path)
        conn.request("GET", path)
        res = conn.getresponse()
        text = res.read().decode()
        conn.close()
        return res.status, text

    def admin_text(self, path):
        return self.admin_get_text(path)[1]

    def items(self, query=""):
        status, body = self.admin("GET", "/admin/v1/items" + query)
        assert status == 200, body
        return body["items"]

    def ctl(self, *args, input=None):
        return check_tool_output("commbrokerctl", subprocess.run(
            [CTL, "--socket", self.socket_path, *args], capture_output=True, text=True, input=input,
            timeout=30))

    def soap(self, body, system="CMS-A", version=11, password=None, content_type=None, method="POST",
             target="/ici", headers=None, connection=None):
        """Sends one request on a fresh connection (or on `connection`, left open); returns
        (status, headers, body text)."""
        conn = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": content_type or ("text/xml; charset=utf-8" if version == 11
                                                 else "application/soap+xml; charset=utf-8")}
        if system is not None:
            pw = password if password is not None else "pw-" + system
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{system.lower()}:{pw}".encode()).decode()
        hdrs.update(headers or {})
        conn.request(method, target, body=body.encode() if isinstance(body, str) else body, headers=hdrs)
        res = conn.getresponse()
        text = res.read().decode("utf-8")
        if connection is None:
            conn.close()
        return res.status, dict(res.getheaders()), text

    def send_signal(self, sig):
        """Signals the running commbrokerd; dying of this signal is then not a failure."""
        self.watch.sent(sig)
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        """Stops the process and removes its directory; fails on a sanitizer report or a crash.

        SIGTERM, not SIGKILL: a process that exits normally is searched for leaks at exit."""
        for d in self.desktops:
            d.close()
        self.stop(signal.SIGTERM)
        try:
            if self.proc:
                self.watch.ended(self.proc.returncode)
                self.watch.check(self.log_text())
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def keep_alive(desktops, predicate, timeout=10.0, what="condition"):
    """Waits for `predicate` while every desktop in `desktops` sends a heartbeat every 200 ms."""
    def beat():
        for d in desktops:
            d.send({"type": "heartbeat"})
    return wait_for(predicate, timeout, what, between=beat, every=0.2)


@contextlib.contextmanager
def beating(*desktops):
    """Sends a heartbeat from each desktop every 200 ms while the block runs (slow builds take
    longer than a heartbeat window between two steps)."""
    stop = threading.Event()

    def run():
        while not stop.wait(0.2):
            for d in desktops:
                try:
                    d.send({"type": "heartbeat"})
                except Exception:  # closed by the test: nothing more to send
                    return
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def logged_on(broker, agent="alice"):
    """A desktop of `agent` that said hello and logged on at CMS-A, ready."""
    d = Desktop(broker, agent)
    d.expect_type("welcome")
    d.expect_type("snapshot")
    r = d.request({"type": "logon", "system": "CMS-A", "address": "+49301111", "channels": ["phone", "chat", "email"]})
    assert r["ok"], r
    d.expect_event("userChanged", userId=agent, state="ready")
    return d


def envelope(body, version=11, header=""):
    ns = SOAP11 if version == 11 else SOAP12
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (f'<soap:Envelope xmlns:soap="{ns}" xmlns:ici="{ICI}">{head}'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>")


def call_xml(id="c-1001", version=1, state="alerting", agent="alice", remote="+493012345678",
             attached=None, extra=""):
    attached_xml = f"<attachedData>{attached}</attachedData>" if attached is not None else ""
    return (f"<ici:phoneCallChanged><call><id>{id}</id><version>{version}</version><state>{state}</state>"
            f"<agentId>{agent}</agentId><containerId>line-1</containerId>"
            f"<participants><item><userId>{agent}</userId><role>agent</role><address>+49301111</address></item></participants>"
            f"<capabilityList><item>answer</item></capabilityList>{attached_xml}"
            f"<changedAt>2026-11-22T10:00:00Z</changedAt><direction>inbound</direction>"
            f"<remoteNumbers><item>{remote}</item></remoteNumbers><localAddress>+49301111</localAddress>{extra}"
            f"</call></ici:phoneCallChanged>")


def chat_xml(id="chat-1", version=1, state="offered", agent="alice"):
    return (f"<ici:chatChanged><chat><id>{id}</id><version>{version}</version><state>{state}</state>"
            f"<agentId>{agent}</agentId><changedAt>2026-11-22T10:00:00Z</changedAt>"
            f"<topic>billing</topic><customerName>Ana</customerName></chat></ici:chatChanged>")


def parse(text):
    return ET.fromstring(text)


def find_local(root, name):
    """First element with this local name, whatever its namespace."""
    for el in root.iter():
        if el.tag.split("}")[-1] == name:
            return el
    return None


def status_of(text):
    el = find_local(parse(text), "status")
    return el.text if el is not None else None


def fault_of(text):
    """(code, field) of an iciFault detail."""
    root = parse(text)
    detail = find_local(root, "iciFault")
    assert detail is not None, text
    code = find_local(detail, "code")
    field = find_local(detail, "field")
    return code.text, field.text if field is not None else None


class Simulator:
    """One commbroker-cmss process on a free port."""

    def __init__(self, system="CMS-A", args=(), ca=None, client_cert=None):
        """ca: the CA file that makes the simulator's certificate trusted, when it serves TLS
        (args with --tls-certificate and --tls-key); client_cert: (certificate, key) that the
        control requests present, when it asks for one (--tls-client-ca)."""
        self.system = system
        self.ca = ca
        self.client_cert = client_cert
        self.dir = tempfile.mkdtemp(prefix="commbroker-cmss-")
        self.log_path = os.path.join(self.dir, "cmss.log")
        self.log = open(self.log_path, "wb")
        self.watch = ProcessWatch(f"commbroker-cmss {system}")
        self.proc = subprocess.Popen(
            [CMSS, "--listen", "127.0.0.1:0", "--system", system, "--broker-user", system.lower(),
             "--broker-password", "pw-" + system, *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise AssertionError(f"commbroker-cmss did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}/cms"

    def control(self, action, body=None, method=None):
        if self.ca:
            import ssl
            context = ssl.create_default_context(cafile=self.ca)
            if self.client_cert:
                context.load_cert_chain(*self.client_cert)
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        method = method or ("GET" if body is None and action == "state" else "POST")
        conn.request(method, "/control/" + action, body=json.dumps(body or {}) if method == "POST" else None)
        res = conn.getresponse()
        data = json.loads(res.read() or b"null")
        conn.close()
        return res.status, data

    def state(self):
        return self.control("state")[1]

    def offer(self, channel="phone", agent=None, **extra):
        body = {"channel": channel, **extra}
        if agent:
            body["agent"] = agent
        status, data = self.control("offer", body)
        assert status == 200, data
        return data["id"]

    def stop(self):
        """Stops the process and removes its directory; fails on a sanitizer report or a crash."""
        if self.proc.poll() is None:
            self.watch.sent(signal.SIGTERM)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.watch.sent(signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        try:
            self.watch.ended(self.proc.returncode)
            with open(self.log_path, errors="replace") as f:
                self.watch.check(f.read())
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    cleanup = stop


class Desktop:
    """A WebSocket client of /desktop that keeps every frame it received, in order."""

    def __init__(self, broker, agent=None, password=None, resume=None, hello=True):
        import websocket  # python3-websocket
        if broker.desktop_ca:
            self.ws = websocket.create_connection(f"wss://127.0.0.1:{broker.desktop_port}/desktop", timeout=10,
                                                  sslopt={"ca_certs": broker.desktop_ca})
        else:
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{broker.desktop_port}/desktop", timeout=10)
        broker.desktops.append(self)
        self.frames = []
        self.closed = False
        self.agent = agent
        if hello and agent:
            self.hello(agent, password if password is not None else "pw-" + agent, resume)

    def send(self, obj):
        self.ws.send(json.dumps(obj) if not isinstance(obj, str) else obj)

    def hello(self, agent, password, resume=None):
        msg = {"type": "hello", "agent": agent, "password": password}
        if resume:
            msg["resume"] = resume
        self.send(msg)

    def _read_one(self, timeout):
        import websocket
        self.ws.settimeout(timeout)
        try:
            op, data = self.ws.recv_data()
        except (websocket.WebSocketTimeoutException, socket.timeout):
            return None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            self.closed = True
            return None
        if op == 8:  # close
            self.closed = True
            return None
        frame = json.loads(data)
        self.frames.append(frame)
        return frame

    def expect(self, predicate, timeout=10.0, what="frame"):
        """Returns the first frame (old or new) matching predicate, reading as needed."""
        for f in self.frames:
            if predicate(f) and not f.get("_taken"):
                f["_taken"] = True
                return f
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            f = self._read_one(max(0.01, deadline - time.monotonic()))
            if f is not None and predicate(f):
                f["_taken"] = True
                return f
        raise AssertionError(f"timed out waiting for {what}; got {[ {k: v for k, v in f.items() if k != '_taken'} for f in self.frames][-8:]}")

    def expect_type(self, type_, timeout=10.0, **fields):
        return self.expect(lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items()),
                           timeout, what=f"{type_} {fields}")

    def expect_event(self, event, timeout=10.0, **data):
        return self.expect(lambda f: f.get("type") == "event" and f.get("event") == event
                           and all(f["data"].get(k) == v for k, v in data.items()),
                           timeout, what=f"event {event} {data}")

    def request(self, msg, timeout=10.0):
        """Sends a request with a fresh id and returns its result frame."""
        Desktop._next = getattr(Desktop, "_next", 0) + 1
        msg = dict(msg, id=Desktop._next)
        self.send(msg)
        return self.expect(lambda f: f.get("type") == "result" and f.get("id") == msg["id"], timeout,
                           what=f"result of {msg}")

    def wait_closed(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read_one(0.2)
        return self.closed

    def events(self):
        return [f for f in self.frames if f.get("type") == "event"]

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        # close() leaves the TCP connection open when the broker closed the WebSocket first.
        self.ws.shutdown()
