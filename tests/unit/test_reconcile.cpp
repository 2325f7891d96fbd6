// Orphans in the registry and the reconciliation plan (recovery/reconcile.hpp).
#include "channels/registry.hpp"
#include "recovery/reconcile.hpp"
#include "tests/unit/sample_items.hpp"

#include <doctest/doctest.h>

using namespace cb;
using channels::Classification;
using channels::State;

namespace {

const auto kNow = channels::TimePoint(std::chrono::hours(1000000));

channels::Item call(const std::string& id, std::uint64_t version, State state,
                    const std::string& agent = "alice") {
    auto i = testing::sample_call(id, version, state);
    i.agent_id = agent;
    return i;
}

channels::Registry with(std::initializer_list<channels::Item> items) {
    channels::Registry reg({});
    for (auto& i : items)
        REQUIRE(reg.apply(i, kNow).accepted());
    return reg;
}

}  // namespace

TEST_CASE("an orphan is made once, classified, and forgotten when its item ends") {
    auto reg = with({call("c-1", 1, State::connected)});
    auto made = reg.orphan("CMS-A", "c-1", "heartbeatLost", kNow);
    REQUIRE(made);
    auto& record = std::get<channels::OrphanStored>(*made).orphan;
    CHECK(record.agent == "alice");
    CHECK(record.classification == Classification::unchecked);
    CHECK(!reg.orphan("CMS-A", "c-1", "brokerRestart", kNow));  // already one: reason kept
    CHECK(!reg.orphan("CMS-A", "nope", "heartbeatLost", kNow));
    CHECK(reg.find_orphan("CMS-A", "c-1")->reason == "heartbeatLost");
    REQUIRE(reg.classify("CMS-A", "c-1", Classification::alive, kNow));
    CHECK(!reg.classify("CMS-A", "c-1", Classification::alive, kNow));  // nothing changed
    // The CMS ends it: the change carries the orphan's end too.
    auto r = reg.apply(call("c-1", 2, State::disconnected), kNow);
    REQUIRE(r.accepted());
    REQUIRE(r.changes.size() == 2);
    CHECK(std::holds_alternative<channels::OrphanCleared>(r.changes[1]));
    CHECK(reg.orphan_count() == 0);
}

TEST_CASE("ended here, reassigned, released: each keeps the registry's indexes and orphans") {
    auto reg = with({call("c-1", 4, State::held), call("c-2", 1, State::connected),
                     call("c-3", 1, State::connected)});
    for (auto id : {"c-1", "c-2", "c-3"})
        REQUIRE(reg.orphan("CMS-A", id, "brokerRestart", kNow));

    auto ended = reg.end_locally("CMS-A", "c-1", kNow);
    REQUIRE(ended.size() == 2);
    auto& stored = std::get<channels::ItemStored>(ended[0]).item;
    CHECK(stored.state == State::disconnected);
    CHECK(stored.version == 4);
    CHECK(!reg.find("CMS-A", "c-1"));
    // The CMS's own end of it, arriving late, is no news; the same version again neither.
    auto late = reg.apply(call("c-1", 5, State::disconnected), kNow);
    CHECK(std::get<channels::Outcome>(late.result) == channels::Outcome::duplicate);
    CHECK(
        std::get<channels::Outcome>(reg.apply(call("c-1", 4, State::disconnected), kNow).result) ==
        channels::Outcome::duplicate);
    // A CMS that still reports it live had it after all: it comes back.
    CHECK(reg.apply(call("c-1", 6, State::connected), kNow).accepted());
    CHECK(reg.find("CMS-A", "c-1"));
    CHECK(!reg.end_locally("CMS-A", "c-1", kNow).empty());

    auto given = reg.reassign("CMS-A", "c-2", "bob", kNow);
    REQUIRE(given.size() == 2);
    channels::ItemFilter bob;
    bob.agent = "bob";
    REQUIRE(reg.items(bob).size() == 1);
    CHECK(reg.items(bob)[0].id == "c-2");

    auto released = reg.release("CMS-A", "c-3");
    REQUIRE(released.size() == 2);
    CHECK(std::holds_alternative<channels::ItemReleased>(released[0]));
    channels::ItemFilter alice;
    alice.agent = "alice";
    CHECK(reg.items(alice).empty());
    CHECK(reg.orphan_count() == 0);
    // Released is not ended: the CMS may report it again, and it is taken as new.
    CHECK(reg.apply(call("c-3", 2, State::connected), kNow).accepted());
    CHECK(reg.end_locally("CMS-A", "nope", kNow).empty());
}

TEST_CASE("a plan refreshes what both hold, adopts what only the CMS has, closes what it lost") {
    auto reg = with({call("held", 1, State::alerting), call("lost", 1, State::connected),
                     call("raced", 1, State::connected)});
    auto held = reg.versions("CMS-A");
    CHECK(held.size() == 3);
    // An event for "raced" arrives between the request and the answer.
    REQUIRE(reg.apply(call("raced", 2, State::held), kNow).accepted());
    auto plan = recovery::plan_reconcile(
        "CMS-A", {call("held", 2, State::connected), call("new", 1, State::alerting, "bob")}, held,
        reg);
    REQUIRE(plan.refresh.size() == 1);
    CHECK(plan.refresh[0].id == "held");
    REQUIRE(plan.adopt.size() == 1);
    CHECK(plan.adopt[0].id == "new");
    REQUIRE(plan.gone.size() == 1);
    CHECK(plan.gone[0] == "lost");  // "raced" changed since the request: left for next time

    // Applied, then planned again from the same answer: nothing more to do.
    for (auto& i : plan.refresh)
        CHECK(reg.apply(i, kNow).accepted());
    for (auto& i : plan.adopt)
        CHECK(reg.apply(i, kNow).accepted());
    for (auto& id : plan.gone)
        CHECK(!reg.end_locally("CMS-A", id, kNow).empty());
    auto again = recovery::plan_reconcile(
        "CMS-A", {call("held", 2, State::connected), call("new", 1, State::alerting, "bob")},
        reg.versions("CMS-A"), reg);
    for (auto& i : again.refresh)
        CHECK(!reg.apply(i, kNow).accepted());  // duplicates
    CHECK(again.adopt.empty());
    REQUIRE(again.gone.size() == 1);
    CHECK(again.gone[0] == "raced");  // the CMS does not have it either: now it goes
}

TEST_CASE("the reconciliations' overall state") {
    recovery::ReconcileBook book;
    CHECK(book.overall() == "none");
    CHECK(book.begin("CMS-A", "startup", kNow));
    CHECK(!book.begin("CMS-A", "available", kNow));  // one at a time
    CHECK(book.overall() == "running");
    book.at("CMS-A").state = recovery::SystemReconcile::State::done;
    CHECK(book.overall() == "done");
    CHECK(book.begin("CMS-B", "startup", kNow));
    book.at("CMS-B").state = recovery::SystemReconcile::State::failed;
    CHECK(book.overall() == "incomplete");
}
