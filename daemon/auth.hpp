// HTTP Basic authentication against the PBKDF2 hashes of the config. PBKDF2 is slow on purpose,
// so a verified credential is remembered, keyed by HMAC-SHA256 of the presented secret under a
// per-process random key (the cache never holds a password or anything it can be derived from
// cheaply). Thread-safe.
#pragma once

#include "daemon/logon_guard.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace boost::asio {
class io_context;
}
struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX

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
    ~CredentialCache();
    CredentialCache(const CredentialCache&) = delete;
    CredentialCache& operator=(const CredentialCache&) = delete;

    /// True if `password` matches `hash` (PBKDF2 at most once per distinct credential).
    bool verify(std::string_view user, std::string_view password, std::string_view hash);
    /// True if this credential was verified against `hash` before: a keyed hash, no PBKDF2.
    bool known(std::string_view user, std::string_view password, std::string_view hash) const;
    /// The credential's keyed hash (HMAC with a random key of this process): names it without
    /// keeping the password. Empty if the HMAC failed (out of memory): known() is then false
    /// and verify() remembers nothing.
    std::string tag_of(std::string_view user, std::string_view password) const;

  private:
    /// tag_of() with mutex_ held.
    std::string tag_locked(std::string_view user, std::string_view password) const;

    struct MacFree {
        void operator()(evp_mac_ctx_st* c) const;
    };
    std::size_t max_entries_;
    mutable std::mutex mutex_;
    /// Keyed once with the random key and started again for each tag, which costs a fifth of
    /// building an HMAC context per tag; guarded by mutex_.
    std::unique_ptr<evp_mac_ctx_st, MacFree> mac_;
    std::unordered_map<std::string, std::string>
        verified_;  // tag -> the hash it was verified against
};

/// Checks passwords off the I/O threads. PBKDF2 costs about 20 ms at the default iterations:
/// run on an I/O thread, every logon would stall every other client of that thread. A credential
/// the cache knows is answered at once on the caller's thread; any other waits in a bounded
/// queue for one of a few threads of its own, and a full queue is refused at once (`busy`), so a
/// flood of logons waits here rather than in the vendors' latency. The threads run at a lower
/// priority (nice +10) than the I/O threads. A verifier may have an urgent lane besides: one
/// thread at the process's own priority with a queue of kUrgentQueue, for the checks its door
/// trusts not to be a flood (a CMS's own account with no failure on record), so that such a
/// check is not starved by a busy machine. Thread-safe.
class PasswordVerifier {
  public:
    enum class Verdict { ok, wrong, busy };
    using Done = std::function<void(Verdict)>;
    struct Counters {
        std::uint64_t cached = 0;  ///< answered from the cache
        std::uint64_t hashed = 0;  ///< PBKDF2 runs
        std::uint64_t busy = 0;    ///< refused: the queue was full (or the verifier stopping)
        std::uint64_t urgent = 0;  ///< of the PBKDF2 runs, those on the urgent lane
    };
    /// Urgent checks queued at most; more go to the ordinary queue.
    static constexpr std::size_t kUrgentQueue = 4;

    PasswordVerifier(CredentialCache& cache, unsigned threads, std::size_t max_queue,
                     bool urgent_lane = false);
    ~PasswordVerifier();
    PasswordVerifier(const PasswordVerifier&) = delete;
    PasswordVerifier& operator=(const PasswordVerifier&) = delete;

    /// `done` runs exactly once: at once on this thread when the cache knows the credential or
    /// the queue is full, else on a verifier thread. It must not block. `urgent`: on the urgent
    /// lane if the verifier has one and its queue has room.
    void verify(std::string user, std::string password, std::string hash, Done done,
                bool urgent = false);
    /// Finishes the job in hand; queued ones are answered `busy`. Joins the threads.
    void stop();
    Counters counters() const;
    std::size_t queued() const;

  private:
    struct Job {
        std::string user, password, hash;
        Done done;
    };
    void run(bool urgent);

    CredentialCache& cache_;
    std::size_t max_queue_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, wake_urgent_;
    std::deque<Job> jobs_, urgent_jobs_;
    bool urgent_lane_;
    bool stopping_ = false;
    Counters counters_;
    std::vector<std::thread> threads_;
};

