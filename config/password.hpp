// Password hashes of the config: "pbkdf2-sha256$ITERATIONS$SALT$HASH", salt and hash in standard
// base64, a 32-byte hash, at least 10,000 iterations. Pure functions, any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cb::config {

inline constexpr unsigned kMinPbkdf2Iterations = 10000;
inline constexpr unsigned kDefaultPbkdf2Iterations = 100000;

/// Standard base64 with padding (RFC 4648 section 4).
std::string base64_encode(std::string_view bytes);
/// nullopt unless `text` is padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

/// Why a hash string is not usable, or nullopt if it is.
std::optional<std::string> check_password_hash(std::string_view encoded);

/// A new hash with a random 16-byte salt.
std::string hash_password(std::string_view password,
                          unsigned iterations = kDefaultPbkdf2Iterations);

/// Constant-time comparison of the derived key; false for a malformed hash.
bool verify_password(std::string_view password, std::string_view encoded);

}  // namespace cb::config
