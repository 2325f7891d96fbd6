#include "daemon/admission.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <cerrno>

namespace cb::daemon {

// --- ConnectionBudget --------------------------------------------------------------------

ConnectionBudget::Ticket::Ticket(Ticket&& other) noexcept
    : budget_(std::move(other.budget_)), address_(std::move(other.address_)) {
    other.budget_.reset();
}

ConnectionBudget::Ticket& ConnectionBudget::Ticket::operator=(Ticket&& other) noexcept {
    if (this != &other) {
        reset();
        budget_ = std::move(other.budget_);
        address_ = std::move(other.address_);
        other.budget_.reset();
    }
    return *this;
}

ConnectionBudget::Ticket::~Ticket() {
    reset();
}

void ConnectionBudget::Ticket::reset() {
    if (auto budget = std::move(budget_)) budget->give_back(address_);
    budget_.reset();
}

std::shared_ptr<ConnectionBudget> ConnectionBudget::create(std::function<BudgetLimits()> limits) {
    return std::shared_ptr<ConnectionBudget>(new ConnectionBudget(std::move(limits)));
}

ConnectionBudget::ConnectionBudget(std::function<BudgetLimits()> limits)
    : limits_(std::move(limits)) {}

ConnectionBudget::Refusal ConnectionBudget::take(const std::string& address, Ticket& ticket) {
    auto limits = limits_();
    std::lock_guard lock(mutex_);
    if (open_ >= limits.total) {
        ++refused_total_;
        return Refusal::total;
    }
    if (!address.empty() && limits.per_address > 0) {
        auto& n = by_address_[address];
        if (n >= limits.per_address) {
            ++refused_per_address_;
            return Refusal::per_address;
        }
        ++n;
    }
    ++open_;
    ticket.reset();
    ticket.budget_ = shared_from_this();
    ticket.address_ = address;
    return Refusal::none;
}

void ConnectionBudget::give_back(const std::string& address) {
    std::lock_guard lock(mutex_);
    --open_;
    if (address.empty()) return;
    auto it = by_address_.find(address);
    if (it != by_address_.end() && --it->second == 0) by_address_.erase(it);
}

std::size_t ConnectionBudget::open() const {
    std::lock_guard lock(mutex_);
    return open_;
}

std::uint64_t ConnectionBudget::refused_total() const {
    std::lock_guard lock(mutex_);
    return refused_total_;
}

std::uint64_t ConnectionBudget::refused_per_address() const {
    std::lock_guard lock(mutex_);
    return refused_per_address_;
}

// --- LogonGuard ----------------------------------------------------------------------------

namespace {
constexpr unsigned kBurstLines = 20;
constexpr auto kBurstWindow = std::chrono::seconds(60);
constexpr auto kSweepEvery = std::chrono::seconds(10);

long long seconds_up(std::chrono::steady_clock::duration d) {
    auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
    return std::max<long long>(1, s);
}
}  // namespace

LogonGuard::LogonGuard(std::string door, std::function<LogonPolicy()> policy)
    : door_(std::move(door)), policy_(std::move(policy)) {}

LogonGuard::Clock::duration LogonGuard::locked(const std::string& address, const std::string& user,
                                               Clock::time_point now) {
    std::lock_guard lock(mutex_);
    Clock::duration wait{0};
    for (auto* map : {&by_address_, &by_user_}) {
        auto it = map->find(map == &by_address_ ? address : user);
        if (it != map->end() && it->second.locked_until > now)
            wait = std::max(wait, it->second.locked_until - now);
    }
    if (wait > Clock::duration::zero()) ++counters_.refused;
    return wait;
}

LogonGuard::Clock::duration LogonGuard::record(Map& map, const char* what, const std::string& key,
                                               const LogonPolicy& p, Clock::time_point now) {
    if (map.size() >= p.max_tracked && !map.count(key)) {
        // Full: whoever is tracked and quiet longest goes. A flood of fresh keys ends up here;
        // it is linear, but only once the table is full, and each fresh key is one more hash.
        auto oldest = std::min_element(
            map.begin(), map.end(), [](auto& a, auto& b) { return a.second.last < b.second.last; });
        if (oldest != map.end()) map.erase(oldest);
    }
    auto& e = map[key];
    if (e.failures > 0 && now - e.last >= p.forget_after) e = Entry{};
    if (e.failures == 0) {
        e.first = now;
        // The first failure of a burst is logged; the next ones only when they lock.
        if (now - lines_since_ >= kBurstWindow) {
            if (unlogged_ > 0)
                spdlog::warn("{}: {} more bursts of failed logons began in the last minute", door_,
                             unlogged_);
            lines_since_ = now;
            lines_ = 0;
            unlogged_ = 0;
        }
        if (lines_ < kBurstLines) {
            ++lines_;
            spdlog::warn(
                "{}: failed logon {} {} {}; more failures are logged when they lock it and "
                "when they stop",
                door_, what[0] == 'a' ? "from" : "for", what, key);
        } else {
            ++unlogged_;
        }
    }
    ++e.failures;
    e.last = now;
    if (e.failures >= p.lock_after && e.locked_until <= now) {
        e.locked_until = now + p.lock_for;
        ++counters_.locks;
        spdlog::warn("{}: {} {} refused for {} s after {} failed logons", door_, what, key,
                     seconds_up(p.lock_for), e.failures);
    }
    if (e.failures <= p.free_failures) return Clock::duration::zero();
    auto steps = std::min<unsigned>(e.failures - p.free_failures - 1, 20);
    auto delay = std::chrono::duration_cast<Clock::duration>(p.first_delay) * (1LL << steps);
    return std::min<Clock::duration>(delay, p.max_delay);
}

LogonGuard::Clock::duration LogonGuard::failed(const std::string& address, const std::string& user,
                                               Clock::time_point now) {
    auto p = policy_();
    std::lock_guard lock(mutex_);
    sweep(p, now);
    ++counters_.failures;
    auto a = record(by_address_, "address", address, p, now);
    auto u = record(by_user_, "user", user, p, now);
    auto delay = std::max(a, u);
    if (delay > Clock::duration::zero()) ++counters_.held;
    return delay;
}

void LogonGuard::succeeded(const std::string& address) {
    std::lock_guard lock(mutex_);
    by_address_.erase(address);
}

void LogonGuard::sweep(const LogonPolicy& p, Clock::time_point now) {
    if (now - last_sweep_ < kSweepEvery) return;
    last_sweep_ = now;
    for (auto* map : {&by_address_, &by_user_}) {
        for (auto it = map->begin(); it != map->end();) {
            auto& e = it->second;
            if (now - e.last >= p.forget_after && e.locked_until <= now) {
                if (e.failures > 1)
                    spdlog::info("{}: failed logons {} stopped: {} in {} s", door_,
                                 (map == &by_address_ ? "from address " : "for user ") + it->first,
                                 e.failures, seconds_up(e.last - e.first));
                it = map->erase(it);
            } else {
                ++it;
            }
        }
    }
}

LogonGuard::Counters LogonGuard::counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
}

