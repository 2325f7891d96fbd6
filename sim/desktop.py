#!/usr/bin/python3
"""commbroker-desktop: a small command-line agent desktop for commbrokerd's /desktop WebSocket.

    sim/desktop.py AGENT [--password P] [--url ws://127.0.0.1:8451/desktop] [--auto]

It prints every frame the broker sends and reads commands from standard input:

    logon [SYSTEM]       log on (all channels)         logoff
    ready | notready | wrapup                           set the work mode
    answer ID | hangup ID | hold ID | retrieve ID | reject ID
    transfer ID TO       blind transfer                 call +49301234   make a call
    accept ID | end ID | close ID                       chats and e-mails
    post ID TEXT         write in a chat                monitor all|system:ID  (supervisors)
    items                the items this desktop knows   quit

--auto logs on, answers every offered call, chat and e-mail after a second, and leaves ending
them to the customer: a robot agent for demos. It reconnects with its resume token when the
connection drops. Needs python3-websocket (installed by scripts/setup.sh).
"""
import argparse
import json
import sys
import threading
import time

import websocket

OPS = {"answer", "hangup", "hold", "retrieve", "reject", "accept", "end", "close"}


class Desktop:
    def __init__(self, args):
        self.args = args
        self.items = {}
        self.session = None
        self.last_seq = 0
        self.next_id = 1
        self.lock = threading.Lock()
        self.ws = None

    def connect(self):
        self.ws = websocket.create_connection(self.args.url, timeout=30)
        hello = {"type": "hello", "agent": self.args.agent, "password": self.args.password}
        if self.session:
            hello["resume"] = {"session": self.session, "lastSeq": self.last_seq}
        self.send(hello)

    def send(self, msg):
        with self.lock:
            if "type" in msg and msg["type"] not in ("hello", "ack", "heartbeat"):
                msg["id"] = self.next_id
                self.next_id += 1
            self.ws.send(json.dumps(msg))

    def show(self, text):
        print(time.strftime("%H:%M:%S"), text, flush=True)

    def on_frame(self, f):
        t = f.get("type")
        if t == "welcome":
            self.session = f["session"]
            self.show(f"welcome: session {f['session'][:8]}… seq {f['seq']} resumed={f['resumed']}")
            if self.args.auto and not f["resumed"]:
                self.send({"type": "logon", "channels": ["phone", "chat", "email"]})
        elif t == "snapshot":
            self.last_seq = f["seq"]
            self.items = {i["id"]: i for i in f["items"]}
            state = f["agent"]["state"] if f.get("agent") else "loggedOff"
            self.show(f"snapshot: {len(self.items)} item(s), agent {state}{' (resync)' if f['resync'] else ''}")
        elif t == "event":
            self.last_seq = f["seq"]
            d = f["data"]
            if f["event"] in ("phoneCallChanged", "chatChanged", "messageChanged"):
                self.items[d["id"]] = d
                if d["state"] in ("disconnected", "failed", "ended", "closed"):
                    self.items.pop(d["id"], None)
                who = ",".join(d.get("remoteNumbers", [])) or d.get("customerName") or d.get("originator", "")
                self.show(f"#{f['seq']} {d['channel']} {d['id']} {d['state']} {who}")
                if self.args.auto and d["state"] in ("alerting", "offered") and d.get("agentId") == self.args.agent:
                    op = "answer" if d["channel"] == "phone" else "accept"
                    threading.Timer(1.0, lambda: self.send({"type": "command", "item": d["id"], "op": op})).start()
            elif f["event"] == "chatNewPosting":
                self.show(f"#{f['seq']} chat {d['chatSessionId']} {d['chatParticipant']}: {d['contentText']}")
            elif f["event"] == "userChanged":
                self.show(f"#{f['seq']} agent {d['userId']} at {d['system']}: {d['state']}")
            else:
                self.show(f"#{f['seq']} {f['event']} {json.dumps(d)}")
            if f["seq"] % 20 == 0:
                self.send({"type": "ack", "seq": f["seq"]})
        elif t == "result":
            if not f["ok"]:
                self.show(f"request {f['id']} failed: {f['error']['code']}: {f['error']['message']}")
            elif not self.args.auto:
                self.show(f"request {f['id']} ok{' ' + json.dumps(f['data']) if 'data' in f else ''}")
        elif t == "heartbeat":
            pass
        elif t == "bye":
            self.show(f"bye: {f['reason']}")
        else:
            self.show(json.dumps(f))

    def reader(self):
        while True:
            try:
                op, data = self.ws.recv_data()
                if op == websocket.ABNF.OPCODE_CLOSE:
                    raise ConnectionError("closed")
                self.on_frame(json.loads(data))
            except (websocket.WebSocketException, ConnectionError, OSError) as e:
                self.show(f"connection lost ({e}); reconnecting")
                while True:
                    time.sleep(1)
                    try:
                        self.connect()
                        break
                    except OSError:
                        continue

    def heartbeat(self):
        while True:
            time.sleep(5)
            try:
                self.send({"type": "heartbeat"})
            except Exception:
                pass

    def command(self, line):
        words = line.split()
        if not words:
            return True
        w = words[0].lower()
        if w == "quit":
            return False
        if w == "logon":
            msg = {"type": "logon", "channels": ["phone", "chat", "email"]}
            if len(words) > 1:
                msg["system"] = words[1]
            self.send(msg)
        elif w == "logoff":
            self.send({"type": "logoff"})
        elif w in ("ready", "notready", "wrapup"):
            self.send({"type": "setState", "state": {"ready": "ready", "notready": "notReady", "wrapup": "wrapUp"}[w]})
        elif w in OPS and len(words) == 2:
            self.send({"type": "command", "item": words[1], "op": w})
        elif w == "transfer" and len(words) == 3:
            self.send({"type": "command", "item": words[1], "op": "transfer", "args": {"to": words[2]}})
        elif w == "post" and len(words) >= 3:
            self.send({"type": "command", "item": words[1], "op": "post", "args": {"text": " ".join(words[2:])}})
        elif w == "call" and len(words) == 2:
            self.send({"type": "makeCall", "to": words[1]})
        elif w == "monitor" and len(words) == 2:
            self.send({"type": "monitor", "scope": words[1]})
        elif w == "items":
            for i in self.items.values():
                print(f"  {i['channel']:5} {i['id']:12} {i['state']:12} {i.get('system', '')}")
        else:
            print("commands: logon [SYSTEM], logoff, ready, notready, wrapup, answer|hangup|hold|retrieve|reject|"
                  "accept|end|close ID, transfer ID TO, post ID TEXT, call NUMBER, monitor SCOPE, items, quit")
        return True


def main():
    p = argparse.ArgumentParser(description="A command-line agent desktop for commbrokerd.")
    p.add_argument("agent")
    p.add_argument("--password", help="default: the agent's ID (as in the demo config)")
    p.add_argument("--url", default="ws://127.0.0.1:8451/desktop")
    p.add_argument("--auto", action="store_true", help="answer every offer (a robot agent)")
    args = p.parse_args()
    args.password = args.password or args.agent
    d = Desktop(args)
    try:
        d.connect()
    except OSError as e:
        print(f"commbroker-desktop: cannot connect to {args.url}: {e}", file=sys.stderr)
        return 1
    threading.Thread(target=d.reader, daemon=True).start()
    threading.Thread(target=d.heartbeat, daemon=True).start()
    if args.auto:
        while True:
            time.sleep(3600)
    for line in sys.stdin:
        if not d.command(line):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
