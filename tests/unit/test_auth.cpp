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
