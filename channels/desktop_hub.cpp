#include "channels/desktop_hub.hpp"

#include "channels/item_json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <limits>

namespace cb::channels {

namespace {

/// Replay trims are saved at once on ack; trims forced by the buffer's bound are saved in
/// groups of this many, which keeps the journal from writing a delete per event.
constexpr std::uint64_t kTrimSaveEvery = 256;
/// A session's replay records are taken early once this many wait.
constexpr std::size_t kReplaySaveEvery = 512;

std::string item_key(const std::string& system, const std::string& id) {
    return system + '\x1f' + id;
}

std::string_view event_name(Channel c) {
    switch (c) {
        case Channel::phone:
            return "phoneCallChanged";
        case Channel::chat:
            return "chatChanged";
        case Channel::email:
            return "messageChanged";
    }
    return "?";
}

bool in_scope(const std::string& scope, const std::string& system) {
    if (scope.empty()) return false;
    if (scope == "all") return true;
    return scope.size() > 7 && scope.compare(0, 7, "system:") == 0 && scope.substr(7) == system;
}

}  // namespace

std::string_view to_string(ByeReason r) {
    switch (r) {
        case ByeReason::auth_failed:
            return "authFailed";
        case ByeReason::auth_required:
            return "authRequired";
        case ByeReason::replaced:
            return "replaced";
        case ByeReason::heartbeat_lost:
            return "heartbeatLost";
        case ByeReason::shutdown:
            return "shutdown";
        case ByeReason::too_slow:
            return "tooSlow";
        case ByeReason::protocol_error:
            return "protocolError";
        case ByeReason::busy:
            return "busy";
        case ByeReason::too_many_attempts:
            return "tooManyAttempts";
    }
    return "?";
}

DesktopHub::DesktopHub(HubLimits limits, TokenSource tokens)
    : limits_(limits), tokens_(std::move(tokens)) {}

void DesktopHub::restore(std::vector<LoadedSession> sessions, std::uint64_t last_event_id,
                         const std::vector<Item>& live) {
    last_event_id_ = last_event_id;
    owners_.reserve(owners_.size() + live.size());
    for (auto& i : live)
        if (i.agent_id) owners_[item_key(i.system, i.id)] = *i.agent_id;
    std::unordered_map<std::uint64_t, EventPtr> events;
    for (auto& l : sessions) {
        Session s;
        s.token = std::move(l.token);
        s.agent = l.agent;
        s.system = std::move(l.system);
        s.scope = std::move(l.scope);
        s.seq = l.seq;
        s.resume_hash = std::move(l.resume_hash);
        s.restored = true;
        for (auto& r : l.replay) {
            auto& e = events[r.event_id];
            if (!e) {
                auto d = std::make_shared<DesktopEvent>();
                d->id = r.event_id;
                d->name = std::move(r.name);
                d->data = std::move(r.data);
                e = d;
            }
            s.ring.emplace_back(r.seq, e);
        }
        while (s.ring.size() > limits_.replay)
            s.ring.pop_front();
        set_monitor(l.agent, !s.scope.empty());
        sessions_[l.agent] = std::move(s);
    }
}

DesktopHub::Session* DesktopHub::find(const std::string& agent) {
    auto it = sessions_.find(agent);
    return it == sessions_.end() ? nullptr : &it->second;
}

std::string DesktopHub::system_of(const std::string& agent) const {
    auto it = sessions_.find(agent);
    return it == sessions_.end() ? std::string() : it->second.system;
}

void DesktopHub::stored(const Session& s) {
    journal_.push_back(SessionStored{s.token, s.agent, s.system, s.scope, s.seq, s.resume_hash});
}

Attached DesktopHub::attach(const std::string& agent, const std::optional<ResumeRequest>& resume,
                            std::shared_ptr<DesktopLink> link, const std::string& system,
                            std::string resume_hash) {
    Attached a;
    Session* s = find(agent);
    if (s) {
        set_over(*s, std::nullopt);
        a.replaced = std::move(s->link);
        if (a.replaced) a.replaced->hub_waiting.store(false);
    }
    bool same_session = s && resume && resume->token == s->token;
    if (!same_session) {
        // A new session: a fresh token and seq, the old session's buffer gone.
        std::string system_now = s && !s->system.empty() ? s->system : system;
        if (s) {
            save_replay(*s);  // keeps the journal's order: its rows, then their deletion
            journal_.push_back(SessionEnded{s->token});
        }
        Session fresh;
        fresh.token = tokens_();
        fresh.agent = agent;
        fresh.system = system_now;
        fresh.scope = s ? s->scope : std::string();
        fresh.resume_hash = std::move(resume_hash);
        sessions_[agent] = std::move(fresh);
        s = &sessions_[agent];
        stored(*s);
        a.snapshot = true;
        a.resync = resume.has_value();  // it asked to resume a session the broker does not hold
        if (a.resync) ++counters_.resyncs;
    } else {
        auto last = resume->last_seq;
        std::uint64_t oldest = s->ring.empty() ? s->seq + 1 : s->ring.front().first;
        bool held = last <= s->seq && last + 1 >= oldest && !s->lost_events;
        if (held) {
            for (auto& [seq, e] : s->ring)
                if (seq > last) a.replay.emplace_back(seq, e);
            a.resumed = true;
            ++counters_.resumes;
            // After a restart, events routed but not yet sent may have been lost with the
            // process: a snapshot after the replay brings the desktop up to date.
            a.snapshot = a.resync = s->restored;
        } else {
            a.snapshot = a.resync = true;
            ++counters_.resyncs;
        }
        if (a.resync) s->pending.clear();  // the snapshot supersedes them
        s->lost_events = false;
        s->restored = false;
        if (!resume_hash.empty()) {  // the key rotates with every welcome
            s->resume_hash = std::move(resume_hash);
            stored(*s);
        }
    }
    a.token = s->token;
    a.seq = s->seq;
    a.system = s->system;
    s->link = std::move(link);
    return a;
}

bool DesktopHub::detach(const std::string& agent, const DesktopLink* link) {
    Session* s = find(agent);
    if (!s || s->link.get() != link) return false;  // replaced already
    s->link.reset();
    set_over(*s, std::nullopt);
    return true;
}

EventPtr DesktopHub::make_event(std::string name, std::string data, std::string key,
                                SteadyTime received) {
    auto e = std::make_shared<DesktopEvent>();
    e->id = ++last_event_id_;
    e->name = std::move(name);
    e->data = std::move(data);
    e->item_key = std::move(key);
    e->received = received;
    journal_.push_back(DesktopEventStored{e->id, e->name, e->data});
    ++counters_.events_routed;
    return e;
}

void DesktopHub::route(const std::vector<Change>& changes, SteadyTime received, SteadyTime now) {
    std::vector<Session*> to;
    auto add = [&](const std::string& agent) {
        if (auto* s = find(agent); s && std::find(to.begin(), to.end(), s) == to.end())
            to.push_back(s);
    };
    auto add_monitors = [&](const std::string& system) {
        for (auto& agent : monitors_)
            if (auto* s = find(agent);
                s && in_scope(s->scope, system) && std::find(to.begin(), to.end(), s) == to.end())
                to.push_back(s);
    };
    for (auto& change : changes) {
        to.clear();
        // The owner map is kept for every change, with or without sessions to tell: an item
        // that ends, or changes hands, while nobody is connected must not leave a stale owner.
        // The JSON is only rendered for a change someone gets.
        std::string name, key, system;
        std::function<std::string()> render;
        if (auto* c = std::get_if<ItemStored>(&change)) {
            const Item& item = c->item;
            system = item.system;
            key = item_key(item.system, item.id);
            auto owner = owners_.find(key);
            if (owner != owners_.end()) add(owner->second);
            if (item.agent_id) add(*item.agent_id);
            if (is_terminal(item.state))
                owners_.erase(key);
            else if (item.agent_id)
                owners_[key] = *item.agent_id;
            else if (owner != owners_.end())
                owners_.erase(owner);
            name = event_name(item.channel);
            // A chat's postings reach desktops one by one (chatNewPosting) and in snapshots;
            // its chatChanged events do not repeat them all.
            render = [&item] { return boost::json::serialize(to_json(item, false)); };
        } else if (auto* released = std::get_if<ItemReleased>(&change)) {
            owners_.erase(item_key(released->system, released->id));
            continue;
        } else if (auto* p = std::get_if<PostingStored>(&change)) {
            system = p->system;
            auto owner = owners_.find(item_key(p->system, p->posting.chat_session_id));
            if (owner != owners_.end()) add(owner->second);
            name = "chatNewPosting";
            render = [p] {
                auto obj = to_json(p->posting);
                obj["system"] = p->system;
                return boost::json::serialize(obj);
            };
        } else if (auto* a = std::get_if<AgentStored>(&change)) {
            system = a->agent.system;
            add(a->agent.user_id);
            name = "userChanged";
            render = [a] { return boost::json::serialize(to_json(a->agent)); };
        } else {
            continue;  // subscriptions, orphans (announced by the broker) and the hub's records
        }
        add_monitors(system);
        if (to.empty()) continue;
        auto e = make_event(std::move(name), render(), std::move(key), received);
        for (auto* s : to)
            deliver(*s, e, now);
    }
}

void DesktopHub::route_system_state(const std::string& system, bool available, SteadyTime now) {
    boost::json::object o{
        {"system", system}, {"available", available}, {"state", available ? "up" : "unavailable"}};
    std::vector<Session*> to;
    for (auto& [agent, s] : sessions_)  // rare: a system came or went
        if (s.system == system || in_scope(s.scope, system)) to.push_back(&s);
    if (to.empty()) return;
    auto e = make_event("systemStateChanged", boost::json::serialize(o), {}, {});
    for (auto* s : to)
        deliver(*s, e, now);
}

void DesktopHub::route_supervisors(const std::string& name, const std::string& system,
                                   std::string data, SteadyTime now) {
    EventPtr e;
    for (auto& agent : monitors_) {
        auto* s = find(agent);
        if (!s || !in_scope(s->scope, system)) continue;
        if (!e) e = make_event(name, std::move(data), {}, {});
        deliver(*s, e, now);
    }
}

void DesktopHub::deliver(Session& s, const EventPtr& e, SteadyTime now) {
    std::size_t unwritten = s.link ? s.link->unwritten() : 0;
    bool over = s.pending.size() + unwritten >= limits_.queue;
    if (over && !e->item_key.empty()) {
        // Over budget: the newest snapshot of an item takes the place of an unsent older one.
        for (auto it = s.pending.rbegin(); it != s.pending.rend(); ++it)
            if ((*it)->item_key == e->item_key && (*it)->name == e->name) {
                *it = e;
                ++counters_.frames_coalesced;
                return;
            }
    }
    s.pending.push_back(e);
    if (!s.link) {
        if (s.pending.size() > limits_.queue) {
            // Nobody is reading: rather than grow, forget and let the resume resync.
            s.pending.clear();
            s.lost_events = true;
        }
        return;
    }
    pump(s.agent, now);
    if (s.pending.size() + s.link->unwritten() > limits_.queue) {
        if (!s.over_since) {
            set_over(s, now);
            ++counters_.overloads;
            boost::json::object o{{"type", "overload"},
                                  {"queued", s.pending.size() + s.link->unwritten()}};
            s.link->send_urgent(boost::json::serialize(o));
        }
        // Far behind: end it now rather than hold more for it.
        if (s.pending.size() > 2 * limits_.queue) cut_off(s);
    }
}

void DesktopHub::pump(const std::string& agent, SteadyTime now) {
    Session* s = find(agent);
    if (!s || !s->link) return;
    auto& link = *s->link;
    std::vector<std::pair<std::uint64_t, EventPtr>> out;
    while (!s->pending.empty() && link.unwritten() + out.size() < limits_.window) {
        auto e = std::move(s->pending.front());
        s->pending.pop_front();
        auto seq = ++s->seq;
        s->ring.emplace_back(seq, e);
        if (s->unsaved_ids.empty()) {
            s->unsaved_first = seq;
            unsaved_.push_back(s->agent);
        }
        s->unsaved_ids.push_back(e->id);
        out.emplace_back(seq, std::move(e));
    }
    if (!out.empty()) link.send_events(std::move(out));
    if (s->unsaved_ids.size() >= kReplaySaveEvery) save_replay(*s);
    if (s->ring.size() > limits_.replay)
        trim(*s, s->ring[s->ring.size() - limits_.replay - 1].first, false);
    link.hub_waiting.store(!s->pending.empty());
    // The link may have written everything between the check above and the flag: look again.
    if (!s->pending.empty() && link.unwritten() < limits_.window) return pump(agent, now);
    if (s->over_since && s->pending.size() + link.unwritten() <= limits_.queue)
        set_over(*s, std::nullopt);
}

void DesktopHub::save_replay(Session& s) {
    if (s.unsaved_ids.empty()) return;
    journal_.push_back(ReplayStored{s.token, s.unsaved_first, std::move(s.unsaved_ids)});
    s.unsaved_ids.clear();
}

void DesktopHub::trim(Session& s, std::uint64_t up_to, bool save_now) {
    std::uint64_t dropped = 0;
    while (!s.ring.empty() && s.ring.front().first <= up_to) {
        s.ring.pop_front();
        ++dropped;
    }
    s.trimmed_unsaved += dropped;
    if (s.trimmed_unsaved > 0 && (save_now || s.trimmed_unsaved >= kTrimSaveEvery)) {
        save_replay(s);  // rows first, so that the trim covers them
        journal_.push_back(ReplayTrimmed{s.token, up_to, s.seq});
        s.trimmed_unsaved = 0;
    }
}

void DesktopHub::ack(const std::string& agent, std::uint64_t seq) {
    if (Session* s = find(agent)) trim(*s, std::min(seq, s->seq), true);
}

void DesktopHub::set_monitor(const std::string& agent, bool on) {
    auto it = std::find(monitors_.begin(), monitors_.end(), agent);
    if (on && it == monitors_.end()) monitors_.push_back(agent);
    if (!on && it != monitors_.end()) monitors_.erase(it);
}

void DesktopHub::monitor(const std::string& agent, const std::string& scope) {
    if (Session* s = find(agent)) {
        s->scope = scope;
        set_monitor(agent, !scope.empty());
        stored(*s);
    }
}

void DesktopHub::set_system(const std::string& agent, const std::string& system) {
    if (Session* s = find(agent); s && s->system != system) {
        s->system = system;
        stored(*s);
    }
}

void DesktopHub::cut_off(Session& s) {
    ++counters_.too_slow;
    s.link->close(ByeReason::too_slow);
    s.link.reset();
    set_over(s, std::nullopt);
    s.pending.clear();
    s.lost_events = true;  // its resume is a resync
}

void DesktopHub::set_over(Session& s, std::optional<SteadyTime> since) {
    if (s.over_since.has_value() != since.has_value()) since ? ++over_ : --over_;
    s.over_since = since;
}

void DesktopHub::sweep(SteadyTime now) {
    if (over_ == 0) return;  // the usual case: no pass over every session
    for (auto& [agent, s] : sessions_)
        if (s.link && s.over_since && now - *s.over_since > limits_.slow_timeout) cut_off(s);
}

bool DesktopHub::end_session(const std::string& agent, ByeReason reason) {
    auto it = sessions_.find(agent);
    if (it == sessions_.end()) return false;
    if (it->second.link) it->second.link->close(reason);
    journal_.push_back(SessionEnded{it->second.token});
    set_monitor(agent, false);
    set_over(it->second, std::nullopt);
    sessions_.erase(it);
    return true;
}

std::vector<SessionInfo> DesktopHub::session_infos() const {
    std::vector<SessionInfo> out;
    out.reserve(sessions_.size());
    for (auto& [agent, s] : sessions_)
        out.push_back({agent, s.system});
    return out;
}

bool DesktopHub::attached(const std::string& agent) const {
    auto it = sessions_.find(agent);
    return it != sessions_.end() && it->second.link;
}

void DesktopHub::forget_resume_key(const std::string& agent) {
    auto it = sessions_.find(agent);
    if (it == sessions_.end() || it->second.resume_hash.empty()) return;
    it->second.resume_hash.clear();
    stored(it->second);
}

bool DesktopHub::holds(const std::string& agent, const std::string& token) const {
    auto it = sessions_.find(agent);
    return it != sessions_.end() && it->second.token == token;
}

void DesktopHub::close_all(ByeReason reason) {
    for (auto& [agent, s] : sessions_)
        if (s.link) {
            s.link->close(reason);
            s.link.reset();
        }
}

std::vector<Change> DesktopHub::take_journal(bool with_replay) {
    if (with_replay) {
        for (auto& agent : unsaved_)
            if (auto* s = find(agent)) save_replay(*s);
        unsaved_.clear();
    }
    std::vector<Change> out;
    out.swap(journal_);
    return out;
}

std::uint64_t DesktopHub::oldest_held_event() const {
    // Coalescing puts newer events in older places, so the buffers are not ordered by ID: look
    // at every entry. This runs once per prune interval.
    std::uint64_t oldest = last_event_id_ + 1;
    for (auto& [agent, s] : sessions_)
        for (auto& [seq, e] : s.ring)
            oldest = std::min(oldest, e->id);
    return oldest;
}

std::size_t DesktopHub::connected() const {
    std::size_t n = 0;
    for (auto& [agent, s] : sessions_)
        n += s.link ? 1 : 0;
    return n;
}

std::size_t DesktopHub::queued() const {
    std::size_t n = 0;
    for (auto& [agent, s] : sessions_)
        n += s.pending.size() + (s.link ? s.link->unwritten() : 0);
    return n;
}

}  // namespace cb::channels
