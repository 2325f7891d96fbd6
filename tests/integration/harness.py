"""Starts the real commbrokerd on port 0 with a generated config and drives it over real sockets.

Every wait is on a condition with a deadline; every process started here is stopped at teardown.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

BUILD = os.environ.get("COMMBROKER_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
DAEMON = os.path.join(BUILD, "daemon", "commbrokerd")
CTL = os.path.join(BUILD, "ctl", "commbrokerctl")

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ICI = "urn:commbroker:ici:1"

_hash_cache = {}


def hash_password(password):
    if password not in _hash_cache:
        out = subprocess.run([CTL, "hash-password", "--iterations", "10000"], input=password + "\n",
                             capture_output=True, text=True, check=True)
        _hash_cache[password] = out.stdout.strip()
    return _hash_cache[password]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


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

    def __init__(self, sync="normal", systems=("CMS-A",), extra="", directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="commbroker-it-")
        self.config_path = os.path.join(self.dir, "commbroker.xml")
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.journal_path = os.path.join(self.dir, "journal.db")
        self.log_path = os.path.join(self.dir, "commbrokerd.log")
        self.systems = systems
        self.proc = None
        cms = "\n".join(
            f'  <cms id="{s}" url="http://127.0.0.1:9/cms" inboundUser="{s.lower()}" '
            f'inboundPasswordHash="{hash_password("pw-" + s)}"/>' for s in systems)
        self.write_config(f"""<commbroker>
  <node id="it-broker"/>
  <listen service="ici" address="127.0.0.1" port="0"/>
  <adminSocket path="{self.socket_path}" mode="0600"/>
  <journal path="{self.journal_path}" sync="{sync}"/>
  <limits maxBodyBytes="16384"/>
{cms}
{extra}
</commbroker>
""")

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, expect_ready=True):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DAEMON, "--config", self.config_path], stdout=self.log, stderr=self.log)
        if expect_ready:
            wait_for(self._ready, what="commbrokerd ready")
            self.port = next(l["port"] for l in self.status()["listeners"] if l["service"] == "ici")
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

    def items(self, query=""):
        status, body = self.admin("GET", "/admin/v1/items" + query)
        assert status == 200, body
        return body["items"]

    def ctl(self, *args, input=None):
        return subprocess.run([CTL, "--socket", self.socket_path, *args], capture_output=True, text=True,
                              input=input, timeout=30)

    def soap(self, body, system="CMS-A", version=11, password=None, content_type=None, method="POST",
             target="/ici", headers=None):
        """Sends one request on a fresh connection; returns (status, headers, body text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": content_type or ("text/xml; charset=utf-8" if version == 11
                                                 else "application/soap+xml; charset=utf-8")}
        if system is not None:
            pw = password if password is not None else "pw-" + system
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{system.lower()}:{pw}".encode()).decode()
        hdrs.update(headers or {})
        conn.request(method, target, body=body.encode() if isinstance(body, str) else body, headers=hdrs)
        res = conn.getresponse()
        text = res.read().decode("utf-8")
        conn.close()
        return res.status, dict(res.getheaders()), text

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


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
