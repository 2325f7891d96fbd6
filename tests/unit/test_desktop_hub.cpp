// The desktop hub on simulated time with a fake link that writes when told to.
#include "channels/desktop_hub.hpp"
#include "sample_items.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

using namespace cb::channels;
using namespace std::chrono_literals;

namespace {

/// A link that keeps what it was given; write(n) plays the socket taking n frames.
class FakeLink : public DesktopLink {
  public:
    void send_events(std::vector<std::pair<std::uint64_t, EventPtr>> events) override {
        for (auto& e : events)
            queued.push_back(e);
    }
    void send_frame(std::string frame) override { frames.push_back(std::move(frame)); }
    void send_urgent(std::string frame) override { frames.push_back(std::move(frame)); }
    void close(ByeReason reason) override { bye = reason; }
    std::size_t unwritten() const override { return queued.size(); }

    /// The socket writes up to n frames.
    void write(std::size_t n = SIZE_MAX) {
        while (n-- > 0 && !queued.empty()) {
            written.push_back(queued.front());
            queued.erase(queued.begin());
        }
    }
    std::vector<std::uint64_t> seqs() const {
        std::vector<std::uint64_t> out;
        for (auto& [seq, e] : written)
            out.push_back(seq);
        return out;
    }

    std::vector<std::pair<std::uint64_t, EventPtr>> queued, written;
    std::vector<std::string> frames;
    std::optional<ByeReason> bye;
};

struct Fixture {
    SteadyTime now{};
    int tokens = 0;
    HubLimits limits{};
    DesktopHub hub{limits, [this] { return "token-" + std::to_string(++tokens); }};

    Fixture() {
        limits.queue = 10;
        limits.replay = 100;
        limits.window = 4;
        limits.slow_timeout = 1s;
        hub.set_limits(limits);
    }

    std::shared_ptr<FakeLink> attach(const std::string& agent,
                                     std::optional<ResumeRequest> resume = std::nullopt,
                                     Attached* out = nullptr) {
        auto link = std::make_shared<FakeLink>();
        auto a = hub.attach(agent, resume, link, "CMS-A");
        if (out) *out = a;
        hub.pump(agent, now);
        return link;
    }

    void call(const std::string& id, std::uint64_t version, const std::string& agent,
              State state = State::alerting) {
        auto item = cb::testing::sample_call(id, version, state);
        item.agent_id = agent;
        hub.route({ItemStored{item, {}}}, now, now);
    }
};

std::string event_id(const EventPtr& e) {
    return std::string(boost::json::parse(e->data).at("id").as_string());
}

}  // namespace

