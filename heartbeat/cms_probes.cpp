#include "heartbeat/cms_probes.hpp"

#include <algorithm>

namespace cb::heartbeat {

void CmsProbes::watch(const std::string& system, Duration interval, Duration timeout, Time now) {
    auto& s = systems_[system];
    s.interval = interval;
    s.timeout = timeout;
    s.in_flight = false;
    s.next_probe = now;
    s.silent_since = now;
}

void CmsProbes::forget(const std::string& system) {
    systems_.erase(system);
}

std::vector<ProbeAction> CmsProbes::advance(Time now) {
    std::vector<ProbeAction> out;
    for (auto& [id, s] : systems_) {
        if (!s.in_flight && now >= s.next_probe) {
            s.in_flight = true;
            out.push_back({ProbeActionKind::probe, id, s.next_probe, s.silent_since});
        }
        if (s.available != false && now >= s.silent_since + s.timeout) {
            s.available = false;
            out.push_back(
                {ProbeActionKind::unavailable, id, s.silent_since + s.timeout, s.silent_since});
        }
    }
    return out;
}

bool CmsProbes::answered(const std::string& system, bool ok, Time now) {
    auto it = systems_.find(system);
    if (it == systems_.end()) return false;
    auto& s = it->second;
    s.in_flight = false;
    s.next_probe = now + s.interval;
    if (!ok) return false;
    s.silent_since = now;
    bool became = s.available != true;
    s.available = true;
    return became;
}

std::optional<Time> CmsProbes::next_deadline() const {
    std::optional<Time> next;
    auto consider = [&next](Time t) { next = next ? std::min(*next, t) : t; };
    for (auto& [id, s] : systems_) {
        if (!s.in_flight) consider(s.next_probe);
        if (s.available != false) consider(s.silent_since + s.timeout);
    }
    return next;
}

std::optional<bool> CmsProbes::available(const std::string& system) const {
    auto it = systems_.find(system);
    return it == systems_.end() ? std::nullopt : it->second.available;
}

}  // namespace cb::heartbeat
