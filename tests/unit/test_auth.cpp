#include "config/password.hpp"
#include "daemon/auth.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace cb::daemon;

TEST_CASE("Basic credentials are parsed; malformed headers are not") {
    auto c = parse_basic("Basic Y21zLWE6c2VjcmV0");  // cms-a:secret
    REQUIRE(c);
    CHECK(c->user == "cms-a");
    CHECK(c->password == "secret");
    CHECK(parse_basic("basic Y21zLWE6c2VjcmV0"));
    CHECK_FALSE(parse_basic("Bearer abc"));
    CHECK_FALSE(parse_basic("Basic !!!!"));
    CHECK_FALSE(parse_basic("Basic Y21zLWE="));  // no colon
}

TEST_CASE("the credential cache accepts the right password only, and follows a changed hash") {
    CredentialCache cache;
    auto h1 = cb::config::hash_password("secret", 10000);
    auto h2 = cb::config::hash_password("other", 10000);
    CHECK(cache.verify("u", "secret", h1));
    CHECK(cache.verify("u", "secret", h1));  // remembered
    CHECK_FALSE(cache.verify("u", "wrong", h1));
    CHECK_FALSE(cache.verify("u", "secret", h2));  // the config now holds another hash
    CHECK(cache.verify("u", "other", h2));
}

TEST_CASE("a credential's tag is a keyed hash: the same for the same credential, per process") {
    CredentialCache cache, other;
    auto tag = cache.tag_of("cms-a", "secret");
    CHECK(tag.size() == 32);                        // HMAC-SHA256
    CHECK(cache.tag_of("cms-a", "secret") == tag);  // the context starts again each time
    CHECK(cache.tag_of("cms-a", "secreT") != tag);
    CHECK(cache.tag_of("cms-", "asecret") != tag);  // where the user ends counts
    CHECK(other.tag_of("cms-a", "secret") != tag);  // another key
}

TEST_CASE("concurrent known() calls on one credential cache all get the right answer") {
    CredentialCache cache;
    auto h = cb::config::hash_password("secret", 10000);
    REQUIRE(cache.verify("u", "secret", h));
    std::atomic<int> right{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i)
                if (cache.known("u", "secret", h) && !cache.known("u", "wrong", h)) ++right;
        });
    for (auto& t : threads)
        t.join();
    CHECK(right == 8000);
}

namespace {
using Verdict = PasswordVerifier::Verdict;

/// Runs verify() and waits for its verdict, with the thread `done` ran on.
std::pair<Verdict, std::thread::id> verdict_of(PasswordVerifier& v, std::string user,
                                               std::string password, std::string hash) {
    std::promise<std::pair<Verdict, std::thread::id>> p;
    auto f = p.get_future();
    v.verify(std::move(user), std::move(password), std::move(hash), [&p](Verdict r) {
        p.set_value({r, std::this_thread::get_id()});
    });
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return f.get();
}
}  // namespace

TEST_CASE("the password verifier hashes on its own thread and answers what it knows at once") {
    CredentialCache cache;
    PasswordVerifier v(cache, 1, 8);
    auto h = cb::config::hash_password("secret", 10000);
    auto first = verdict_of(v, "u", "secret", h);
    CHECK(first.first == Verdict::ok);
    CHECK(first.second != std::this_thread::get_id());  // PBKDF2 ran on the verifier's thread
    auto again = verdict_of(v, "u", "secret", h);
    CHECK(again.first == Verdict::ok);
    CHECK(again.second == std::this_thread::get_id());  // remembered: no hop, no PBKDF2
    CHECK(verdict_of(v, "u", "wrong", h).first == Verdict::wrong);
    auto c = v.counters();
    CHECK(c.hashed == 2);
    CHECK(c.cached == 1);
    CHECK(c.busy == 0);
}

