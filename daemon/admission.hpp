// What a client may cost the broker before it has proven anything, for every listener:
// - ConnectionBudget: the connections of one listener, in all and per source address;
// - LogonGuard: failed logons per source address and per user, answered later and later, then
//   refused for a while, and logged once per burst rather than once per attempt;
// - AcceptPacer: an accept loop's back-off when the process runs out of descriptors (EMFILE,
//   ENFILE) or buffers, logged once per episode.
//
// Thread safety: ConnectionBudget and LogonGuard are thread-safe (a mutex each, held for a map
// lookup); an AcceptPacer belongs to one accept loop and is used on its strand only.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cb::daemon {

struct BudgetLimits {
    unsigned total = 20000;       ///< connections of the listener at once
    unsigned per_address = 1000;  ///< of which from one source address; 0: no bound
};

/// The connections of one listener. A connection holds its Ticket for as long as it is open.
class ConnectionBudget : public std::enable_shared_from_this<ConnectionBudget> {
  public:
    enum class Refusal { none, total, per_address };

    /// A place taken in the budget; given back when destroyed (or moved from and reset).
    class Ticket {
      public:
        Ticket() = default;
        Ticket(Ticket&& other) noexcept;
        Ticket& operator=(Ticket&& other) noexcept;
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        ~Ticket();
        void reset();

      private:
        friend class ConnectionBudget;
        std::shared_ptr<ConnectionBudget> budget_;
        std::string address_;
    };

    static std::shared_ptr<ConnectionBudget> create(std::function<BudgetLimits()> limits);

    /// A place for a connection from `address` (an IP address; empty for a Unix socket, which
    /// has no per-address bound) in `ticket`, or why not.
    Refusal take(const std::string& address, Ticket& ticket);
    std::size_t open() const;
    std::uint64_t refused_total() const;
    std::uint64_t refused_per_address() const;

  private:
    explicit ConnectionBudget(std::function<BudgetLimits()> limits);
    void give_back(const std::string& address);

    std::function<BudgetLimits()> limits_;
    mutable std::mutex mutex_;
    std::size_t open_ = 0;
    std::unordered_map<std::string, unsigned> by_address_;
    std::uint64_t refused_total_ = 0;
    std::uint64_t refused_per_address_ = 0;
};

/// How failed logons are answered (config `<logonGuard>`).
struct LogonPolicy {
    unsigned free_failures = 3;  ///< failures of an address or user answered at once
    std::chrono::milliseconds first_delay{250};  ///< then each answer is held this long, doubling
    std::chrono::milliseconds max_delay{4000};
    unsigned lock_after = 10;  ///< failures that lock the address or user
    std::chrono::milliseconds lock_for{60000};
    /// An address or user quiet this long starts afresh (its burst has ended).
    std::chrono::milliseconds forget_after{600000};
    std::size_t max_tracked = 100000;  ///< addresses and users remembered, each
};

/// Failed logons at one door (the ici port, the desktops, the admin API), counted per source
/// address and per user. The first `free_failures` of each are answered at once; later ones are
/// held back, longer each time; after `lock_after` the address (or user) is refused without a
/// password check for `lock_for`. A credential the broker has verified before is let in before
/// this guard is asked, so that guessing at a user's name does not lock out the user who knows
/// the password and has logged on since the broker started.
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

    /// How long until a logon from `address` as `user` may be checked: zero now, else it is
    /// refused unchecked (and counted).
    Clock::duration locked(const std::string& address, const std::string& user,
                           Clock::time_point now);
    /// A failed logon: how long to hold back its answer.
    Clock::duration failed(const std::string& address, const std::string& user,
                           Clock::time_point now);
    /// A logon that succeeded: its address starts afresh (the user's count stays: someone
    /// elsewhere may be guessing).
    void succeeded(const std::string& address);
    Counters counters() const;

  private:
    struct Entry {
        unsigned failures = 0;
        Clock::time_point first{}, last{}, locked_until{};
    };
    using Map = std::unordered_map<std::string, Entry>;
    Clock::duration record(Map& map, const char* what, const std::string& key, const LogonPolicy& p,
                           Clock::time_point now);
    void sweep(const LogonPolicy& p, Clock::time_point now);

    std::string door_;
    std::function<LogonPolicy()> policy_;
    mutable std::mutex mutex_;
    Map by_address_, by_user_;
    Counters counters_;
    Clock::time_point last_sweep_{};
    // burst-start lines: at most kBurstLines per kBurstWindow, the rest summed up in the next
    Clock::time_point lines_since_{};
    unsigned lines_ = 0;
    std::uint64_t unlogged_ = 0;
};

/// The back-off of one accept loop. After a failed accept it says how long to wait before the
/// next: nothing for a passing error, and for a lack of descriptors or buffers (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM) 10 ms, doubling to 1 s, so that the loop neither spins nor stops; a failing
/// episode is logged once when it begins and once when an accept succeeds again.
class AcceptPacer {
  public:
    explicit AcceptPacer(std::string listener) : listener_(std::move(listener)) {}
    std::chrono::milliseconds failed(const boost::system::error_code& ec);
    void accepted();
    std::uint64_t episodes() const { return episodes_; }

  private:
    std::string listener_;
    std::chrono::milliseconds delay_{0};
    std::uint64_t failures_ = 0;  // in this episode
    std::uint64_t episodes_ = 0;
    std::chrono::steady_clock::time_point began_{};
};

}  // namespace cb::daemon
