#include "daemon/auth.hpp"

#include "config/password.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace cb::daemon {

std::optional<BasicCredentials> parse_basic(std::string_view header) {
    constexpr std::string_view kScheme = "Basic ";
    if (header.size() <= kScheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < kScheme.size() - 1; ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) !=
            std::tolower(static_cast<unsigned char>(kScheme[i])))
            return std::nullopt;
    auto b64 = header.substr(kScheme.size());
    while (!b64.empty() && b64.front() == ' ')
        b64.remove_prefix(1);
    while (!b64.empty() && b64.back() == ' ')
        b64.remove_suffix(1);
    if (b64.size() > 4096) return std::nullopt;
    auto decoded = config::base64_decode(b64);
    if (!decoded) return std::nullopt;
    const std::string& raw = *decoded;
    auto colon = raw.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return BasicCredentials{raw.substr(0, colon), raw.substr(colon + 1)};
}

CredentialCache::CredentialCache(std::size_t max_entries)
    : key_(32, '\0'), max_entries_(max_entries) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), static_cast<int>(key_.size())) !=
        1)
        throw std::runtime_error("no random bytes for the credential cache key");
}

bool CredentialCache::verify(std::string_view user, std::string_view password,
                             std::string_view hash) {
    std::string message;
    message.reserve(user.size() + password.size() + 1);
    message.append(user).push_back('\0');
    message.append(password);
    unsigned char tag[EVP_MAX_MD_SIZE];
    unsigned int tag_len = 0;
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), tag, &tag_len);
    std::string key(reinterpret_cast<char*>(tag), tag_len);
    {
        std::lock_guard lock(mutex_);
        auto it = verified_.find(key);
        // A changed hash (config reload) makes the remembered verification worthless.
        if (it != verified_.end() && it->second == hash) return true;
    }
    if (!config::verify_password(password, hash)) return false;
    std::lock_guard lock(mutex_);
    if (verified_.size() >= max_entries_) verified_.clear();
    verified_[key] = std::string(hash);
    return true;
}

}  // namespace cb::daemon