/// A hash in the config's format with `iterations`, a random salt and a random key: checking a
/// password against it costs what a real one of that cost does, and no password matches it
/// (short of guessing 256 random bits). Made without running PBKDF2, so it costs the start
/// nothing.
std::string stand_in_hash(unsigned iterations);

/// The whole check of a logon at one door (the ici port, the desktops, the admin API):
/// - a credential the cache knows is let in at once, whatever the guard says;
/// - a source address or user the guard has locked is refused unchecked (`locked`), after the
///   guard's `max_delay`, so that a guesser cannot turn instant refusals into a request flood;
/// - anything else goes to the password verifier, an unknown user against a stand-in hash with
///   the iterations of the door's first configured user (taken at start; a reload that changes
///   them leaves the stand-in as it was), so that a user's existence cannot be told by the time
///   of the answer;
/// - a failure is answered after the guard's delay (`wrong`), a full queue at once (`busy`);
/// - a credential already being checked is not checked again: the request waits for that check
///   and gets its verdict (a vendor opening its 50 connections at once with one account costs
///   one PBKDF2, and is not refused for having more checks in flight than `maxChecking`).
/// Thread-safe.
class LogonDoor {
  public:
    enum class Verdict { ok, wrong, locked, busy };
    struct Result {
        Verdict verdict = Verdict::wrong;
        std::chrono::seconds retry_after{0};  ///< for locked and busy
    };
    /// Runs once, on an I/O thread (at once on the caller's when the answer needs no check).
    using Done = std::function<void(Result)>;

    /// `stand_in_iterations`: the PBKDF2 cost of the door's users (an unknown user costs the
    /// same). The door has a verifier of its own (`threads`, `max_queue`), so that a flood of
    /// logons at one door never fills the queue of another. `urgent_lane`: a known user with no
    /// failure on record (at this address or anywhere) is checked on the verifier's urgent lane;
    /// for a door of few machine accounts (the CMSs'), whose first request after a restart
    /// should not wait behind a busy machine.
    LogonDoor(boost::asio::io_context& io, CredentialCache& cache, std::string door,
              std::function<LogonPolicy()> policy, unsigned stand_in_iterations, unsigned threads,
              std::size_t max_queue, bool urgent_lane = false);

    /// `hash` is the user's password hash, or null for a user the door does not know.
    void check(const std::string& address, std::string user, std::string password,
               const std::string* hash, Done done);
    LogonGuard::Counters counters() const { return guard_.counters(); }
    const PasswordVerifier& verifier() const { return verifier_; }
    /// Stops the verifier: checks waiting are answered busy.
    void stop() { verifier_.stop(); }

  private:
    /// Answers the check of `flight` and every request that joined it.
    void answer(const std::string& flight, Done first, Result result,
                std::chrono::steady_clock::duration hold);

    boost::asio::io_context& io_;
    CredentialCache& cache_;
    LogonGuard guard_;
    std::mutex flights_mutex_;
    // credential (tag and hash checked against) -> the requests waiting for its check in flight
    std::unordered_map<std::string, std::vector<Done>> flights_;
    std::string stand_in_;       // the hash an unknown user is checked against
    PasswordVerifier verifier_;  // last: stopped (its callbacks answered) before the rest goes
};

/// The resume keys of desktop sessions. Every welcome gives the desktop a new random key for its
/// session; a hello that resumes that session with it is let in without PBKDF2, so that
/// thousands of desktops coming back after a restart cost a hash each, not 20 ms each. Only
/// SHA-256 of a key is kept (here and, through the hub, in the journal). Thread-safe: hello
/// checks it on the session's strand, the core issues keys.
class ResumeKeys {
  public:
    struct Issued {
        std::string key;   ///< for the welcome
        std::string hash;  ///< hex SHA-256 of the key: for the journal
    };
    /// A new random key and its hash (not yet anyone's: set() makes it so).
    static Issued make();
    /// The key whose hash is `hash` is now the one of `agent`'s session `token` (a welcome, or
    /// the journal at start-up); the agent's previous key stops working.
    void set(const std::string& agent, const std::string& token, std::string hash);
    /// The agent's session ended: its key stops working.
    void forget(const std::string& agent);
    /// True if `key` is the current key of `agent`'s session `token`.
    bool check(const std::string& agent, const std::string& token, std::string_view key) const;

    static std::string hash_of(std::string_view key);

  private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::pair<std::string, std::string>> by_agent_;  // token, hash
};

}  // namespace cb::daemon
