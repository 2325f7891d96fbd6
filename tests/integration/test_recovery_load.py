"""The recovery module's show case on real processes: two simulators drive about 1,000 events per
second across twenty agents, the broker is killed with SIGKILL under that load and started again.
Nothing it acknowledged is lost; the items of the agents who do not come back are orphans, once
each, classified against both simulators (one forgets some items, the other stops answering
and comes back); the agents who resume in time keep their items and never see them orphaned."""
import json
import signal
import time

from harness import Desktop, beating, wait_for

# Heartbeat window after a restart: lag + grace.
PROFILE = 'interval="1s" lag="2s"'
GRACE = "3s"
RATES = {"CMS-A": 600, "CMS-B": 400}  # offers per second; each offer is one event
EVENTS_BEFORE_KILL = 3000
AGENTS = {"CMS-A": [f"a{n:02}" for n in range(12)], "CMS-B": [f"b{n:02}" for n in range(8)]}
# Half of each system's agents resume after the restart; the others never come back.
KEEPERS = {a for s in AGENTS.values() for a in s[: len(s) // 2]}
LEAVERS = {a for s in AGENTS.values() for a in s[len(s) // 2:]}


def start(make_sim, make_broker):
    sims = {s: make_sim(s, ("--channels", "phone", "--ring-time", "10m", "--record-acks"))
            for s in AGENTS}
    agents = [(a, "agent", s) for s, names in AGENTS.items() for a in names]
    broker = make_broker(
        cms_urls={s: sim.url for s, sim in sims.items()}, systems=tuple(AGENTS), agents=agents,
        desktop=True, probe="200ms", probe_timeout="1s", grace=GRACE, heartbeat=PROFILE,
        # Desktops are not read during the load: the broker queues their events meanwhile.
        limits='maxBodyBytes="16384" desktopQueue="200000" desktopSlowTimeout="10m"').start()
    wait_for(lambda: all(sim.state()["subscribed"] for sim in sims.values()),
             what="the broker subscribes at both simulators")
    return broker, sims


def log_on(broker, agent, system):
    d = Desktop(broker, agent)
    welcome = d.expect_type("welcome")
    d.expect_type("snapshot")
    r = d.request({"type": "logon", "system": system, "address": "+4930" + str(1000 + len(agent)),
                   "channels": ["phone"]})
    assert r["ok"], r
    d.expect_event("userChanged", userId=agent, state="ready")
    return d, welcome["session"]


def settled(sims):
    """Waits until no event of either simulator is in flight any more."""
    last = None

    def same():
        nonlocal last
        now = [(s["eventsSent"], s["eventsFailed"]) for s in (sim.state() for sim in sims.values())]
        done, last = now == last, now
        return done
    wait_for(same, timeout=30, what="the simulators' events settled", every=0.5)


def orphan_keys(broker):
    status, body = broker.admin("GET", "/admin/v1/recovery/orphans")
    assert status == 200, body
    keys = [(o["system"], o["id"]) for o in body["orphans"]]
    assert len(keys) == len(set(keys)), "an orphan is listed twice"
    return {(o["system"], o["id"]): o for o in body["orphans"]}


def leavers_items(sims):
    """What the simulators hold of the agents who did not come back."""
    return {(s, i["id"]) for s, sim in sims.items() for i in sim.state()["items"]
            if i["agentId"] in LEAVERS}


def test_kill_9_under_load_loses_nothing_acknowledged_and_orphans_exactly_the_absent(make_sim, make_broker):
    broker, sims = start(make_sim, make_broker)
    desktops, sessions = {}, {}
    for system, names in AGENTS.items():
        for a in names:
            desktops[a], sessions[a] = log_on(broker, a, system)
    everyone = list(desktops.values())

    # The load: both simulators offer calls to the twenty ready agents.
    began = time.monotonic()
    for system, sim in sims.items():
        assert sim.control("rate", {"offersPerSecond": RATES[system]})[0] == 200
    with beating(*everyone):
        wait_for(lambda: sum(sim.state()["eventsSent"] for sim in sims.values()) >= EVENTS_BEFORE_KILL,
                 timeout=120, what=f"{EVENTS_BEFORE_KILL} events taken under load", every=0.1)

    broker.send_signal(signal.SIGKILL)
    broker.proc.wait()
    took = time.monotonic() - began
    for sim in sims.values():
        sim.control("rate", {"offersPerSecond": 0})
    settled(sims)
    acked = {s: sim.state()["acked"] for s, sim in sims.items()}
    total = sum(len(a) for a in acked.values())
    print(f"\n{total} items acknowledged in {took:.1f} s under load (about {total / took:.0f} events/s)")
    assert total >= EVENTS_BEFORE_KILL - 100  # the rest of the events were agent states
    for d in everyone:
        d.close()
    broker.desktops.clear()

    # While the broker is down, CMS-A forgets some of the absent agents' calls and CMS-B stops
    # answering.
    dropped_a = sorted(i for s, i in leavers_items(sims) if s == "CMS-A" and i in acked["CMS-A"])[:5]
    for i in dropped_a:
        sims["CMS-A"].control("drop", {"item": i})
    sims["CMS-B"].control("stall", {"on": True})

    broker.start()
    # The keepers resume at once, within their window, and keep beating.
    back = []
    for a in sorted(KEEPERS):
        d = Desktop(broker, a, resume={"session": sessions[a], "lastSeq": 0})
        assert d.expect_type("welcome")["resumed"], a
        back.append(d)

    with beating(*back):
        # Every event the broker answered is in its registry (the calls CMS-A dropped may already
        # be closed by the start-up reconciliation).
        held = {(i["system"], i["id"]): i["version"] for i in broker.items()}
        missing = [(s, i, a["version"]) for s, ids in acked.items() for i, a in ids.items()
                   if (s, i) not in held and i not in dropped_a]
        older = [(s, i) for s, ids in acked.items() for i, a in ids.items()
                 if (s, i) in held and held[(s, i)] < a["version"]]
        assert not missing, f"{len(missing)} acknowledged items lost, e.g. {missing[:5]}"
        assert not older, f"{len(older)} items older than acknowledged, e.g. {older[:5]}"

        # After the window the absent agents' calls are orphans, once each; CMS-A's are alive,
        # the calls it forgot are closed, and CMS-B's cannot be checked.
        def of(system, classification=None):
            return {k for k, o in orphan_keys(broker).items() if k[0] == system
                    and classification in (None, o["classification"])}
        expected_a = {k for k in leavers_items(sims) if k[0] == "CMS-A"}
        wait_for(lambda: of("CMS-A", "alive") == expected_a, timeout=60,
                 what="CMS-A's orphans: the absent agents' calls it still has, alive")
        assert of("CMS-A") == expected_a
        live = {(i["system"], i["id"]) for i in broker.items("?system=CMS-A")}
        assert not live & {("CMS-A", i) for i in dropped_a}, "a call CMS-A forgot is still live"
        acked_b = {("CMS-B", i) for i in acked["CMS-B"]} & leavers_items(sims)
        wait_for(lambda: acked_b <= of("CMS-B", "unknown"), timeout=60,
                 what="CMS-B's orphans unknown while it does not answer")

        # CMS-B forgets three of them, then answers again: the rest are alive, those three closed.
        dropped_b = sorted(i for _, i in acked_b)[:3]
        for i in dropped_b:
            sims["CMS-B"].control("drop", {"item": i})
        sims["CMS-B"].control("stall", {"on": False})
        expected_b = {k for k in leavers_items(sims) if k[0] == "CMS-B"}
        wait_for(lambda: of("CMS-B", "alive") == expected_b, timeout=60,
                 what="CMS-B's orphans: the absent agents' calls it still has, alive")
        wait_for(lambda: broker.status()["reconciliation"]["state"] == "done", timeout=60,
                 what="the reconciliation done")
        live = {(i["system"], i["id"]) for i in broker.items("?system=CMS-B")}
        assert not live & {("CMS-B", i) for i in dropped_b}, "a call CMS-B forgot is still live"

        # The listing says the same, once each, and every orphan is an absent agent's.
        listing = broker.ctl("--json", "recovery", "list")
        assert listing.returncode == 0, listing.stderr
        orphans = json.loads(listing.stdout)["orphans"]
        assert sorted((o["system"], o["id"]) for o in orphans) == sorted(expected_a | expected_b)
        assert {o["orphanedFrom"] for o in orphans} <= LEAVERS

        # The keepers kept their calls: live, theirs, and never orphaned.
        kept = {(i["system"], i["id"]) for i in broker.items() if i.get("agentId") in KEEPERS}
        assert kept, "the keepers had calls"
        assert not kept & set(orphan_keys(broker))
        for a in sorted(KEEPERS):
            status, body = broker.admin("GET", f"/admin/v1/audit?agent={a}")
            assert status == 200, body
            assert "itemOrphaned" not in [e["action"] for e in body["entries"]], a
