// The heartbeat monitor and the CMS probes on simulated time: every transition, with no sleeps.
#include "heartbeat/cms_probes.hpp"
#include "heartbeat/monitor.hpp"

#include <doctest/doctest.h>

using namespace cb::heartbeat;
using namespace std::chrono_literals;
using cb::config::HeartbeatMode;
using cb::config::SuspectAction;

namespace {

const Time t0 = Time{} + 1000h;

Profile watchdog(std::chrono::milliseconds lag = 15s, std::chrono::milliseconds grace = 30s,
                 SuspectAction action = SuspectAction::not_ready) {
    Profile p;
    p.id = "default";
    p.mode = HeartbeatMode::watchdog;
    p.lag = lag;
    p.grace = grace;
    p.suspect_action = action;
    return p;
}

Profile on_contact(std::chrono::milliseconds lag = 15s) {
    Profile p = watchdog(lag);
    p.id = "calls";
    p.mode = HeartbeatMode::on_contact;
    return p;
}

Contact hello(Time at) {
    return Contact{at, ContactKind::hello, "10.0.0.7:5000"};
}
Contact beat(Time at) {
    return Contact{at, ContactKind::heartbeat, "10.0.0.7:5000"};
}

std::vector<ActionKind> kinds(const std::vector<Action>& actions) {
    std::vector<ActionKind> out;
    for (auto& a : actions)
        out.push_back(a.kind);
    return out;
}

}  // namespace

TEST_CASE("a silent agent becomes suspect after lag and is lost after lag + grace") {
    Monitor m;
    CHECK(m.watch("alice", "CMS-A", watchdog(), hello(t0)).empty());
    CHECK(m.next_deadline() == t0 + 15s);
    CHECK(m.advance(t0 + 15s - 1ms).empty());

    auto suspect = m.advance(t0 + 15s);
    REQUIRE(suspect.size() == 1);
    CHECK(suspect[0].kind == ActionKind::suspect);
    CHECK(suspect[0].agent == "alice");
    CHECK(suspect[0].system == "CMS-A");
    CHECK(suspect[0].set_not_ready);
    CHECK(suspect[0].last_contact.at == t0);
    CHECK(suspect[0].last_contact.peer == "10.0.0.7:5000");
    CHECK(suspect[0].at == t0 + 15s);
    CHECK(m.view("alice")->state == Liveness::suspect);
    CHECK(m.next_deadline() == t0 + 45s);

    CHECK(m.advance(t0 + 45s - 1ms).empty());
    auto lost = m.advance(t0 + 45s);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].kind == ActionKind::lost);
    CHECK(lost[0].system == "CMS-A");
    CHECK(lost[0].profile == "default");
    CHECK_FALSE(m.view("alice"));
    CHECK_FALSE(m.next_deadline());
    CHECK(m.counters().suspects == 1);
    CHECK(m.counters().lost == 1);
}

TEST_CASE("heartbeats inside lag keep an agent active, however long") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(), hello(t0));
    for (int i = 1; i <= 100; ++i) {
        CHECK(m.contact("alice", beat(t0 + i * 5s)).empty());
        CHECK(m.advance(t0 + i * 5s + 1s).empty());
    }
    CHECK(m.view("alice")->state == Liveness::active);
    CHECK(m.view("alice")->last_contact.at == t0 + 500s);
    CHECK(m.counters().suspects == 0);
}

TEST_CASE("contact while suspect clears it and gives back the work mode the broker replaced") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(), hello(t0));
    REQUIRE(kinds(m.advance(t0 + 16s)) == std::vector{ActionKind::suspect});
    m.note_replaced_mode("alice", "ready");

    auto cleared = m.contact("alice", beat(t0 + 20s));
    REQUIRE(cleared.size() == 1);
    CHECK(cleared[0].kind == ActionKind::cleared);
    CHECK(cleared[0].restore_mode == "ready");
    CHECK(m.view("alice")->state == Liveness::active);
    // The window starts again from the contact.
    CHECK(m.advance(t0 + 35s - 1ms).empty());
    CHECK(kinds(m.advance(t0 + 35s)) == std::vector{ActionKind::suspect});
    // A second suspicion with nothing replaced restores nothing.
    auto again = m.contact("alice", beat(t0 + 36s));
    REQUIRE(again.size() == 1);
    CHECK(again[0].restore_mode.empty());
    CHECK(m.counters().cleared == 2);
}

TEST_CASE("a heartbeat inside grace after the socket is lost keeps the agent") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(), hello(t0));
    m.set_attached("alice", false);  // the page reloads
    CHECK(kinds(m.advance(t0 + 15s)) == std::vector{ActionKind::suspect});
    // The new page resumes inside grace: a hello renews the watch and clears the suspicion.
    auto actions = m.watch("alice", "CMS-A", watchdog(), hello(t0 + 40s));
    CHECK(kinds(actions) == std::vector{ActionKind::cleared});
    CHECK(m.view("alice")->attached);
    CHECK(m.advance(t0 + 45s).empty());
    CHECK(m.counters().lost == 0);
}

