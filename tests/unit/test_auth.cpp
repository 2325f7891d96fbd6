#include "config/password.hpp"
#include "daemon/auth.hpp"

#include <doctest/doctest.h>

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
