#include "transport/admission.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cerrno>
#include <iterator>

namespace cb::transport {

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

// --- HandshakeRate ------------------------------------------------------------------------

bool HandshakeRate::take(const std::string& source, Clock::time_point now) {
    auto rate = static_cast<double>(rate_());
    if (rate <= 0) return true;
    std::lock_guard lock(mutex_);
    auto refill = [&](Bucket& b) {
        std::chrono::duration<double> idle = now - b.last;
        b.tokens = std::min(rate, b.tokens + idle.count() * rate);
        b.last = now;
    };
    if (buckets_.size() >= max_tracked_ && !buckets_.count(source)) {
        // Sources whose bucket has filled up again are as good as new: forgotten, in one pass
        // a second at most; until there is room, new sources are refused.
        if (now - last_sweep_ < std::chrono::seconds(1)) return false;
        last_sweep_ = now;
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            refill(it->second);
            it = it->second.tokens >= rate ? buckets_.erase(it) : std::next(it);
        }
        if (buckets_.size() >= max_tracked_) return false;  // that many busy sources: refuse
    }
    auto [it, fresh] = buckets_.try_emplace(source, Bucket{rate, now});
    if (!fresh) refill(it->second);
    if (it->second.tokens < 1) return false;
    it->second.tokens -= 1;
    return true;
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

// --- InFlightLimit -------------------------------------------------------------------------

void InFlightLimit::run(std::function<void()> start) {
    {
        std::lock_guard lock(mutex_);
        if (in_flight_ >= std::max(1u, limit_())) {
            waiting_.push_back(std::move(start));
            return;
        }
        ++in_flight_;
    }
    start();
}

void InFlightLimit::done() {
    std::function<void()> next;
    {
        std::lock_guard lock(mutex_);
        // A lowered limit lets the jobs in flight end before the next one starts.
        if (waiting_.empty() || in_flight_ > std::max(1u, limit_())) {
            --in_flight_;
            return;
        }
        next = std::move(waiting_.front());
        waiting_.pop_front();
    }
    next();
}

std::size_t InFlightLimit::in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
}

std::size_t InFlightLimit::waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_.size();
}

}  // namespace cb::transport
