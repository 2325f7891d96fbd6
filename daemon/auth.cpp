#include "daemon/auth.hpp"

#include "config/password.hpp"
#include "daemon/thread_priority.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
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

CredentialCache::CredentialCache(std::size_t max_entries) : max_entries_(max_entries) {
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1)
        throw std::runtime_error("no random bytes for the credential cache key");
    EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (hmac) mac_.reset(EVP_MAC_CTX_new(hmac));
    EVP_MAC_free(hmac);  // the context holds its own reference
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    bool keyed = mac_ && EVP_MAC_init(mac_.get(), key, sizeof key, params) == 1;
    OPENSSL_cleanse(key, sizeof key);
    if (!keyed) throw std::runtime_error("no HMAC-SHA256 for the credential cache");
}

CredentialCache::~CredentialCache() = default;

void CredentialCache::MacFree::operator()(EVP_MAC_CTX* c) const {
    EVP_MAC_CTX_free(c);
}

std::string CredentialCache::tag_of(std::string_view user, std::string_view password) const {
    std::lock_guard lock(mutex_);
    return tag_locked(user, password);
}

std::string CredentialCache::tag_locked(std::string_view user, std::string_view password) const {
    auto* c = mac_.get();
    auto bytes = [](std::string_view v) {
        return reinterpret_cast<const unsigned char*>(v.data());
    };
    const unsigned char separator = 0;
    unsigned char tag[EVP_MAX_MD_SIZE];
    std::size_t tag_len = 0;
    // A null key starts again with the key the context was given.
    if (EVP_MAC_init(c, nullptr, 0, nullptr) != 1 ||
        EVP_MAC_update(c, bytes(user), user.size()) != 1 || EVP_MAC_update(c, &separator, 1) != 1 ||
        EVP_MAC_update(c, bytes(password), password.size()) != 1 ||
        EVP_MAC_final(c, tag, &tag_len, sizeof tag) != 1)
        return {};  // out of memory: the callers fail closed
    return std::string(reinterpret_cast<char*>(tag), tag_len);
}

bool CredentialCache::known(std::string_view user, std::string_view password,
                            std::string_view hash) const {
    std::lock_guard lock(mutex_);
    auto tag = tag_locked(user, password);
    if (tag.empty()) return false;
    auto it = verified_.find(tag);
    // A changed hash (config reload) makes the remembered verification worthless.
    return it != verified_.end() && it->second == hash;
}

bool CredentialCache::verify(std::string_view user, std::string_view password,
                             std::string_view hash) {
    if (known(user, password, hash)) return true;
    if (!config::verify_password(password, hash)) return false;
    std::lock_guard lock(mutex_);
    auto tag = tag_locked(user, password);
    if (tag.empty()) return true;  // right, but not remembered
    if (verified_.size() >= max_entries_) verified_.clear();
    verified_[tag] = std::string(hash);
    return true;
}

PasswordVerifier::PasswordVerifier(CredentialCache& cache, unsigned threads, std::size_t max_queue,
                                   bool urgent_lane)
    : cache_(cache), max_queue_(max_queue), urgent_lane_(urgent_lane) {
    for (unsigned i = 0; i < std::max(1u, threads); ++i)
        threads_.emplace_back([this] { run(false); });
    if (urgent_lane_) threads_.emplace_back([this] { run(true); });
}

PasswordVerifier::~PasswordVerifier() {
    stop();
}

void PasswordVerifier::verify(std::string user, std::string password, std::string hash, Done done,
                              bool urgent) {
    if (cache_.known(user, password, hash)) {
        {
            std::lock_guard lock(mutex_);
            ++counters_.cached;
        }
        return done(Verdict::ok);
    }
    {
        std::lock_guard lock(mutex_);
        if (!stopping_ && urgent && urgent_lane_ && urgent_jobs_.size() < kUrgentQueue) {
            urgent_jobs_.push_back(
                {std::move(user), std::move(password), std::move(hash), std::move(done)});
            wake_urgent_.notify_one();
            return;
        }
        if (!stopping_ && jobs_.size() < max_queue_) {
            jobs_.push_back(
                {std::move(user), std::move(password), std::move(hash), std::move(done)});
            wake_.notify_one();
            return;
        }
        ++counters_.busy;
    }
    done(Verdict::busy);
}