TEST_CASE("events reach their owner's desktop with gap-free seq, a window at a time") {
    Fixture f;
    auto alice = f.attach("alice");
    auto bob = f.attach("bob");
    for (int i = 1; i <= 6; ++i)
        f.call("c-" + std::to_string(i), 1, "alice");
    CHECK(alice->queued.size() == 4);  // the window
    CHECK(bob->queued.empty());
    alice->write();
    f.hub.pump("alice", f.now);
    alice->write();
    CHECK(alice->seqs() == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("a resume gets exactly the events after lastSeq, and what waited while away") {
    Fixture f;
    Attached first;
    auto link = f.attach("alice", std::nullopt, &first);
    CHECK(first.snapshot);
    CHECK_FALSE(first.resync);
    f.call("c-1", 1, "alice");
    f.call("c-2", 1, "alice");
    link->write();
    f.hub.detach("alice", link.get());
    f.call("c-3", 1, "alice");

    Attached again;
    auto link2 = f.attach("alice", ResumeRequest{first.token, 1}, &again);
    CHECK(again.resumed);
    CHECK_FALSE(again.snapshot);
    CHECK(again.token == first.token);
    REQUIRE(again.replay.size() == 1);
    CHECK(again.replay[0].first == 2);
    CHECK(event_id(again.replay[0].second) == "c-2");
    link2->write();
    REQUIRE(link2->written.size() == 1);
    CHECK(link2->written[0].first == 3);
    CHECK(event_id(link2->written[0].second) == "c-3");
}

TEST_CASE("a resume whose events are gone, or with an unknown token, gets a resync snapshot") {
    Fixture f;
    f.limits.replay = 2;
    f.hub.set_limits(f.limits);
    Attached first;
    auto link = f.attach("alice", std::nullopt, &first);
    for (int i = 1; i <= 5; ++i) {
        f.call("c-" + std::to_string(i), 1, "alice");
        link->write();
        f.hub.pump("alice", f.now);
    }
    f.hub.detach("alice", link.get());
    Attached late;
    f.attach("alice", ResumeRequest{first.token, 1}, &late);
    CHECK_FALSE(late.resumed);
    CHECK(late.snapshot);
    CHECK(late.resync);
    CHECK(late.seq == 5);

    Attached unknown;
    f.attach("alice", ResumeRequest{"no-such-token", 0}, &unknown);
    CHECK(unknown.resync);
    CHECK(unknown.token != first.token);
    CHECK(unknown.seq == 0);
}

TEST_CASE("a second hello hands back the connection it replaces") {
    Fixture f;
    auto first = f.attach("alice");
    Attached a;
    f.attach("alice", std::nullopt, &a);
    CHECK(a.replaced.get() == first.get());
    f.call("c-1", 1, "alice");
    CHECK(first->queued.empty());
}

TEST_CASE("over budget, a newer snapshot of an item replaces the unsent older one") {
    Fixture f;
    auto link = f.attach("alice");
    for (int i = 1; i <= 10; ++i)
        f.call("c-" + std::to_string(i), 1, "alice");  // 4 handed over, 6 pending: at budget
    f.call("c-9", 2, "alice", State::connected);       // replaces c-9 v1, still pending
    CHECK(f.hub.counters().frames_coalesced == 1);
    CHECK(f.hub.queued() == 10);
    while (!link->queued.empty()) {
        link->write();
        f.hub.pump("alice", f.now);
    }
    CHECK(link->seqs() == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    auto& ninth = link->written[8].second;
    CHECK(event_id(ninth) == "c-9");
    CHECK(boost::json::parse(ninth->data).at("version").as_int64() == 2);
}

TEST_CASE("a desktop that stays over budget gets overload, then bye tooSlow, and resyncs") {
    Fixture f;
    Attached first;
    auto slow = f.attach("bob", std::nullopt, &first);
    auto fast = f.attach("alice");
    for (int i = 1; i <= 12; ++i) {
        f.call("b-" + std::to_string(i), 1, "bob");
        f.call("a-" + std::to_string(i), 1, "alice");
        fast->write();
        f.hub.pump("alice", f.now);
    }
    REQUIRE(slow->frames.size() == 1);
    CHECK(slow->frames[0].find("\"overload\"") != std::string::npos);
    CHECK_FALSE(slow->bye);
    f.now += 500ms;
    f.hub.sweep(f.now);
    CHECK_FALSE(slow->bye);
    f.now += 600ms;
    f.hub.sweep(f.now);
    CHECK(slow->bye == ByeReason::too_slow);
    CHECK(f.hub.counters().too_slow == 1);
    // The session stays for a resume, with no desktop attached (the monitor reads this).
    CHECK_FALSE(f.hub.attached("bob"));
    CHECK(f.hub.attached("alice"));
    // The other desktop kept its pace.
    CHECK(fast->written.size() == 12);
    CHECK_FALSE(fast->bye);
    // Its events were dropped: the resume is a resync.
    Attached again;
    f.attach("bob", ResumeRequest{first.token, 4}, &again);
    CHECK(again.resync);
}

TEST_CASE("the sweep finds a slow desktop after others went over and caught up, moved or ended") {
    // The sweep looks at the sessions only while some are over budget: that count must follow
    // every way a session stops being over.
    Fixture f;
    auto over = [&](const std::string& agent, int from) {
        for (int i = from; i < from + 12; ++i)
            f.call(agent + "-" + std::to_string(i), 1, agent);
    };
    auto carol = f.attach("carol");
    over("carol", 0);
    carol->write();
    f.hub.pump("carol", f.now);  // caught up: no longer over
    auto dave = f.attach("dave");
    over("dave", 0);
    f.attach("dave");  // a new connection replaces the one over budget
    auto erin = f.attach("erin");
    over("erin", 0);
    CHECK(f.hub.end_session("erin", ByeReason::heartbeat_lost));
    auto frank = f.attach("frank");
    over("frank", 0);
    f.hub.detach("frank", frank.get());  // its socket went away
    f.now += 2s;
    f.hub.sweep(f.now);
    CHECK(f.hub.counters().too_slow == 0);  // nobody is over any more
    auto bob = f.attach("bob");
    over("bob", 0);
    f.now += 2s;
    f.hub.sweep(f.now);
    CHECK(bob->bye == ByeReason::too_slow);
    CHECK_FALSE(carol->bye);
    CHECK(f.hub.counters().too_slow == 1);
}

TEST_CASE("a desktop far behind is cut off at once at twice its budget") {
    Fixture f;
    auto slow = f.attach("bob");
    for (int i = 1; i <= 30; ++i)
        f.call("b-" + std::to_string(i), 1, "bob");
    CHECK(slow->bye == ByeReason::too_slow);
    CHECK(f.hub.sessions() == 1);  // the session waits for a resume
    CHECK(f.hub.connected() == 0);
}

TEST_CASE("supervisors monitoring a scope get every event in it, agents only their own") {
    Fixture f;
    auto sue = f.attach("sue");
    auto sam = f.attach("sam");
    auto alice = f.attach("alice");
    f.hub.monitor("sue", "all");
    f.hub.monitor("sam", "system:CMS-B");
    f.call("c-1", 1, "alice");
    CHECK(sue->queued.size() == 1);
    CHECK(sam->queued.empty());
    CHECK(alice->queued.size() == 1);
    // Both got the same event, rendered once.
    CHECK(sue->queued[0].second.get() == alice->queued[0].second.get());
}

TEST_CASE("an item that changes owner leaves the old owner's desktop visibly") {
    Fixture f;
    auto alice = f.attach("alice");
    auto bob = f.attach("bob");
    f.call("c-1", 1, "alice");
    f.call("c-1", 2, "bob", State::connected);
    CHECK(alice->queued.size() == 2);
    CHECK(bob->queued.size() == 1);
    f.call("c-1", 3, "bob", State::disconnected);
    CHECK(alice->queued.size() == 2);
    CHECK(bob->queued.size() == 2);
}

TEST_CASE("a session ended by the heartbeat monitor says bye heartbeatLost and is forgotten") {
    Fixture f;
    auto link = f.attach("alice");
    f.hub.set_system("alice", "CMS-A");
    f.hub.take_journal();
    auto infos = f.hub.session_infos();
    REQUIRE(infos.size() == 1);
    CHECK(infos[0].agent == "alice");
    CHECK(infos[0].system == "CMS-A");
    CHECK(f.hub.end_session("alice", ByeReason::heartbeat_lost));
    CHECK(link->bye == ByeReason::heartbeat_lost);
    CHECK(f.hub.sessions() == 0);
    auto changes = f.hub.take_journal();
    REQUIRE(changes.size() == 1);
    CHECK(std::holds_alternative<cb::channels::SessionEnded>(changes[0]));
    CHECK_FALSE(f.hub.end_session("alice", ByeReason::heartbeat_lost));
}

TEST_CASE("a detached session is kept however long it waits: only the monitor ends it") {
    Fixture f;
    auto link = f.attach("alice");
    f.hub.detach("alice", link.get());
    f.now += 24h;
    f.hub.sweep(f.now);
    CHECK(f.hub.sessions() == 1);
}

TEST_CASE("the journal gets the session, each event once, runs of replay records and trims") {
    Fixture f;
    auto link = f.attach("alice");
    f.hub.monitor("alice", "all");
    f.call("c-1", 1, "alice");
    f.call("c-2", 1, "alice");
    auto first = f.hub.take_journal();
    std::size_t sessions = 0, events = 0, replays = 0;
    for (auto& c : first) {
        sessions += std::holds_alternative<SessionStored>(c);
        events += std::holds_alternative<DesktopEventStored>(c);
        replays += std::holds_alternative<ReplayStored>(c);
    }
    CHECK(sessions >= 1);
    CHECK(events == 2);
    CHECK(replays == 0);  // replay records wait for the timer
    auto later = f.hub.take_journal(true);
    REQUIRE(later.size() == 1);
    auto& run = std::get<ReplayStored>(later[0]);
    CHECK(run.first_seq == 1);
    CHECK(run.event_ids.size() == 2);
    link->write();
    f.hub.ack("alice", 2);
    auto trims = f.hub.take_journal(true);
    REQUIRE(trims.size() == 1);
    CHECK(std::get<ReplayTrimmed>(trims[0]).up_to == 2);
}

TEST_CASE("restored sessions resume from the journal's replay, then resync") {
    Fixture f;
    LoadedSession s;
    s.token = "t-1";
    s.agent = "alice";
    s.system = "CMS-A";
    s.seq = 3;
    s.replay = {{2, 7, "phoneCallChanged", R"({"id":"c-1"})"},
                {3, 8, "phoneCallChanged", R"({"id":"c-2"})"}};
    f.hub.restore({s}, 8, {});
    Attached a;
    f.attach("alice", ResumeRequest{"t-1", 1}, &a);
    CHECK(a.resumed);
    REQUIRE(a.replay.size() == 2);
    CHECK(a.replay[1].first == 3);
    CHECK(a.resync);  // after a restart, the snapshot follows the replay
    CHECK(f.hub.oldest_held_event() == 7);
}

TEST_CASE("an item that ends or changes hands while nobody is connected leaves no stale owner") {
    Fixture f;
    // The hub keeps its owner map for changes routed while no session exists (the broker
    // routes every applied change for this): alice's call ends, then (after the registry forgot
    // it) the same ID comes back as bob's; a call of carol's changes hands to dave unseen.
    f.call("c-1", 1, "alice", State::connected);
    f.call("c-1", 2, "alice", State::disconnected);
    f.call("c-2", 1, "carol", State::connected);
    f.call("c-2", 2, "dave", State::connected);
    f.hub.route({ItemStored{cb::testing::sample_call("c-3", 1, State::connected), {}},
                 ItemReleased{"CMS-A", "c-3"}},
                f.now, f.now);
    auto alice = f.attach("alice");
    auto carol = f.attach("carol");
    auto bob = f.attach("bob");
    f.call("c-1", 1, "bob");
    f.call("c-2", 3, "dave", State::held);
    bob->write();
    alice->write();
    carol->write();
    REQUIRE(bob->written.size() == 1);
    CHECK(event_id(bob->written[0].second) == "c-1");
    CHECK(alice->written.empty());  // c-1 ended while she was away: not hers any more
    CHECK(carol->written.empty());  // c-2 went to dave while she was away
}
