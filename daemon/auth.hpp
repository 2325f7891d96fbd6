// HTTP Basic authentication against the PBKDF2 hashes of the config. PBKDF2 is slow on purpose,
// so a verified credential is remembered, keyed by HMAC-SHA256 of the presented secret under a
// per-process random key (the cache never holds a password or anything it can be derived from
// cheaply). Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cb::daemon {

struct BasicCredentials {
    std::string user;
    std::string password;
};

/// Parses an Authorization header value "Basic base64(user:password)".
std::optional<BasicCredentials> parse_basic(std::string_view header);

class CredentialCache {
  public:
    explicit CredentialCache(std::size_t max_entries = 4096);

    /// True if `password` matches `hash` (PBKDF2 at most once per distinct credential).
    bool verify(std::string_view user, std::string_view password, std::string_view hash);

  private:
    std::string key_;
    std::size_t max_entries_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::string>
        verified_;  // tag -> the hash it was verified against
};

}  // namespace cb::daemon
