#include "heartbeat/monitor.hpp"

namespace cb::heartbeat {

using config::HeartbeatMode;

std::string_view to_string(Liveness l) {
    switch (l) {
        case Liveness::active:
            return "active";
        case Liveness::suspect:
            return "suspect";
        case Liveness::lost:
            return "lost";
    }
    return "?";
}

std::string_view to_string(ContactKind k) {
    switch (k) {
        case ContactKind::hello:
            return "hello";
        case ContactKind::heartbeat:
            return "heartbeat";
        case ContactKind::ping:
            return "ping";
        case ContactKind::pong:
            return "pong";
        case ContactKind::request:
            return "request";
        case ContactKind::restart:
            return "restart";
    }
    return "?";
}

std::string_view to_string(ActionKind k) {
    switch (k) {
        case ActionKind::suspect:
            return "suspect";
        case ActionKind::cleared:
            return "cleared";
        case ActionKind::lost:
            return "lost";
        case ActionKind::expired:
            return "expired";
        case ActionKind::rejected:
            return "rejected";
    }
    return "?";
}

std::optional<Time> Monitor::deadline(const Record& r) {
    if (r.profile.mode == HeartbeatMode::watchdog)
        return r.last.at +
               (r.state == Liveness::active ? r.profile.lag : r.profile.lag + r.profile.grace);
    // onContact: only a detached session expires by time.
    if (!r.attached && r.session) return r.last.at + r.profile.lag + r.profile.grace;
    return std::nullopt;
}

void Monitor::schedule(const std::string& agent, Record& r) {
    auto d = deadline(r);
    if (!d || (r.queued && *r.queued <= *d)) return;
    heap_.push(Entry{*d, r.gen, agent});
    r.queued = *d;
}

Action Monitor::make(ActionKind kind, const std::string& agent, const Record& r, Time at) const {
    Action a;
    a.kind = kind;
    a.agent = agent;
    a.system = r.system;
    a.profile = r.profile.id;
    a.last_contact = r.last;
    a.at = at;
    return a;
}

std::vector<Action> Monitor::watch(const std::string& agent, const std::string& system,
                                   const Profile& profile, Contact c) {
    auto [it, created] = agents_.try_emplace(agent);
    auto& r = it->second;
    if (created) {
        r.gen = next_gen_++;
        r.profile = profile;
        r.last = c;
    }
    r.system = system;
    r.next_profile = profile;
    r.session = true;
    r.attached = c.kind != ContactKind::restart;
    if (created && c.kind == ContactKind::restart) {
        schedule(agent, r);
        return {};
    }
    return contact(agent, std::move(c));
}

std::vector<Action> Monitor::contact(const std::string& agent, Contact c) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) return {};
    auto& r = it->second;
    if (c.at >= r.last.at) r.last = std::move(c);  // contacts come from several threads
    if (r.next_profile) {
        r.profile = std::move(*r.next_profile);
        r.next_profile.reset();
    }
    std::vector<Action> out;
    if (r.state == Liveness::suspect) {
        r.state = Liveness::active;
        ++counters_.cleared;
        auto a = make(ActionKind::cleared, agent, r, r.last.at);
        a.restore_mode = std::move(r.replaced_mode);
        r.replaced_mode.clear();
        out.push_back(std::move(a));
    }
    schedule(agent, r);
    return out;
}

void Monitor::set_attached(const std::string& agent, bool attached) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) return;
    it->second.attached = attached;
    schedule(agent, it->second);
}

void Monitor::set_system(const std::string& agent, const std::string& system) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) return;
    it->second.system = system;
    if (!system.empty()) return;
    // Logged off: nothing of the work mode is left to restore.
    it->second.replaced_mode.clear();
    if (!it->second.session) agents_.erase(it);
}

void Monitor::set_profile(const std::string& agent, const Profile& profile) {
    auto it = agents_.find(agent);
    if (it != agents_.end()) it->second.next_profile = profile;
}

void Monitor::note_replaced_mode(const std::string& agent, std::string mode) {
    auto it = agents_.find(agent);
    if (it != agents_.end() && it->second.state == Liveness::suspect)
        it->second.replaced_mode = std::move(mode);
}

void Monitor::forget(const std::string& agent) {
    agents_.erase(agent);
}

std::vector<Action> Monitor::advance(Time now) {
    std::vector<Action> out;
    while (!heap_.empty() && heap_.top().at <= now) {
        Entry e = heap_.top();
        heap_.pop();
        auto it = agents_.find(e.agent);
        if (it == agents_.end() || it->second.gen != e.gen || it->second.queued != e.at) continue;
        auto& r = it->second;
        r.queued.reset();
        auto d = deadline(r);
        if (!d) continue;
        if (*d > now) {
            schedule(e.agent, r);  // heard from since it was queued
            continue;
        }
        if (r.profile.mode == HeartbeatMode::on_contact) {
            ++counters_.expired;
            out.push_back(make(ActionKind::expired, e.agent, r, *d));
            r.session = false;
            if (r.system.empty()) agents_.erase(it);
            continue;
        }
        if (r.state == Liveness::active) {
            r.state = Liveness::suspect;
            ++counters_.suspects;
            auto a = make(ActionKind::suspect, e.agent, r, *d);
            a.set_not_ready =
                r.profile.suspect_action == config::SuspectAction::not_ready && !r.system.empty();
            out.push_back(std::move(a));
            schedule(e.agent, r);
            continue;
        }
        ++counters_.lost;
        auto a = make(ActionKind::lost, e.agent, r, *d);
        out.push_back(std::move(a));
        agents_.erase(it);
    }
    return out;
}

std::optional<Action> Monitor::offered(const std::string& agent, const std::string& item,
                                       channels::Channel channel, Time now) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) return std::nullopt;
    auto& r = it->second;
    if (r.profile.mode != HeartbeatMode::on_contact || now - r.last.at <= r.profile.lag)
        return std::nullopt;
    ++counters_.rejected;
    auto a = make(ActionKind::rejected, agent, r, now);
    a.item = item;
    a.channel = channel;
    agents_.erase(it);
    return a;
}

std::optional<Time> Monitor::next_deadline() {
    while (!heap_.empty()) {
        auto& e = heap_.top();
        auto it = agents_.find(e.agent);
        if (it != agents_.end() && it->second.gen == e.gen && it->second.queued == e.at)
            return e.at;
        heap_.pop();
    }
    return std::nullopt;
}

std::optional<AgentView> Monitor::view(const std::string& agent) const {
    auto it = agents_.find(agent);
    if (it == agents_.end()) return std::nullopt;
    auto& r = it->second;
    return AgentView{agent, r.system, r.profile.id, r.profile.mode, r.state, r.last, r.attached};
}

std::vector<AgentView> Monitor::views() const {
    std::vector<AgentView> out;
    out.reserve(agents_.size());
    for (auto& [agent, r] : agents_)
        out.push_back(
            AgentView{agent, r.system, r.profile.id, r.profile.mode, r.state, r.last, r.attached});
    return out;
}

std::size_t Monitor::suspects() const {
    std::size_t n = 0;
    for (auto& [agent, r] : agents_)
        n += r.state == Liveness::suspect;
    return n;
}

}  // namespace cb::heartbeat
