// What a client may cost the broker before it has proven anything, for every listener:
// - ConnectionBudget: the connections of one listener, in all and per source address, within
//   the budget of all TCP listeners together (limits maxOpenConnections);
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
#include <unordered_set>

namespace boost::asio::ip {
class address;
}

namespace cb::daemon {

struct BudgetLimits {
    unsigned total = 20000;       ///< connections of the listener at once
    unsigned per_address = 1000;  ///< of which from one source address; 0: no bound
};

/// The budget limits of a listener, read from its owner's limits (any struct with
/// `max_connections` and `max_connections_per_address`) while the owner lives.
template <typename Owner>
std::function<BudgetLimits()> listener_budget(std::weak_ptr<Owner> owner) {
    return [owner = std::move(owner)] {
        BudgetLimits b;
        if (auto o = owner.lock()) {
            auto l = o->limits();
            b.total = l.max_connections;
            b.per_address = l.max_connections_per_address;
        }
        return b;
    };
}

/// The key of a connection's source in the budgets and the logon guard: an IPv4 address (an
/// IPv4-mapped IPv6 one too), or the /64 network of an IPv6 address (one host can take a whole
/// /64, so one address per connection would make every per-source bound moot).
std::string source_of(const boost::asio::ip::address& address);

/// The connections of one listener (or of all of them: a budget may have a parent, whose place
/// is taken too). A connection holds its Ticket for as long as it is open.
class ConnectionBudget : public std::enable_shared_from_this<ConnectionBudget> {
  public:
    enum class Refusal { none, total, per_address, parent };

    /// A place taken in the budget (and its parent's); given back when destroyed or reset.
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
        bool per_address_ = false;       // counted in the per-address map
        std::unique_ptr<Ticket> outer_;  // the place in the parent budget
    };

    static std::shared_ptr<ConnectionBudget> create(std::function<BudgetLimits()> limits,
                                                    std::shared_ptr<ConnectionBudget> parent = {});

    /// A place for a connection from `address` (a source_of() key; empty for a Unix socket,
    /// which has no per-address bound) in `ticket`, or why not.
    Refusal take(const std::string& address, Ticket& ticket);
    std::size_t open() const;
    std::uint64_t refused_total() const;
    std::uint64_t refused_per_address() const;

  private:
    ConnectionBudget(std::function<BudgetLimits()> limits,
                     std::shared_ptr<ConnectionBudget> parent);
    void give_back(const std::string& address, bool per_address);

    std::function<BudgetLimits()> limits_;
    std::shared_ptr<ConnectionBudget> parent_;
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
    unsigned max_checking = 32;        ///< password checks in flight per address or user
    std::size_t max_tracked = 100000;  ///< addresses and users remembered, each
};

/// A text from a client made safe for one log line: control characters as '?', cut at `max`.
std::string printable(std::string_view text, std::size_t max = 128);

/// Failed logons at one door (the ici port, the desktops, the admin API), counted per source
/// address and per user. The first `free_failures` of each are answered at once; later ones are
/// held back, longer each time; after `lock_after` the address (or user) is refused without a
/// password check for `lock_for` (LogonDoor holds those refusals back `max_delay` too). Checks
/// in flight count too: at most `max_checking` per address or user, and, once it has failed in
/// this burst, no more than are left before the lock. A user who has logged on from an address
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