TEST_CASE("suspectAction none, or an agent logged on nowhere, sets nobody notReady") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(15s, 30s, SuspectAction::none), hello(t0));
    m.watch("bob", "", watchdog(), hello(t0));
    auto actions = m.advance(t0 + 15s);
    REQUIRE(actions.size() == 2);
    for (auto& a : actions) {
        CHECK(a.kind == ActionKind::suspect);
        CHECK_FALSE(a.set_not_ready);
    }
}

TEST_CASE("logging off forgets the work mode to restore") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(), hello(t0));
    m.advance(t0 + 15s);
    m.note_replaced_mode("alice", "ready");
    m.set_system("alice", "");
    auto cleared = m.contact("alice", beat(t0 + 16s));
    REQUIRE(cleared.size() == 1);
    CHECK(cleared[0].restore_mode.empty());
}

TEST_CASE(
    "onContact: no logoff by time; a silent agent's offer is rejected, a talking one's is not") {
    Monitor m;
    m.watch("carol", "CMS-A", on_contact(), hello(t0));
    CHECK_FALSE(m.next_deadline());
    CHECK(m.advance(t0 + 1h).empty());
    // Still heard from within lag: the offer goes through.
    m.contact("carol", beat(t0 + 1h));
    CHECK_FALSE(m.offered("carol", "call-1", cb::channels::Channel::phone, t0 + 1h + 10s));
    // Silent for longer than lag: rejected, and the agent is to be logged off.
    auto r = m.offered("carol", "call-2", cb::channels::Channel::chat, t0 + 1h + 16s);
    REQUIRE(r);
    CHECK(r->kind == ActionKind::rejected);
    CHECK(r->item == "call-2");
    CHECK(r->channel == cb::channels::Channel::chat);
    CHECK(r->last_contact.at == t0 + 1h);
    CHECK_FALSE(m.view("carol"));
    CHECK(m.counters().rejected == 1);
}

TEST_CASE("onContact: a watchdog agent's offer is never rejected") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(), hello(t0));
    CHECK_FALSE(m.offered("alice", "call-1", cb::channels::Channel::phone, t0 + 20s));
    CHECK_FALSE(m.offered("nobody", "call-1", cb::channels::Channel::phone, t0 + 20s));
}

TEST_CASE("onContact: a detached session expires after lag + grace and the agent stays known") {
    Monitor m;
    m.watch("carol", "CMS-A", on_contact(), hello(t0));
    m.set_attached("carol", false);
    CHECK(m.next_deadline() == t0 + 45s);
    auto actions = m.advance(t0 + 45s);
    CHECK(kinds(actions) == std::vector{ActionKind::expired});
    REQUIRE(m.view("carol"));  // still logged on: an offer decides
    CHECK_FALSE(m.next_deadline());
    CHECK(m.offered("carol", "c", cb::channels::Channel::phone, t0 + 46s));
}

TEST_CASE("a profile changed by a reload applies from the next contact and acts on no one") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(15s, 30s), hello(t0));
    m.set_profile("alice", watchdog(1s, 1s));
    // The old profile still decides: no suspicion at 2 s.
    CHECK(m.advance(t0 + 2s).empty());
    CHECK(m.view("alice")->state == Liveness::active);
    m.contact("alice", beat(t0 + 3s));
    CHECK(kinds(m.advance(t0 + 4s)) == std::vector{ActionKind::suspect});
    CHECK(kinds(m.advance(t0 + 5s)) == std::vector{ActionKind::lost});
}

TEST_CASE("a reload that shortens a profile logs nobody off at once, even silent ones") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(15s, 30s), hello(t0));
    m.set_profile("alice", watchdog(1s, 1s));
    CHECK(kinds(m.advance(t0 + 15s)) == std::vector{ActionKind::suspect});  // old lag
}

TEST_CASE("a restart gives every agent a fresh window from readiness") {
    Monitor m;
    auto ready = t0 + 10min;
    CHECK(m.watch("alice", "CMS-A", watchdog(), Contact{ready, ContactKind::restart, ""}).empty());
    CHECK(m.watch("bob", "CMS-A", watchdog(), Contact{ready, ContactKind::restart, ""}).empty());
    CHECK_FALSE(m.view("alice")->attached);
    CHECK(m.advance(ready + 15s - 1ms).empty());
    // Alice comes back in time; bob does not.
    CHECK(m.watch("alice", "CMS-A", watchdog(), hello(ready + 3s)).empty());
    auto suspects = m.advance(ready + 15s);
    CHECK(kinds(suspects) == std::vector{ActionKind::suspect});
    CHECK(suspects[0].agent == "bob");
    CHECK(suspects[0].last_contact.kind == ContactKind::restart);
    // In deadline order: alice, silent since ready + 3 s, is suspect at ready + 18 s; bob is lost.
    auto later = m.advance(ready + 45s);
    REQUIRE(kinds(later) == std::vector{ActionKind::suspect, ActionKind::lost});
    CHECK(later[0].agent == "alice");
    CHECK(later[1].agent == "bob");
    CHECK(later[1].at == ready + 45s);
}

