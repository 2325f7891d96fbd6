#include "daemon/admission.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cerrno>

namespace cb::daemon {

// --- ConnectionBudget --------------------------------------------------------------------

std::string source_of(const boost::asio::ip::address& address) {
    if (address.is_v4()) return address.to_string();
    auto v6 = address.to_v6();
    if (v6.is_v4_mapped())
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
    auto bytes = v6.to_bytes();
    for (std::size_t i = 8; i < bytes.size(); ++i)
        bytes[i] = 0;
    return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

ConnectionBudget::Ticket::Ticket(Ticket&& other) noexcept
    : budget_(std::move(other.budget_)),
      address_(std::move(other.address_)),
      per_address_(other.per_address_),
      outer_(std::move(other.outer_)) {
    other.budget_.reset();
}

ConnectionBudget::Ticket& ConnectionBudget::Ticket::operator=(Ticket&& other) noexcept {
    if (this != &other) {
        reset();
        budget_ = std::move(other.budget_);
        address_ = std::move(other.address_);
        per_address_ = other.per_address_;
        outer_ = std::move(other.outer_);
        other.budget_.reset();
    }
    return *this;
}

ConnectionBudget::Ticket::~Ticket() {
    reset();
}

void ConnectionBudget::Ticket::reset() {
    if (auto budget = std::move(budget_)) budget->give_back(address_, per_address_);
    budget_.reset();
    outer_.reset();  // the parent's place, after this budget's
}

std::shared_ptr<ConnectionBudget> ConnectionBudget::create(
    std::function<BudgetLimits()> limits, std::shared_ptr<ConnectionBudget> parent) {
    return std::shared_ptr<ConnectionBudget>(
        new ConnectionBudget(std::move(limits), std::move(parent)));
}

ConnectionBudget::ConnectionBudget(std::function<BudgetLimits()> limits,
                                   std::shared_ptr<ConnectionBudget> parent)
    : limits_(std::move(limits)), parent_(std::move(parent)) {}

ConnectionBudget::Refusal ConnectionBudget::take(const std::string& address, Ticket& ticket) {
    ticket.reset();  // before any lock: it may hold a place here
    Ticket outer;    // destroyed after the lock below is let go
    if (parent_ && parent_->take({}, outer) != Refusal::none) return Refusal::parent;
    auto limits = limits_();
    std::lock_guard lock(mutex_);
    if (open_ >= limits.total) {
        ++refused_total_;
        return Refusal::total;
    }
    bool per_address = !address.empty() && limits.per_address > 0;
    if (per_address) {
        auto& n = by_address_[address];
        if (n >= limits.per_address) {
            ++refused_per_address_;
            return Refusal::per_address;
        }
        ++n;
    }
    ++open_;
    ticket.budget_ = shared_from_this();
    ticket.address_ = address;
    ticket.per_address_ = per_address;
    if (parent_) ticket.outer_ = std::make_unique<Ticket>(std::move(outer));
    return Refusal::none;
}

void ConnectionBudget::give_back(const std::string& address, bool per_address) {
    std::lock_guard lock(mutex_);
    --open_;
    if (!per_address) return;
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

std::string LogonGuard::user_key(const std::string& user) {
    return user.size() <= kMaxUserKey ? user : user.substr(0, kMaxUserKey);
}

std::string printable(std::string_view text, std::size_t max) {
    std::string out;
    for (char c : text.substr(0, max)) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    if (text.size() > max) out += "...";
    return out;
}

LogonGuard::Entry* LogonGuard::slot(Map& map, const std::string& key, const LogonPolicy& p,
                                    Clock::time_point now) {
    auto it = map.find(key);
    if (it != map.end()) return &it->second;
    if (map.size() >= p.max_tracked) {
        // Full: the entry quiet longest goes, if it is neither locked nor being checked. A flood
        // of fresh keys ends up here; it is linear, but only once the table is full, and each
        // fresh key has cost a password check.
        auto victim = map.end();
        for (auto i = map.begin(); i != map.end(); ++i)
            if (i->second.pending == 0 && i->second.locked_until <= now &&
                (victim == map.end() || i->second.last < victim->second.last))
                victim = i;
        if (victim == map.end()) return nullptr;  // all locked or in flight: refuse
        map.erase(victim);
    }
    return &map[key];
}

LogonGuard::Clock::duration LogonGuard::admit(const std::string& address, const std::string& user,
                                              Clock::time_point now) {
    auto p = policy_();
    auto ukey = user_key(user);
    std::lock_guard lock(mutex_);
    bool trusted = trusted_.count(address + '\n' + ukey) > 0;
    auto* a = slot(by_address_, address, p, now);
    auto* u = slot(by_user_, ukey, p, now);
    Clock::duration wait{0};
    auto consider = [&](Entry* e) {
        if (!e) return void(wait = std::max<Clock::duration>(wait, std::chrono::seconds(1)));
        if (e->locked_until > now) wait = std::max(wait, e->locked_until - now);
        // Checks in flight count against what is left before the lock once the address or
        // user has failed in this burst (else a thousand guesses sent at once would all be
        // checked before the first failure came back); and never more than maxChecking at once.
        bool quiet = e->failures > 0 && now - e->last >= p.forget_after;
        unsigned failures = quiet ? 0 : e->failures;
        if ((failures > 0 && e->pending > 0 && failures + e->pending >= p.lock_after) ||
            e->pending >= p.max_checking)
            wait = std::max<Clock::duration>(wait, std::chrono::seconds(1));
    };
    consider(a);
    // A user who has logged on from this address before is not locked out by guesses at the
    // name from elsewhere (but a table too full to track the name refuses it all the same).
    if (!trusted || !u) consider(u);
    if (wait > Clock::duration::zero()) {
        ++counters_.refused;
        return wait;
    }
    ++a->pending;
    ++u->pending;
    return wait;
}

void LogonGuard::release(Map& map, const std::string& key) {
    auto it = map.find(key);
    if (it != map.end() && it->second.pending > 0) --it->second.pending;
}

LogonGuard::Clock::duration LogonGuard::record(Map& map, const char* what, const std::string& key,
                                               const LogonPolicy& p, Clock::time_point now) {
    auto& e = map[key];  // admit() made it, and its pending check kept it
    if (e.failures > 0 && now - e.last >= p.forget_after) {
        auto pending = e.pending;
        e = Entry{};
        e.pending = pending;
    }
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
                door_, what[0] == 'a' ? "from" : "for", what, printable(key));
        } else {
            ++unlogged_;
        }
    }
    ++e.failures;
    e.last = now;
    if (e.failures >= p.lock_after && e.locked_until <= now) {
        e.locked_until = now + p.lock_for;
        ++counters_.locks;
        spdlog::warn("{}: {} {} refused for {} s after {} failed logons", door_, what,
                     printable(key), seconds_up(p.lock_for), e.failures);
    }
    if (e.failures <= p.free_failures) return Clock::duration::zero();
    auto steps = std::min<unsigned>(e.failures - p.free_failures - 1, 20);
    Clock::duration delay = p.max_delay;
    if (p.first_delay.count() > 0 && steps < 20 && (p.max_delay / p.first_delay) >= (1LL << steps))
        delay = std::chrono::duration_cast<Clock::duration>(p.first_delay) * (1LL << steps);
    return std::min<Clock::duration>(delay, p.max_delay);
}