void PasswordVerifier::run(bool urgent) {
    // PBKDF2 yields to the I/O threads: a verifier thread runs 10 nice steps below the process
    // (Linux sets the nice value per thread), so that a flood of logons to check takes the CPU
    // the vendors' requests leave, not theirs. Where that is not allowed, it runs as it is. The
    // urgent lane keeps the process's priority: what its door sends there is not a flood.
    if (!urgent) lower_this_thread(10);
    auto& jobs = urgent ? urgent_jobs_ : jobs_;
    auto& wake = urgent ? wake_urgent_ : wake_;
    std::unique_lock lock(mutex_);
    for (;;) {
        wake.wait(lock, [this, &jobs] { return stopping_ || !jobs.empty(); });
        if (stopping_) return;
        auto job = std::move(jobs.front());
        jobs.pop_front();
        ++counters_.hashed;
        if (urgent) ++counters_.urgent;
        lock.unlock();
        bool ok = cache_.verify(job.user, job.password, job.hash);
        job.done(ok ? Verdict::ok : Verdict::wrong);
        lock.lock();
    }
}

void PasswordVerifier::stop() {
    std::deque<Job> left;
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        left.swap(jobs_);
        for (auto& job : urgent_jobs_)
            left.push_back(std::move(job));
        urgent_jobs_.clear();
        threads.swap(threads_);
        counters_.busy += left.size();
    }
    wake_.notify_all();
    wake_urgent_.notify_all();
    for (auto& t : threads)
        if (t.joinable()) t.join();
    for (auto& job : left)
        job.done(Verdict::busy);
}

PasswordVerifier::Counters PasswordVerifier::counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
}

std::size_t PasswordVerifier::queued() const {
    std::lock_guard lock(mutex_);
    return jobs_.size() + urgent_jobs_.size();
}

