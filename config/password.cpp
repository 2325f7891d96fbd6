#include "config/password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>
#include <variant>
#include <vector>

namespace cb::config {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr std::size_t kHashBytes = 32;

struct Parsed {
    unsigned iterations = 0;
    std::string salt;
    std::string hash;
};

}  // namespace

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.empty() || in.size() % 4 != 0) return std::nullopt;
    std::string out(in.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    if (in.back() == '=') ++pad;
    if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::string base64_encode(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

namespace {

std::string derive(std::string_view password, std::string_view salt, unsigned iterations) {
    std::string key(kHashBytes, '\0');
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()),
                          static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                          static_cast<int>(key.size()),
                          reinterpret_cast<unsigned char*>(key.data())) != 1)
        throw std::runtime_error("PBKDF2 failed");
    return key;
}

std::variant<Parsed, std::string> parse(std::string_view encoded) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        auto pos = encoded.find('$', start);
        parts.push_back(encoded.substr(start, pos == std::string_view::npos ? pos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    if (parts.size() != 4 || parts[0] != kScheme)
        return std::string("expected pbkdf2-sha256$ITERATIONS$SALT$HASH");
    Parsed p;
    auto [ptr, ec] =
        std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), p.iterations);
    if (ec != std::errc{} || ptr != parts[1].data() + parts[1].size())
        return std::string("iterations is not a number");
    if (p.iterations < kMinPbkdf2Iterations)
        return "at least " + std::to_string(kMinPbkdf2Iterations) + " iterations are required";
    auto salt = base64_decode(parts[2]);
    if (!salt || salt->empty()) return std::string("salt is not base64");
    auto hash = base64_decode(parts[3]);
    if (!hash) return std::string("hash is not base64");
    if (hash->size() != kHashBytes) return std::string("hash must be 32 bytes");
    p.salt = std::move(*salt);
    p.hash = std::move(*hash);
    return p;
}

}  // namespace

std::optional<std::string> check_password_hash(std::string_view encoded) {
    auto r = parse(encoded);
    if (auto* err = std::get_if<std::string>(&r)) return *err;
    return std::nullopt;
}

std::string hash_password(std::string_view password, unsigned iterations) {
    std::string salt(16, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) !=
        1)
        throw std::runtime_error("no random bytes for a salt");
    return std::string(kScheme) + "$" + std::to_string(iterations) + "$" + base64_encode(salt) +
           "$" + base64_encode(derive(password, salt, iterations));
}

bool verify_password(std::string_view password, std::string_view encoded) {
    auto r = parse(encoded);
    auto* p = std::get_if<Parsed>(&r);
    if (!p) return false;
    auto key = derive(password, p->salt, p->iterations);
    return CRYPTO_memcmp(key.data(), p->hash.data(), kHashBytes) == 0;
}

}  // namespace cb::config
