#include "daemon/logon_guard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cb::daemon {

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

bool LogonGuard::clean(const std::string& address, const std::string& user,
                       Clock::time_point now) const {
    auto p = policy_();
    std::lock_guard lock(mutex_);
    auto failing = [&](const Map& map, const std::string& key) {
        auto it = map.find(key);
        return it != map.end() && it->second.failures > 0 && now - it->second.last < p.forget_after;
    };
    return !failing(by_address_, address) && !failing(by_user_, user_key(user));
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
    // `always_bounded`: maxChecking applies even before a failure (a user's checks); an
    // address's only once it has failed in this burst, since one address may be a whole site
    // behind NAT whose desktops log on together (the verifier's queue bounds them then).
    auto consider = [&](Entry* e, bool always_bounded) {
        if (!e) return void(wait = std::max<Clock::duration>(wait, std::chrono::seconds(1)));
        if (e->locked_until > now) wait = std::max(wait, e->locked_until - now);
        // Checks in flight count against what is left before the lock once the address or
        // user has failed in this burst (else a thousand guesses sent at once would all be
        // checked before the first failure came back); and never more than maxChecking at once.
        bool quiet = e->failures > 0 && now - e->last >= p.forget_after;
        unsigned failures = quiet ? 0 : e->failures;
        if ((failures > 0 && e->pending > 0 && failures + e->pending >= p.lock_after) ||
            ((always_bounded || failures > 0) && e->pending >= p.max_checking))
            wait = std::max<Clock::duration>(wait, std::chrono::seconds(1));
    };
    consider(a, false);
    // A user who has logged on from this address before is not locked out by guesses at the
    // name from elsewhere (but a table too full to track the name refuses it all the same).
    if (!trusted || !u) consider(u, true);
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

}  // namespace cb::daemon