std::string stand_in_hash(unsigned iterations) {
    unsigned char bytes[16 + 32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes");
    auto part = [&](std::size_t from, std::size_t n) {
        return config::base64_encode(std::string_view(reinterpret_cast<char*>(bytes) + from, n));
    };
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + part(0, 16) + "$" + part(16, 32);
}

LogonDoor::LogonDoor(boost::asio::io_context& io, CredentialCache& cache, std::string door,
                     std::function<LogonPolicy()> policy, unsigned stand_in_iterations,
                     unsigned threads, std::size_t max_queue, bool urgent_lane)
    : io_(io),
      cache_(cache),
      guard_(std::move(door), std::move(policy)),
      stand_in_(stand_in_hash(stand_in_iterations)),
      verifier_(cache, threads, max_queue, urgent_lane) {}

void LogonDoor::check(const std::string& address, std::string user, std::string password,
                      const std::string* hash, Done done) {
    namespace net = boost::asio;
    using Clock = std::chrono::steady_clock;
    if (hash && cache_.known(user, password, *hash)) return done({Verdict::ok, {}});
    bool known_user = hash != nullptr;
    std::string checked = known_user ? *hash : stand_in_;
    auto tag = cache_.tag_of(user, password);
    // Without a tag the credential cannot be told from others checked meanwhile: refused as
    // busy (out of memory), never checked in another's flight.
    if (tag.empty()) return done({Verdict::busy, std::chrono::seconds(1)});
    auto flight = tag + '\n' + checked;
    {
        // The same credential is being checked: its verdict is this request's too.
        std::lock_guard lock(flights_mutex_);
        if (auto it = flights_.find(flight); it != flights_.end()) {
            it->second.push_back(std::move(done));
            return;
        }
    }
    if (auto wait = guard_.admit(address, user, Clock::now()); wait > Clock::duration::zero()) {
        // Refused unchecked, and as late as the latest failure: a guesser that gets its refusal
        // at once only asks again at once, and each refusal still costs a request's work here.
        Result locked{Verdict::locked, std::chrono::ceil<std::chrono::seconds>(wait)};
        auto timer = std::make_shared<net::steady_timer>(io_, guard_.policy().max_delay);
        timer->async_wait([timer, locked, done = std::move(done)](
                              const boost::system::error_code&) { done(locked); });
        return;
    }
    {
        std::lock_guard lock(flights_mutex_);
        flights_.try_emplace(flight);
    }
    // A known user nobody has failed as (here or anywhere) lately goes to the urgent lane, if
    // the door has one; any failure sends the user's next checks to the ordinary queue.
    bool urgent = known_user && guard_.clean(address, user, Clock::now());
    // The verdict comes on a verifier thread; `done` (and what it holds: a session, a request)
    // is moved on to an I/O thread, so that it is never let go of on the verifier thread.
    verifier_.verify(
        user, std::move(password), std::move(checked),
        [this, address, user, known_user, flight,
         done = std::move(done)](PasswordVerifier::Verdict v) mutable {
            if (v == PasswordVerifier::Verdict::busy) {
                guard_.abandoned(address, user);
                return answer(flight, std::move(done), {Verdict::busy, std::chrono::seconds(1)},
                              {});
            }
            if (v == PasswordVerifier::Verdict::ok && known_user) {
                guard_.succeeded(address, user);
                return answer(flight, std::move(done), {Verdict::ok, {}}, {});
            }
            // Held back after a failure; the connections with it too (their listener's
            // budget bounds how many a source can keep waiting).
            answer(flight, std::move(done), {Verdict::wrong, {}},
                   guard_.failed(address, user, Clock::now()));
        },
        urgent);
}

void LogonDoor::answer(const std::string& flight, Done first, Result result,
                       std::chrono::steady_clock::duration hold) {
    namespace net = boost::asio;
    std::vector<Done> all;
    {
        std::lock_guard lock(flights_mutex_);
        if (auto it = flights_.find(flight); it != flights_.end()) {
            all = std::move(it->second);
            flights_.erase(it);
        }
    }
    all.push_back(std::move(first));
    auto deliver = [all = std::move(all), result]() mutable {
        for (auto& done : all)
            done(result);
    };
    if (hold <= std::chrono::steady_clock::duration::zero())
        return net::post(io_, std::move(deliver));
    auto timer = std::make_shared<net::steady_timer>(io_, hold);
    timer->async_wait([timer, deliver = std::move(deliver)](
                          const boost::system::error_code&) mutable { deliver(); });
}

std::string ResumeKeys::hash_of(std::string_view key) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(key.data(), key.size(), digest, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 15];
    }
    return out;
}

ResumeKeys::Issued ResumeKeys::make() {
    unsigned char bytes[24];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness for a key");
    static constexpr char kHex[] = "0123456789abcdef";
    Issued out;
    for (auto b : bytes) {
        out.key += kHex[b >> 4];
        out.key += kHex[b & 15];
    }
    out.hash = hash_of(out.key);
    return out;
}

void ResumeKeys::set(const std::string& agent, const std::string& token, std::string hash) {
    if (hash.empty()) return;
    std::lock_guard lock(mutex_);
    by_agent_[agent] = {token, std::move(hash)};
}

void ResumeKeys::forget(const std::string& agent) {
    std::lock_guard lock(mutex_);
    by_agent_.erase(agent);
}

bool ResumeKeys::check(const std::string& agent, const std::string& token,
                       std::string_view key) const {
    auto presented = hash_of(key);
    std::lock_guard lock(mutex_);
    auto it = by_agent_.find(agent);
    if (it == by_agent_.end() || it->second.first != token) return false;
    auto& held = it->second.second;
    return held.size() == presented.size() &&
           CRYPTO_memcmp(held.data(), presented.data(), held.size()) == 0;
}

}  // namespace cb::daemon
