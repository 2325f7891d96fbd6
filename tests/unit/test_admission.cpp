#include "config/password.hpp"
#include "daemon/auth.hpp"
#include "daemon/logging.hpp"
#include "daemon/logon_guard.hpp"
#include "transport/admission.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <optional>

using namespace cb::daemon;
namespace transport = cb::transport;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("a connection budget bounds a listener in all and per source address") {
    transport::BudgetLimits limits{3, 2};
    auto budget = transport::ConnectionBudget::create([&] { return limits; });
    transport::ConnectionBudget::Ticket a1, a2, a3, b1, b2;
    CHECK(budget->take("10.0.0.1", a1) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("10.0.0.1", a2) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("10.0.0.1", a3) == transport::ConnectionBudget::Refusal::per_address);
    CHECK(budget->take("10.0.0.2", b1) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("10.0.0.3", b2) == transport::ConnectionBudget::Refusal::total);
    CHECK(budget->open() == 3);
    CHECK(budget->refused_total() == 1);
    CHECK(budget->refused_per_address() == 1);

    // A place given back (the ticket destroyed, reset or moved over) is free again.
    a1.reset();
    CHECK(budget->open() == 2);
    CHECK(budget->take("10.0.0.1", a3) == transport::ConnectionBudget::Refusal::none);
    { transport::ConnectionBudget::Ticket gone = std::move(a2); }
    CHECK(budget->open() == 2);
    CHECK(budget->take("10.0.0.1", a1) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->open() == 3);

    // Limits are read at each take: a reload that lowers them applies to the next connection.
    limits = {10, 0};
    transport::ConnectionBudget::Ticket more[4];
    for (auto& t : more)
        CHECK(budget->take("10.0.0.1", t) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->open() == 7);
}

TEST_CASE("the Unix socket's empty address has no per-address bound") {
    auto budget = transport::ConnectionBudget::create([] { return transport::BudgetLimits{2, 1}; });
    transport::ConnectionBudget::Ticket t[3];
    CHECK(budget->take("", t[0]) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("", t[1]) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("", t[2]) == transport::ConnectionBudget::Refusal::total);
}

TEST_CASE("a listener's budget takes its place in the budget of all listeners too") {
    auto all = transport::ConnectionBudget::create([] { return transport::BudgetLimits{3, 0}; });
    auto a = transport::ConnectionBudget::create([] { return transport::BudgetLimits{2, 0}; }, all);
    auto b = transport::ConnectionBudget::create([] { return transport::BudgetLimits{2, 0}; }, all);
    transport::ConnectionBudget::Ticket t[5];
    CHECK(a->take("10.0.0.1", t[0]) == transport::ConnectionBudget::Refusal::none);
    CHECK(a->take("10.0.0.1", t[1]) == transport::ConnectionBudget::Refusal::none);
    CHECK(a->take("10.0.0.1", t[2]) ==
          transport::ConnectionBudget::Refusal::total);  // a's own is full
    CHECK(all->open() == 2);                             // a refusal gives the outer place back
    CHECK(b->take("10.0.0.2", t[3]) == transport::ConnectionBudget::Refusal::none);
    CHECK(b->take("10.0.0.2", t[4]) ==
          transport::ConnectionBudget::Refusal::parent);  // all are in use
    CHECK(b->open() == 1);
    t[0].reset();
    CHECK(all->open() == 2);
    CHECK(b->take("10.0.0.2", t[4]) == transport::ConnectionBudget::Refusal::none);
    CHECK(all->open() == 3);
}

