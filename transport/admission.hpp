// What a connection may cost before it has proven anything, for every listener:
// - ConnectionBudget: the connections of one listener, in all and per source address, within
//   the budget of all TCP listeners together (limits maxOpenConnections);
// - HandshakeRate: new TLS handshakes per source address and second;
// - AcceptPacer: an accept loop's back-off when the process runs out of descriptors (EMFILE,
//   ENFILE) or buffers, logged once per episode.
//
// Thread safety: ConnectionBudget and HandshakeRate are thread-safe (a mutex each, held for a
// map lookup); an
// AcceptPacer belongs to one accept loop and is used on its strand only.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace boost::asio::ip {
class address;
}

namespace cb::transport {

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

/// New TLS handshakes per source (a source_of() key): a token bucket of `rate` a second, with
/// bursts of `rate`, so that one host cannot keep the I/O threads busy with handshakes (each
/// costs a key exchange and a signature before anything is proven). 0: no bound. At most
/// `max_tracked` sources are remembered; a full bucket is forgotten.
class HandshakeRate {
  public:
    using Clock = std::chrono::steady_clock;
    explicit HandshakeRate(std::function<unsigned()> rate, std::size_t max_tracked = 100000)
        : rate_(std::move(rate)), max_tracked_(max_tracked) {}
    /// A handshake for `source` now, or false when its bucket is empty.
    bool take(const std::string& source, Clock::time_point now);

  private:
    struct Bucket {
        double tokens;
        Clock::time_point last;
    };
    std::function<unsigned()> rate_;
    std::size_t max_tracked_;
    std::mutex mutex_;
    std::unordered_map<std::string, Bucket> buckets_;
    Clock::time_point last_sweep_{};
};

/// At most `limit()` jobs in flight; the rest wait, in order, for one to end. A job is started
/// with run() and must call done() once when it ends: done() starts the next waiting job on its
/// own thread. For work that must not crowd a queue it shares (the hellos of a storm of desktops
/// on the core strand, ahead of the CMSs' events). Thread-safe.
class InFlightLimit {
  public:
    explicit InFlightLimit(std::function<unsigned()> limit) : limit_(std::move(limit)) {}
    /// Calls `start` now, on this thread, if fewer than limit() jobs are in flight; else queues
    /// it.
    void run(std::function<void()> start);
    /// A job ended: the next waiting one starts (on this thread), else the count goes down.
    void done();
    std::size_t in_flight() const;
    std::size_t waiting() const;

  private:
    std::function<unsigned()> limit_;
    mutable std::mutex mutex_;
    std::size_t in_flight_ = 0;
    std::deque<std::function<void()>> waiting_;
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

}  // namespace cb::transport
