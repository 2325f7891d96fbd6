#!/usr/bin/env python3
"""A small scripted CMS for the demo: reports calls, chats and e-mails of a few agents to
commbrokerd over SOAP, moving each through its states. (The full CMS simulator,
commbroker-cmss, serves the IciCms port and answers desktop commands.)"""
import argparse
import base64
import http.client
import random
import time
import urllib.parse
from datetime import datetime, timezone

ENV = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ici="urn:commbroker:ici:1">'
       '<soap:Header><ici:context><messageId>{mid}</messageId></ici:context></soap:Header>'
       '<soap:Body>{body}</soap:Body></soap:Envelope>')
AGENTS = ["alice", "bob", "carol", "dave"]
FLOWS = {
    "phone": ["alerting", "connected", "held", "connected", "disconnected"],
    "chat": ["offered", "active", "post", "post", "ended"],
    "email": ["offered", "active", "closed"],
}


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_xml(kind, item_id, version, state, agent):
    common = (f"<id>{item_id}</id><version>{version}</version><state>{state}</state><agentId>{agent}</agentId>"
              f"<participants><item><userId>{agent}</userId><role>agent</role><address>+4930{random.randint(1000, 9999)}</address></item></participants>"
              f"<attachedData>&lt;ItemAttachedData&gt;&lt;Application id=\"demo\"&gt;&lt;Case&gt;{version}&lt;/Case&gt;&lt;/Application&gt;&lt;/ItemAttachedData&gt;</attachedData>"
              f"<changedAt>{now()}</changedAt>")
    if kind == "phone":
        return (f"<ici:phoneCallChanged><call>{common}<direction>inbound</direction>"
                f"<remoteNumbers><item>+4930{random.randint(1000000, 9999999)}</item></remoteNumbers>"
                f"<localAddress>+49301111</localAddress></call></ici:phoneCallChanged>")
    if kind == "chat":
        return (f"<ici:chatChanged><chat>{common}<topic>billing</topic><customerName>Kundin Müller</customerName>"
                f"</chat></ici:chatChanged>")
    return (f"<ici:messageChanged><message>{common}<folder>inbox</folder><originator>kunde@example.org</originator>"
            f"<subject>Rechnung €</subject><read>false</read><answered>false</answered></message></ici:messageChanged>")


def posting_xml(chat_id, n):
    return (f"<ici:chatNewPosting><posting><chatSessionId>{chat_id}</chatSessionId><chatParticipant>customer</chatParticipant>"
            f"<contentText>line {n}: hello €</contentText><systemMessage>false</systemMessage>"
            f"<postDate>{now()}</postDate></posting></ici:chatNewPosting>")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--account", action="append", required=True, help="USER:PASSWORD of a CMS system")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run until stopped)")
    args = p.parse_args()
    url = urllib.parse.urlparse(args.url)
    accounts = [a.split(":", 1) for a in args.account]
    end = time.monotonic() + args.seconds if args.seconds else float("inf")
    live = []  # [account, kind, id, step, version, agent]
    seq = 0
    conn = None
    while time.monotonic() < end:
        if len(live) < 6 and random.random() < 0.5:
            seq += 1
            kind = random.choice(list(FLOWS))
            live.append([random.choice(accounts), kind, f"demo-{kind}-{int(time.time())}-{seq}", 0, 0,
                         random.choice(AGENTS)])
        if not live:
            continue
        item = random.choice(live)
        account, kind, item_id, step, version, agent = item
        state = FLOWS[kind][step]
        if state == "post":
            body = posting_xml(item_id, step)
        else:
            item[4] = version = version + 1
            body = item_xml(kind, item_id, version, state, agent)
        item[3] += 1
        if item[3] == len(FLOWS[kind]):
            live.remove(item)
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            auth = base64.b64encode(f"{account[0]}:{account[1]}".encode()).decode()
            conn.request("POST", url.path, ENV.format(mid=f"m-{seq}-{version}", body=body).encode(),
                         {"Content-Type": "text/xml; charset=utf-8", "Authorization": "Basic " + auth})
            res = conn.getresponse()
            text = res.read().decode()
            status = text.split("<status>")[1].split("<")[0] if "<status>" in text else f"HTTP {res.status}"
            print(f"{account[0]}: {kind} {item_id} -> {state}: {status}", flush=True)
        except OSError as e:
            print(f"broker not reachable: {e}", flush=True)
            conn = None
        time.sleep(0.4)


if __name__ == "__main__":
    main()