TEST_CASE("a reload that switches the per-address bound on or off keeps the counts right") {
    transport::BudgetLimits limits{10, 0};
    auto budget = transport::ConnectionBudget::create([&] { return limits; });
    transport::ConnectionBudget::Ticket uncounted;
    CHECK(budget->take("10.0.0.1", uncounted) == transport::ConnectionBudget::Refusal::none);
    limits = {10, 1};
    transport::ConnectionBudget::Ticket counted, over;
    CHECK(budget->take("10.0.0.1", counted) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->take("10.0.0.1", over) == transport::ConnectionBudget::Refusal::per_address);
    uncounted.reset();  // taken while unbounded: does not free the counted place
    CHECK(budget->take("10.0.0.1", over) == transport::ConnectionBudget::Refusal::per_address);
    counted.reset();
    CHECK(budget->take("10.0.0.1", over) == transport::ConnectionBudget::Refusal::none);
    // A ticket taken again in the same budget gives its old place back first.
    CHECK(budget->take("10.0.0.2", over) == transport::ConnectionBudget::Refusal::none);
    CHECK(budget->open() == 1);
}

TEST_CASE("a source is an IPv4 address or an IPv6 /64") {
    namespace ip = boost::asio::ip;
    CHECK(transport::source_of(ip::make_address("192.0.2.7")) == "192.0.2.7");
    CHECK(transport::source_of(ip::make_address("::ffff:192.0.2.7")) == "192.0.2.7");
    CHECK(transport::source_of(ip::make_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd")) ==
          "2001:db8:1:2::/64");
    CHECK(transport::source_of(ip::make_address("2001:db8:1:2::9")) ==
          transport::source_of(ip::make_address("2001:db8:1:2:ffff::1")));
    CHECK(transport::source_of(ip::make_address("::1")) == "::/64");
}

namespace {
LogonPolicy test_policy() {
    LogonPolicy p;
    p.free_failures = 2;
    p.first_delay = 100ms;
    p.max_delay = 400ms;
    p.lock_after = 6;
    p.lock_for = 30s;
    p.forget_after = 120s;
    return p;
}
}  // namespace

namespace {
/// One logon that fails: admitted, then failed; returns how long its answer is held.
Clock::duration fail(LogonGuard& guard, const std::string& address, const std::string& user,
                     Clock::time_point when) {
    REQUIRE(guard.admit(address, user, when) == Clock::duration::zero());
    return guard.failed(address, user, when);
}
}  // namespace

TEST_CASE("failed logons are answered later and later, then the address is locked") {
    LogonGuard guard("test", test_policy);
    auto t = Clock::time_point{} + 1h;
    CHECK(fail(guard, "10.0.0.1", "u1", t) == Clock::duration::zero());
    CHECK(fail(guard, "10.0.0.1", "u2", t) == Clock::duration::zero());
    CHECK(fail(guard, "10.0.0.1", "u3", t) == 100ms);
    CHECK(fail(guard, "10.0.0.1", "u4", t) == 200ms);
    CHECK(fail(guard, "10.0.0.1", "u5", t) == 400ms);
    CHECK(fail(guard, "10.0.0.1", "u6", t) == 400ms);  // the 6th: capped, and locks
    CHECK(guard.admit("10.0.0.1", "alice", t) == 30s);
    CHECK(guard.admit("10.0.0.1", "alice", t + 10s) == 20s);
    // Another address is not concerned.
    CHECK(guard.admit("10.0.0.2", "alice", t) == Clock::duration::zero());
    guard.abandoned("10.0.0.2", "alice");
    // The lock ends; the next failure locks again at once (the burst has not ended).
    CHECK(fail(guard, "10.0.0.1", "alice", t + 31s) == 400ms);
    CHECK(guard.admit("10.0.0.1", "bob", t + 31s) == 30s);
    auto c = guard.counters();
    CHECK(c.failures == 7);
    CHECK(c.held == 5);
    CHECK(c.locks == 2);
    CHECK(c.refused == 3);
}

TEST_CASE(
    "guessing at one user from many addresses locks that user, but not where they logged on") {
    LogonGuard guard("test", test_policy);
    auto t = Clock::time_point{} + 1h;
    REQUIRE(guard.admit("10.5.5.5", "alice", t) == Clock::duration::zero());
    guard.succeeded("10.5.5.5", "alice");
    for (int i = 0; i < 6; ++i)
        fail(guard, "10.0.1." + std::to_string(i), "alice", t);
    CHECK(guard.admit("10.9.9.9", "alice", t) == 30s);
    CHECK(guard.admit("10.9.9.9", "bob", t) == Clock::duration::zero());
    guard.abandoned("10.9.9.9", "bob");
    // alice's own address is trusted for her: the lock on the name does not apply there.
    CHECK(guard.admit("10.5.5.5", "alice", t) == Clock::duration::zero());
    guard.succeeded("10.5.5.5", "alice");
}

TEST_CASE("a quiet address starts afresh, and a success clears its address") {
    LogonGuard guard("test", test_policy);
    auto t = Clock::time_point{} + 1h;
    for (int i = 0; i < 4; ++i)
        fail(guard, "10.0.0.1", "u" + std::to_string(i), t);
    CHECK(fail(guard, "10.0.0.1", "x", t) == 400ms);
    // forget_after later: the burst is over.
    CHECK(fail(guard, "10.0.0.1", "y", t + 121s) == Clock::duration::zero());
    fail(guard, "10.0.0.1", "z1", t + 122s);
    CHECK(fail(guard, "10.0.0.1", "z2", t + 122s) == 100ms);
    REQUIRE(guard.admit("10.0.0.1", "z", t + 123s) == Clock::duration::zero());
    guard.succeeded("10.0.0.1", "z");
    CHECK(fail(guard, "10.0.0.1", "z3", t + 123s) == Clock::duration::zero());
}

TEST_CASE("checks in flight count: a burst sent at once is not all checked") {
    auto policy = [] {
        auto p = test_policy();
        p.max_checking = 4;
        return p;
    };
    LogonGuard guard("test", policy);
    auto t = Clock::time_point{} + 1h;
    // A site behind one address logs on together: its address is not bounded before a failure.
    for (int i = 0; i < 10; ++i)
        CHECK(guard.admit("10.0.0.9", "u" + std::to_string(i), t) == Clock::duration::zero());
    for (int i = 0; i < 10; ++i)
        guard.succeeded("10.0.0.9", "u" + std::to_string(i));
    // One user: at most max_checking at once, from wherever.
    for (int i = 0; i < 4; ++i)
        CHECK(guard.admit("10.0.1." + std::to_string(i), "bob", t) == Clock::duration::zero());
    CHECK(guard.admit("10.0.1.9", "bob", t) == 1s);
    guard.succeeded("10.0.1.0", "bob");
    CHECK(guard.admit("10.0.1.9", "bob", t) == Clock::duration::zero());
    for (auto* a : {"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.9"})
        guard.abandoned(a, "bob");
    // An address that has failed: at most max_checking at once (one failure, five left).
    fail(guard, "10.0.0.8", "x", t);
    for (int i = 0; i < 4; ++i)
        CHECK(guard.admit("10.0.0.8", "y" + std::to_string(i), t) == Clock::duration::zero());
    CHECK(guard.admit("10.0.0.8", "y9", t) == 1s);
    for (int i = 0; i < 4; ++i)
        guard.abandoned("10.0.0.8", "y" + std::to_string(i));

    // Once an address has failed, what is in flight counts against what is left before the
    // lock (lock_after 6): with 4 failures, 2 more may be checked at once, not 4.
    for (int i = 0; i < 4; ++i)
        fail(guard, "10.0.0.7", "v" + std::to_string(i), t);
    CHECK(guard.admit("10.0.0.7", "w1", t) == Clock::duration::zero());
    CHECK(guard.admit("10.0.0.7", "w2", t) == Clock::duration::zero());
    CHECK(guard.admit("10.0.0.7", "w3", t) == 1s);
    guard.failed("10.0.0.7", "w1", t);
    guard.failed("10.0.0.7", "w2", t);
    CHECK(guard.admit("10.0.0.7", "w3", t) == 30s);  // six failures: locked
}

TEST_CASE("the guard remembers a bounded number of addresses, and never forgets a lock early") {
    auto policy = [] {
        auto p = test_policy();
        p.max_tracked = 100;
        return p;
    };
    LogonGuard guard("test", policy);
    auto t = Clock::time_point{} + 1h;
    for (int i = 0; i < 6; ++i)
        fail(guard, "10.0.0.1", "u", t);
    // 1,000 other addresses fail once each, later: the table stays at 100, the quiet ones go.
    for (int i = 0; i < 1000; ++i)
        fail(guard, "spray-" + std::to_string(i), "v" + std::to_string(i),
             t + std::chrono::milliseconds(i + 1));
    CHECK(guard.admit("10.0.0.1", "w", t + 2s) == 28s);
    CHECK(guard.admit("fresh", "w2", t + 2s) == Clock::duration::zero());
    guard.abandoned("fresh", "w2");
}

TEST_CASE("a table too full of locked names refuses, even a user trusted at the address") {
    auto policy = [] {
        auto p = test_policy();
        p.max_tracked = 2;
        return p;
    };
    LogonGuard guard("test", policy);
    auto t = Clock::time_point{} + 1h;
    REQUIRE(guard.admit("T", "alice", t) == Clock::duration::zero());
    guard.succeeded("T", "alice");
    // Two names locked, each by guesses from addresses that fail once (and can be forgotten).
    for (int i = 0; i < 6; ++i) {
        fail(guard, "x-" + std::to_string(i), "x", t);
        fail(guard, "y-" + std::to_string(i), "y", t);
    }
    CHECK(guard.admit("T", "alice", t) == 1s);  // no room to track alice: refused, not a crash
}

TEST_CASE("text from clients is made safe for a log line") {
    CHECK(printable("alice") == "alice");
    CHECK(printable("a\r\nforged line") == "a??forged line");
    CHECK(printable(std::string(300, 'x'), 10) == "xxxxxxxxxx...");
}

TEST_CASE("an accept pacer backs off on a lack of descriptors and not on a passing error") {
    transport::AcceptPacer pacer("test listener");
    namespace error = boost::asio::error;
    CHECK(pacer.failed(error::connection_aborted) == 0ms);
    CHECK(pacer.episodes() == 0);
    boost::system::error_code emfile(EMFILE, boost::system::system_category());
    CHECK(pacer.failed(emfile) == 10ms);
    CHECK(pacer.failed(emfile) == 20ms);
    for (int i = 0; i < 20; ++i)
        pacer.failed(emfile);
    CHECK(pacer.failed(emfile) == 1000ms);
    CHECK(pacer.episodes() == 1);
    pacer.accepted();
    CHECK(pacer.failed(emfile) == 10ms);  // a new episode starts from the beginning
    CHECK(pacer.episodes() == 2);
}

namespace {
/// Runs one check and the io_context until its answer.
LogonDoor::Result check_once(boost::asio::io_context& io, LogonDoor& door, std::string address,
                             std::string user, std::string password, const std::string* hash) {
    std::optional<LogonDoor::Result> got;
    io.restart();
    // The answer may come from a verifier thread: the io_context must wait for it, not run dry.
    auto work = boost::asio::make_work_guard(io);
    door.check(address, std::move(user), std::move(password), hash,
               [&](LogonDoor::Result r) { got = r; });
    auto deadline = Clock::now() + 10s;
    while (!got && Clock::now() < deadline)
        io.run_one_for(1s);
    REQUIRE(got);
    return *got;
}
}  // namespace

TEST_CASE("a logon door: known credentials pass even while their user is locked") {
    boost::asio::io_context io;
    CredentialCache cache;
    LogonDoor door(io, cache, "test", test_policy, 10000, 1, 16);
    auto hash = cb::config::hash_password("secret", 10000);
    using V = LogonDoor::Verdict;

    CHECK(check_once(io, door, "10.0.0.1", "alice", "secret", &hash).verdict == V::ok);
    for (int i = 0; i < 6; ++i)
        CHECK(check_once(io, door, "10.0.0." + std::to_string(10 + i), "alice", "guess", &hash)
                  .verdict == V::wrong);
    // alice is locked for everyone who does not hold her password...
    auto locked = check_once(io, door, "10.0.0.99", "alice", "guess", &hash);
    CHECK(locked.verdict == V::locked);
    CHECK(locked.retry_after == 30s);
    // ...but the password verified before still opens the door, without the verifier.
    auto hashed = door.verifier().counters().hashed;
    CHECK(check_once(io, door, "10.0.0.1", "alice", "secret", &hash).verdict == V::ok);
    CHECK(door.verifier().counters().hashed == hashed);
    CHECK(door.counters().failures == 6);
}

TEST_CASE("a logon door with an urgent lane sends there only known users nobody fails as") {
    boost::asio::io_context io;
    CredentialCache cache;
    LogonDoor door(io, cache, "test", test_policy, 10000, 1, 16, true);
    auto hash = cb::config::hash_password("secret", 10000);
    using V = LogonDoor::Verdict;
    CHECK(check_once(io, door, "10.0.0.1", "cms-a", "secret", &hash).verdict == V::ok);
    CHECK(door.verifier().counters().urgent == 1);
    CHECK(check_once(io, door, "10.0.0.1", "nobody", "guess", nullptr).verdict == V::wrong);
    CHECK(door.verifier().counters().urgent == 1);  // an unknown user never
    CHECK(check_once(io, door, "10.0.0.2", "cms-b", "guess", &hash).verdict == V::wrong);
    CHECK(door.verifier().counters().urgent == 2);  // the first guess at a clean name does
    // From then on the name has a failure on record: its checks wait with everyone else's,
    // from any address, and so do any from the address that failed.
    CHECK(check_once(io, door, "10.0.0.3", "cms-b", "secret", &hash).verdict == V::ok);
    CHECK(check_once(io, door, "10.0.0.2", "cms-c", "secret", &hash).verdict == V::ok);
    CHECK(door.verifier().counters().urgent == 2);
    CHECK(door.verifier().counters().hashed == 5);
}

TEST_CASE("an in-flight limit starts jobs up to its limit and the rest in order as jobs end") {
    unsigned limit = 2;
    transport::InFlightLimit l([&] { return limit; });
    std::vector<int> started;
    for (int i = 0; i < 5; ++i)
        l.run([&, i] { started.push_back(i); });
    CHECK(started == std::vector<int>{0, 1});
    CHECK(l.in_flight() == 2);
    CHECK(l.waiting() == 3);
    l.done();
    CHECK(started == std::vector<int>{0, 1, 2});
    CHECK(l.in_flight() == 2);
    // Lowered: a job that ends lets the others in flight go down to the limit first.
    limit = 1;
    l.done();
    CHECK(started.size() == 3);
    CHECK(l.in_flight() == 1);
    l.done();
    CHECK(started == std::vector<int>{0, 1, 2, 3});
    l.done();
    CHECK(started == std::vector<int>{0, 1, 2, 3, 4});
    l.done();
    CHECK(l.in_flight() == 0);
    CHECK(l.waiting() == 0);
    l.run([&] { started.push_back(5); });  // room again: at once
    CHECK(started.back() == 5);
}

TEST_CASE("a stand-in hash is a well-formed hash of the given cost that no password matches") {
    auto h = stand_in_hash(12345);
    CHECK_FALSE(cb::config::check_password_hash(h));  // no complaint: well formed
    CHECK(h.rfind("pbkdf2-sha256$12345$", 0) == 0);
    CHECK_FALSE(cb::config::verify_password("", h));
    CHECK(stand_in_hash(12345) != h);  // random salt and key each time
}

TEST_CASE("a logon door checks an unknown user against a stand-in of the same cost") {
    boost::asio::io_context io;
    CredentialCache cache;
    LogonDoor door(io, cache, "test", test_policy, 10000, 1, 16);
    auto before = door.verifier().counters().hashed;
    auto r = check_once(io, door, "10.0.0.1", "nobody", "guess", nullptr);
    CHECK(r.verdict == LogonDoor::Verdict::wrong);
    CHECK(door.verifier().counters().hashed == before + 1);  // a PBKDF2 ran, as for a known user
    CHECK(door.counters().failures == 1);
}

TEST_CASE("a log limit lets a burst through, then says how many lines it left out") {
    LogLimit limit(3, std::chrono::seconds(60));
    auto t = Clock::time_point{} + 1h;
    std::uint64_t left_out = 99;
    for (int i = 0; i < 3; ++i) {
        CHECK(limit.allow(left_out, t));
        CHECK(left_out == 0);
    }
    for (int i = 0; i < 5; ++i)
        CHECK_FALSE(limit.allow(left_out, t + 1s));
    CHECK(limit.allow(left_out, t + 61s));  // a new window
    CHECK(left_out == 5);
    CHECK(left_out_note(left_out) == " (5 more like it left out)");
    CHECK(limit.allow(left_out, t + 62s));
    CHECK(left_out == 0);
    CHECK(left_out_note(0).empty());
}

TEST_CASE("HandshakeRate: a bucket per source, refilled with time, forgotten when full") {
    unsigned rate = 3;
    transport::HandshakeRate r([&] { return rate; }, 2);
    auto t0 = Clock::now();
    for (int i = 0; i < 3; ++i)
        CHECK(r.take("10.0.0.1", t0));
    CHECK_FALSE(r.take("10.0.0.1", t0));  // the burst is spent
    for (int i = 0; i < 3; ++i)
        CHECK(r.take("10.0.0.2", t0));  // another source has its own
    CHECK_FALSE(r.take("10.0.0.1", t0 + 100ms));
    CHECK(r.take("10.0.0.1", t0 + 340ms));  // a third of a second: one more
    CHECK_FALSE(r.take("10.0.0.1", t0 + 340ms));
    // Two sources tracked at most: a third is refused while both buckets are refilling, and
    // the next look for room waits a second…
    CHECK_FALSE(r.take("10.0.0.3", t0 + 400ms));
    CHECK_FALSE(r.take("10.0.0.3", t0 + 1300ms));
    // …after which the full buckets are forgotten and there is room.
    CHECK(r.take("10.0.0.3", t0 + 1500ms));
    rate = 0;  // no bound
    for (int i = 0; i < 100; ++i)
        CHECK(r.take("10.0.0.1", t0 + 2s));
}

TEST_CASE("a logon door checks a credential once however many requests bring it at once") {
    boost::asio::io_context io;
    CredentialCache cache;
    // maxChecking 32 in the policy: 50 separate checks of one user would refuse 18.
    LogonDoor door(io, cache, "test", test_policy, 10000, 1, 256);
    auto hash = cb::config::hash_password("secret", 10000);
    std::vector<LogonDoor::Verdict> verdicts;
    auto work = boost::asio::make_work_guard(io);
    for (int i = 0; i < 50; ++i)
        door.check("10.0.0.1", "alice", "secret", &hash,
                   [&](LogonDoor::Result r) { verdicts.push_back(r.verdict); });
    auto deadline = Clock::now() + 10s;
    while (verdicts.size() < 50 && Clock::now() < deadline)
        io.run_one_for(1s);
    REQUIRE(verdicts.size() == 50);
    CHECK(std::count(verdicts.begin(), verdicts.end(), LogonDoor::Verdict::ok) == 50);
    CHECK(door.verifier().counters().hashed == 1);

    // So are 50 requests with the same wrong password: one check, one failure counted.
    verdicts.clear();
    for (int i = 0; i < 50; ++i)
        door.check("10.0.0.2", "alice", "guess", &hash,
                   [&](LogonDoor::Result r) { verdicts.push_back(r.verdict); });
    deadline = Clock::now() + 10s;
    while (verdicts.size() < 50 && Clock::now() < deadline)
        io.run_one_for(1s);
    REQUIRE(verdicts.size() == 50);
    CHECK(std::count(verdicts.begin(), verdicts.end(), LogonDoor::Verdict::wrong) == 50);
    CHECK(door.verifier().counters().hashed == 2);
    CHECK(door.counters().failures == 1);
}
