// Failed logons at every door (the ici port, the desktops, the admin API): LogonGuard counts
// them per source address and per user, answers them later and later, then refuses them for a
// while, and logs once per burst rather than once per attempt.
//
// Thread safety: LogonGuard is thread-safe (a mutex, held for a map lookup).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace cb::daemon {

/// How failed logons are answered (config `<logonGuard>`).
struct LogonPolicy {
    unsigned free_failures = 3;  ///< failures of an address or user answered at once
    std::chrono::milliseconds first_delay{250};  ///< then each answer is held this long, doubling
    std::chrono::milliseconds max_delay{4000};
    unsigned lock_after = 10;  ///< failures that lock the address or user
    std::chrono::milliseconds lock_for{60000};
    /// An address or user quiet this long starts afresh (its burst has ended).
    std::chrono::milliseconds forget_after{600000};
    unsigned max_checking =
        32;  ///< password checks in flight per user, and per address once it failed
    std::size_t max_tracked = 100000;  ///< addresses and users remembered, each
};

/// A text from a client made safe for one log line: control characters as '?', cut at `max`.
std::string printable(std::string_view text, std::size_t max = 128);

/// Failed logons at one door (the ici port, the desktops, the admin API), counted per source
/// address and per user. The first `free_failures` of each are answered at once; later ones are
/// held back, longer each time; after `lock_after` the address (or user) is refused without a
/// password check for `lock_for` (LogonDoor holds those refusals back `max_delay` too). Checks
/// in flight count too: at most `max_checking` per user, and per address once it has failed in
/// this burst (one address may be a site behind NAT), and then no more than are left before the
/// lock. A user who has logged on from an address
/// is not refused there because the name is locked (guesses from elsewhere); a credential the
/// broker has verified before is let in before this guard is asked at all.
///
/// Every admit() that returns zero is followed by exactly one of failed(), succeeded() or
/// abandoned() for the same address and user.
class LogonGuard {
  public:
    using Clock = std::chrono::steady_clock;
    struct Counters {
        std::uint64_t failures = 0;  ///< wrong or unknown credentials
        std::uint64_t held = 0;      ///< of which answered late
        std::uint64_t refused = 0;   ///< logons refused unchecked: address or user locked
        std::uint64_t locks = 0;     ///< addresses and users locked
    };

    LogonGuard(std::string door, std::function<LogonPolicy()> policy);

    /// Zero if a logon from `address` as `user` may be checked now (it is then in flight), else
    /// how long until it may: it is refused unchecked (and counted).
    Clock::duration admit(const std::string& address, const std::string& user,
                          Clock::time_point now);
    /// The check failed: how long to hold back its answer.
    Clock::duration failed(const std::string& address, const std::string& user,
                           Clock::time_point now);
    /// The check succeeded: the address starts afresh and is trusted for this user from now on
    /// (the user's count stays: someone elsewhere may be guessing).
    void succeeded(const std::string& address, const std::string& user);
    /// The check did not happen (the verifier was busy).
    void abandoned(const std::string& address, const std::string& user);
    /// True if neither the address nor the user has a failure on record that is not yet
    /// forgotten (forgetAfter).
    bool clean(const std::string& address, const std::string& user, Clock::time_point now) const;
    Counters counters() const;
    LogonPolicy policy() const { return policy_(); }

  private:
    struct Entry {
        unsigned failures = 0;
        Clock::time_point first{}, last{}, locked_until{};
        unsigned pending = 0;  // checks in flight
    };
    using Map = std::unordered_map<std::string, Entry>;
    static constexpr std::size_t kMaxUserKey = 256;
    static std::string user_key(const std::string& user);
    Entry* slot(Map& map, const std::string& key, const LogonPolicy& p, Clock::time_point now);
    void release(Map& map, const std::string& key);
    Clock::duration record(Map& map, const char* what, const std::string& key, const LogonPolicy& p,
                           Clock::time_point now);
    void sweep(const LogonPolicy& p, Clock::time_point now);

    std::string door_;
    std::function<LogonPolicy()> policy_;
    mutable std::mutex mutex_;
    Map by_address_, by_user_;
    std::unordered_set<std::string> trusted_;  // "address\nuser" that logged on
    Counters counters_;
    Clock::time_point last_sweep_{};
    // burst-start lines: at most kBurstLines per kBurstWindow, the rest summed up in the next
    Clock::time_point lines_since_{};
    unsigned lines_ = 0;
    std::uint64_t unlogged_ = 0;
};

}  // namespace cb::daemon