TEST_CASE("the password verifier refuses at once when its queue is full, and at stop") {
    CredentialCache cache;
    PasswordVerifier v(cache, 1, 2);
    // Slow hashes so that the queue fills behind the first one.
    auto h = cb::config::hash_password("secret", 2000000);
    std::atomic<int> ok{0}, wrong{0}, busy{0};
    auto count = [&](Verdict r) {
        (r == Verdict::ok ? ok : r == Verdict::wrong ? wrong : busy).fetch_add(1);
    };
    v.verify("u0", "nope", h, count);
    // Once the verifier's thread holds the first, two more fit in the queue.
    for (int i = 0; i < 1000 && v.counters().hashed == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(v.counters().hashed == 1);
    for (int i = 1; i < 10; ++i)
        v.verify("u" + std::to_string(i), "nope", h, count);
    CHECK(busy.load() == 7);  // refused on this thread, at once
    CHECK(v.queued() == 2);
    v.stop();  // the one in hand finishes; the queued ones are answered busy
    CHECK(wrong.load() == 1);
    CHECK(busy.load() == 9);
    CHECK(ok.load() == 0);
    CHECK(v.counters().busy == 9);
    // After stop, nothing waits: a new check is refused at once.
    CHECK(verdict_of(v, "x", "secret", h).first == Verdict::busy);
}

TEST_CASE("an urgent check overtakes a busy ordinary queue on the urgent lane, and only there") {
    CredentialCache cache;
    auto slow = cb::config::hash_password("secret", 400000);
    auto quick = cb::config::hash_password("secret", 10000);
    std::mutex m;
    std::vector<std::string> order;
    std::atomic<int> answered{0};
    auto note = [&](std::string name) {
        return [&, name](Verdict) {
            std::lock_guard lock(m);
            order.push_back(name);
            answered.fetch_add(1);
        };
    };
    auto wait_all = [&](int n) {
        for (int i = 0; i < 2000 && answered.load() < n; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(answered.load() == n);
    };
    {
        PasswordVerifier v(cache, 1, 8, true);
        for (int i = 0; i < 3; ++i)
            v.verify("u" + std::to_string(i), "nope", slow, note("slow" + std::to_string(i)));
        v.verify("cms", "secret", quick, note("urgent"), true);
        wait_all(4);
        CHECK(order.front() == "urgent");  // not behind the three slow ones
        CHECK(v.counters().urgent == 1);
        CHECK(v.counters().hashed == 4);
    }
    order.clear();
    answered = 0;
    {
        // Without the lane, urgent means nothing: the queue's order holds.
        PasswordVerifier v(cache, 1, 8);
        v.verify("u0", "nope", slow, note("slow0"));
        v.verify("cms2", "secret", quick, note("urgent"), true);
        wait_all(2);
        CHECK(order == std::vector<std::string>{"slow0", "urgent"});
        CHECK(v.counters().urgent == 0);
    }
}

TEST_CASE("a resume key lets in its agent's session only, and stops working when replaced") {
    ResumeKeys keys;
    auto k1 = ResumeKeys::make();
    CHECK(k1.key.size() == 48);
    CHECK(k1.hash == ResumeKeys::hash_of(k1.key));
    CHECK(k1.hash.find(k1.key) == std::string::npos);
    CHECK_FALSE(keys.check("alice", "t-1", k1.key));  // issued, not yet anyone's
    keys.set("alice", "t-1", k1.hash);
    CHECK(keys.check("alice", "t-1", k1.key));
    CHECK_FALSE(keys.check("alice", "t-2", k1.key));  // another session
    CHECK_FALSE(keys.check("bob", "t-1", k1.key));    // another agent
    CHECK_FALSE(keys.check("alice", "t-1", k1.key.substr(1)));
    CHECK_FALSE(keys.check("alice", "t-1", ""));
    auto k2 = ResumeKeys::make();
    CHECK(k2.key != k1.key);
    keys.set("alice", "t-1", k2.hash);  // the next welcome rotates it
    CHECK_FALSE(keys.check("alice", "t-1", k1.key));
    CHECK(keys.check("alice", "t-1", k2.key));
    keys.forget("alice");
    CHECK_FALSE(keys.check("alice", "t-1", k2.key));
}