LogonGuard::Clock::duration LogonGuard::failed(const std::string& address, const std::string& user,
                                               Clock::time_point now) {
    auto p = policy_();
    auto ukey = user_key(user);
    std::lock_guard lock(mutex_);
    release(by_address_, address);
    release(by_user_, ukey);
    sweep(p, now);
    ++counters_.failures;
    auto a = record(by_address_, "address", address, p, now);
    auto u = record(by_user_, "user", ukey, p, now);
    auto delay = std::max(a, u);
    if (delay > Clock::duration::zero()) ++counters_.held;
    return delay;
}

void LogonGuard::succeeded(const std::string& address, const std::string& user) {
    auto p = policy_();
    auto ukey = user_key(user);
    std::lock_guard lock(mutex_);
    release(by_address_, address);
    release(by_user_, ukey);
    // The address starts afresh; the user's count stays (someone elsewhere may be guessing),
    // but this address is trusted for this user from now on.
    if (auto it = by_address_.find(address); it != by_address_.end()) {
        if (it->second.pending == 0)
            by_address_.erase(it);
        else
            it->second = Entry{0, {}, {}, {}, it->second.pending};
    }
    if (trusted_.size() >= p.max_tracked) trusted_.clear();
    trusted_.insert(address + '\n' + ukey);
}

void LogonGuard::abandoned(const std::string& address, const std::string& user) {
    std::lock_guard lock(mutex_);
    release(by_address_, address);
    release(by_user_, user_key(user));
}

void LogonGuard::sweep(const LogonPolicy& p, Clock::time_point now) {
    if (now - last_sweep_ < kSweepEvery) return;
    last_sweep_ = now;
    for (auto* map : {&by_address_, &by_user_}) {
        for (auto it = map->begin(); it != map->end();) {
            auto& e = it->second;
            if (e.pending == 0 && now - e.last >= p.forget_after && e.locked_until <= now) {
                if (e.failures > 1)
                    spdlog::info("{}: failed logons {} stopped: {} in {} s", door_,
                                 (map == &by_address_ ? "from address " : "for user ") +
                                     printable(it->first),
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