TEST_CASE("many agents: each action comes at its own deadline, in order") {
    Monitor m;
    for (int i = 0; i < 1000; ++i)
        m.watch("a" + std::to_string(i), "CMS-A", watchdog(), hello(t0 + i * 1ms));
    auto actions = m.advance(t0 + 15s + 499ms);
    REQUIRE(actions.size() == 500);
    for (int i = 0; i < 500; ++i) {
        CHECK(actions[i].agent == "a" + std::to_string(i));
        CHECK(actions[i].at == t0 + 15s + i * 1ms);
    }
    CHECK(m.suspects() == 500);
    CHECK(m.next_deadline() == t0 + 15s + 500ms);
}

TEST_CASE("a forgotten agent's queued deadline does nothing to a new watch of the same agent") {
    Monitor m;
    m.watch("alice", "CMS-A", watchdog(1s, 1s), hello(t0));
    m.forget("alice");
    m.watch("alice", "CMS-A", watchdog(), hello(t0 + 1s));
    CHECK(m.advance(t0 + 5s).empty());
    CHECK(m.view("alice")->state == Liveness::active);
}

TEST_CASE("CMS probes: one at a time, every interval after the last came back") {
    CmsProbes p;
    p.watch("CMS-A", 5s, 15s, t0);
    REQUIRE(p.next_deadline() == t0);
    auto due = p.advance(t0);
    REQUIRE(due.size() == 1);
    CHECK(due[0].kind == ProbeActionKind::probe);
    CHECK(due[0].system == "CMS-A");
    // In flight: no second probe, however late it gets; the silence deadline is what is next.
    CHECK(p.advance(t0 + 4s).empty());
    CHECK(p.next_deadline() == t0 + 15s);
    CHECK(p.answered("CMS-A", true, t0 + 4s));  // first answer: available
    CHECK(p.available("CMS-A") == true);
    CHECK(p.next_deadline() == t0 + 9s);
    CHECK(p.advance(t0 + 8s).empty());
    REQUIRE(p.advance(t0 + 9s).size() == 1);
    CHECK_FALSE(p.answered("CMS-A", true, t0 + 9s));  // still available: nothing new
}

TEST_CASE(
    "CMS probes: no answer for the timeout makes a system unavailable once; an answer "
    "brings it back") {
    CmsProbes p;
    p.watch("CMS-A", 5s, 15s, t0);
    p.advance(t0);
    CHECK(p.answered("CMS-A", true, t0 + 1s));
    // Failed probes inside the timeout change nothing.
    REQUIRE(p.advance(t0 + 6s).size() == 1);
    CHECK_FALSE(p.answered("CMS-A", false, t0 + 8s));
    CHECK(p.available("CMS-A") == true);
    REQUIRE(p.advance(t0 + 13s).size() == 1);  // the next probe, 5 s after the failed one
    // Still in flight when the timeout (15 s after the last answer) comes: unavailable now.
    CHECK(p.next_deadline() == t0 + 16s);
    auto down = p.advance(t0 + 16s);
    REQUIRE(down.size() == 1);
    CHECK(down[0].kind == ProbeActionKind::unavailable);
    CHECK(down[0].at == t0 + 16s);
    CHECK(down[0].silent_since == t0 + 1s);
    CHECK(p.available("CMS-A") == false);
    CHECK(p.advance(t0 + 40s).empty());  // reported once; the probe is still in flight
    CHECK_FALSE(p.answered("CMS-A", false, t0 + 41s));
    REQUIRE(p.advance(t0 + 46s).size() == 1);
    CHECK(p.answered("CMS-A", true, t0 + 47s));  // back
    CHECK(p.available("CMS-A") == true);
}

TEST_CASE(
    "CMS probes: a system that never answers is unavailable one timeout after the watch "
    "began; each system keeps its own clock") {
    CmsProbes p;
    p.watch("CMS-A", 1s, 3s, t0);
    p.watch("CMS-B", 10s, 30s, t0);
    CHECK(p.advance(t0).size() == 2);
    CHECK_FALSE(p.available("CMS-A"));
    CHECK_FALSE(p.answered("CMS-A", false, t0 + 1s));
    CHECK(p.answered("CMS-B", true, t0 + 1s));
    CHECK(p.next_deadline() == t0 + 2s);  // CMS-A's next probe
    auto actions = p.advance(t0 + 3s);
    REQUIRE(actions.size() == 2);
    CHECK(actions[0].kind == ProbeActionKind::probe);
    CHECK(actions[1].kind == ProbeActionKind::unavailable);
    CHECK(actions[1].system == "CMS-A");
    CHECK(p.available("CMS-B") == true);
    p.forget("CMS-A");
    CHECK_FALSE(p.answered("CMS-A", true, t0 + 4s));
    CHECK(p.next_deadline() == t0 + 11s);
}