// --- AcceptPacer ---------------------------------------------------------------------------

std::chrono::milliseconds AcceptPacer::failed(const boost::system::error_code& ec) {
    namespace error = boost::asio::error;
    // A client that gave up before its connection was accepted: nothing to wait for.
    if (ec == error::connection_aborted || ec == error::interrupted || ec == error::try_again ||
        ec == error::would_block || ec.value() == EPROTO)
        return std::chrono::milliseconds(0);
    ++failures_;
    if (delay_.count() == 0) {
        delay_ = std::chrono::milliseconds(10);
        began_ = std::chrono::steady_clock::now();
        ++episodes_;
        spdlog::error(
            "{}: accept failed: {}; accepting again in 10 ms and backing off to 1 s until it "
            "works (connections wait in the backlog meanwhile)",
            listener_, ec.message());
    } else {
        delay_ = std::min(delay_ * 2, std::chrono::milliseconds(1000));
    }
    return delay_;
}

void AcceptPacer::accepted() {
    if (delay_.count() == 0) return;
    auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - began_)
                      .count();
    spdlog::warn("{}: accepting again after {} ms and {} failed accepts", listener_, lasted,
                 failures_);
    delay_ = std::chrono::milliseconds(0);
    failures_ = 0;
}

}  // namespace cb::daemon
