#include "channels/registry.hpp"

#include "tests/unit/sample_items.hpp"

#include <doctest/doctest.h>

using namespace cb::channels;

namespace {

const TimePoint t0 = TimePoint(std::chrono::hours(500000));

Item call(std::uint64_t version, State state, const std::string& id = "c-1") {
    return cb::testing::sample_call(id, version, state);
}

Item chat(std::uint64_t version, State state, const std::string& id = "chat-1") {
    Item i = call(version, state, id);
    i.channel = Channel::chat;
    i.direction.clear();
    i.remote_numbers.clear();
    i.local_address.clear();
    i.topic = "billing";
    return i;
}

Outcome outcome_of(const ApplyResult& r) {
    REQUIRE(std::holds_alternative<Outcome>(r.result));
    return std::get<Outcome>(r.result);
}

Rejection rejection_of(const ApplyResult& r) {
    REQUIRE(std::holds_alternative<Rejection>(r.result));
    return std::get<Rejection>(r.result);
}

}  // namespace

TEST_CASE("a call reported through its states ends and leaves the live registry") {
    Registry reg({});
    CHECK(outcome_of(reg.apply(call(1, State::alerting), t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(call(2, State::connected), t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(call(3, State::held), t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(call(4, State::connected), t0)) == Outcome::accepted);
    REQUIRE(reg.find("CMS-A", "c-1"));
    CHECK(reg.find("CMS-A", "c-1")->state == State::connected);
    auto r = reg.apply(call(5, State::disconnected), t0);
    CHECK(outcome_of(r) == Outcome::accepted);
    REQUIRE(r.changes.size() == 1);
    CHECK(std::get<ItemStored>(r.changes[0]).item.state == State::disconnected);
    CHECK(reg.find("CMS-A", "c-1") == nullptr);
    CHECK(reg.item_count() == 0);
}

TEST_CASE("a resent snapshot is a duplicate and a older one is stale; neither changes anything") {
    Registry reg({});
    reg.apply(call(1, State::alerting), t0);
    reg.apply(call(3, State::connected), t0);
    auto dup = reg.apply(call(3, State::connected), t0);
    CHECK(outcome_of(dup) == Outcome::duplicate);
    CHECK(dup.changes.empty());
    auto stale = reg.apply(call(2, State::alerting), t0);
    CHECK(outcome_of(stale) == Outcome::stale);
    CHECK(stale.changes.empty());
    CHECK(reg.find("CMS-A", "c-1")->version == 3);
}

TEST_CASE("a forbidden state move is refused and changes nothing") {
    Registry reg({});
    reg.apply(call(1, State::alerting), t0);
    auto r = rejection_of(reg.apply(call(2, State::held), t0));
    CHECK(r.code == Rejection::Code::invalid_transition);
    CHECK(r.error.field == "state");
    CHECK(reg.find("CMS-A", "c-1")->version == 1);
    CHECK(reg.find("CMS-A", "c-1")->state == State::alerting);
}

TEST_CASE("an item ID cannot change channel") {
    Registry reg({});
    reg.apply(call(1, State::alerting, "x-1"), t0);
    auto r = rejection_of(reg.apply(chat(2, State::offered, "x-1"), t0));
    CHECK(r.code == Rejection::Code::invalid_field);
    CHECK(r.error.field == "id");
    CHECK(reg.find("CMS-A", "x-1")->channel == Channel::phone);
}

TEST_CASE("the first snapshot may carry any state") {
    Registry reg({});
    CHECK(outcome_of(reg.apply(call(7, State::held), t0)) == Outcome::accepted);
    CHECK(reg.find("CMS-A", "c-1")->state == State::held);
}

TEST_CASE(
    "an ended item is remembered: older or equal versions are stale or duplicate, newer ones "
    "refused") {
    Registry reg({std::chrono::hours(1), 1000});
    reg.apply(call(1, State::connected), t0);
    reg.apply(call(2, State::disconnected), t0);
    CHECK(outcome_of(reg.apply(call(2, State::disconnected), t0)) == Outcome::duplicate);
    CHECK(outcome_of(reg.apply(call(1, State::connected), t0)) == Outcome::stale);
    CHECK(rejection_of(reg.apply(call(3, State::connected), t0)).code ==
          Rejection::Code::invalid_transition);
    reg.prune(t0 + std::chrono::minutes(59));
    CHECK(reg.ended_count() == 1);
    reg.prune(t0 + std::chrono::minutes(61));
    CHECK(reg.ended_count() == 0);
    // Forgotten: the ID may be used again.
    CHECK(outcome_of(reg.apply(call(3, State::alerting), t0)) == Outcome::accepted);
}

TEST_CASE("snapshots breaking field rules are refused with the field named") {
    Registry reg({});
    auto bad_number = call(1, State::alerting);
    bad_number.remote_numbers = {"030 1234"};
    CHECK(rejection_of(reg.apply(bad_number, t0)).error.field == "remoteNumbers");
    auto bad_id = call(1, State::alerting, "bad id");
    CHECK(rejection_of(reg.apply(bad_id, t0)).error.field == "id");
    auto bad_time = call(1, State::alerting);
    bad_time.changed_at = "now";
    CHECK(rejection_of(reg.apply(bad_time, t0)).error.field == "changedAt");
    CHECK(reg.item_count() == 0);
}

TEST_CASE("postings are kept with their active chat; a resent posting is a duplicate") {
    Registry reg({});
    reg.apply(chat(1, State::active), t0);
    ChatPosting p{"chat-1", "customer", "hello €", false, "2026-11-22T10:00:01Z"};
    CHECK(outcome_of(reg.apply(PostingEvent{"CMS-A", p}, t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(PostingEvent{"CMS-A", p}, t0)) == Outcome::duplicate);
    REQUIRE(reg.find("CMS-A", "chat-1")->postings.size() == 1);
    // A new chat snapshot keeps the postings.
    auto next = chat(2, State::active);
    reg.apply(next, t0);
    CHECK(reg.find("CMS-A", "chat-1")->postings.size() == 1);
    auto unknown = p;
    unknown.chat_session_id = "chat-9";
    CHECK(rejection_of(reg.apply(PostingEvent{"CMS-A", unknown}, t0)).error.field ==
          "chatSessionId");
    reg.apply(chat(3, State::ended), t0);
    CHECK(rejection_of(reg.apply(PostingEvent{"CMS-A", p}, t0)).code ==
          Rejection::Code::invalid_transition);
}

TEST_CASE("systems are separate ID spaces") {
    Registry reg({});
    auto a = call(1, State::alerting);
    auto b = call(1, State::alerting);
    b.system = "CMS-B";
    CHECK(outcome_of(reg.apply(a, t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(b, t0)) == Outcome::accepted);
    CHECK(reg.item_count() == 2);
    ItemFilter f;
    f.system = "CMS-B";
    CHECK(reg.items(f).size() == 1);
}

TEST_CASE("an agent state is stored; the same state again is a duplicate") {
    Registry reg({});
    AgentState a{"CMS-A", "alice", AgentStateValue::ready, 0, {}, {"phone"}};
    CHECK(outcome_of(reg.apply(a, t0)) == Outcome::accepted);
    CHECK(outcome_of(reg.apply(a, t0)) == Outcome::duplicate);
    a.state = AgentStateValue::logged_off;
    CHECK(outcome_of(reg.apply(a, t0)) == Outcome::accepted);
    REQUIRE(reg.agents().size() == 1);
    CHECK(reg.agents()[0].state == AgentStateValue::logged_off);
}

TEST_CASE("items by agent follow a transfer, an end and a restore") {
    Registry reg({});
    auto a = call(1, State::alerting, "c-1");
    a.agent_id = "alice";
    auto b = call(1, State::alerting, "c-2");
    b.agent_id = "alice";
    REQUIRE(reg.apply(a, t0).accepted());
    REQUIRE(reg.apply(b, t0).accepted());
    ItemFilter alice;
    alice.agent = "alice";
    ItemFilter bob;
    bob.agent = "bob";
    CHECK(reg.items(alice).size() == 2);
    // c-1 is transferred to bob, c-2 ends.
    auto moved = call(2, State::connected, "c-1");
    moved.agent_id = "bob";
    REQUIRE(reg.apply(moved, t0).accepted());
    REQUIRE(reg.apply(call(2, State::disconnected, "c-2"), t0).accepted());
    CHECK(reg.items(alice).empty());
    auto bobs = reg.items(bob);
    REQUIRE(bobs.size() == 1);
    CHECK(bobs[0].id == "c-1");
    // An agent filter combines with the others, and a restored registry has the same index.
    bob.state = State::alerting;
    CHECK(reg.items(bob).empty());
    Registry again({});
    again.restore(reg.items({}), {}, {});
    ItemFilter bob_again;
    bob_again.agent = "bob";
    CHECK(again.items(bob_again).size() == 1);
}

TEST_CASE("an item untouched since a time is found until it is changed or orphaned") {
    Registry r({});
    r.apply(call(1, State::alerting, "c-1"), t0);
    r.apply(call(1, State::alerting, "c-2"), t0 + std::chrono::minutes(5));
    CHECK(r.find("CMS-A", "c-1")->touched == t0);
    auto untouched = r.untouched(t0 + std::chrono::minutes(1));
    REQUIRE(untouched.size() == 1);
    CHECK(untouched[0].second == "c-1");

    // A duplicate is no touch; a newer snapshot and an operator's assign are.
    r.apply(call(1, State::alerting, "c-1"), t0 + std::chrono::minutes(10));
    CHECK(r.untouched(t0 + std::chrono::minutes(1)).size() == 1);
    r.apply(call(2, State::connected, "c-1"), t0 + std::chrono::minutes(10));
    CHECK(r.untouched(t0 + std::chrono::minutes(6)).size() == 1);  // c-2 only
    r.reassign("CMS-A", "c-2", "bob", t0 + std::chrono::minutes(11));
    CHECK(r.untouched(t0 + std::chrono::minutes(10)).empty());

    // An orphan is not listed again; a restored item keeps its time.
    REQUIRE(r.orphan("CMS-A", "c-1", "untouched", t0 + std::chrono::minutes(20)));
    CHECK(r.untouched(t0 + std::chrono::hours(1)).size() == 1);
    Registry restored({});
    auto held = *r.find("CMS-A", "c-2");
    restored.restore({held}, {}, {});
    CHECK(restored.find("CMS-A", "c-2")->touched == t0 + std::chrono::minutes(11));
}

TEST_CASE("an agent is gone at a system while it has orphans orphaned for its absence there") {
    Registry r({});
    r.apply(call(1, State::alerting, "c-1"), t0);
    r.apply(call(1, State::alerting, "c-2"), t0);
    CHECK_FALSE(r.absence("alice", "CMS-A"));
    REQUIRE(r.orphan("CMS-A", "c-1", "untouched", t0));
    CHECK_FALSE(r.absence("alice", "CMS-A"));  // untouched says nothing about alice
    REQUIRE(r.orphan("CMS-A", "c-2", "heartbeatLost", t0));
    CHECK(r.absence("alice", "CMS-A") == "heartbeatLost");
    CHECK_FALSE(r.absence("alice", "CMS-B"));
    CHECK_FALSE(r.absence("bob", "CMS-A"));
    // Logged off at the CMS later: still gone. Logged on there again (a hard phone, a desktop
    // whose logon reply is on its way): not gone, although her orphans are still orphans.
    AgentState alice{"CMS-A", "alice", AgentStateValue::logged_off, 0, {}, {}};
    r.apply(alice, t0 + std::chrono::seconds(1));
    CHECK(r.absence("alice", "CMS-A") == "heartbeatLost");
    alice.state = AgentStateValue::ready;
    r.apply(alice, t0 + std::chrono::seconds(2));
    CHECK_FALSE(r.absence("alice", "CMS-A"));
    REQUIRE(r.find_orphan("CMS-A", "c-2"));
    r.clear_orphan("CMS-A", "c-2");  // re-adopted: alice is back
    CHECK_FALSE(r.absence("alice", "CMS-A"));
}
