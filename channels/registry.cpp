#include "channels/registry.hpp"

#include <algorithm>

namespace cb::channels {

std::string_view to_string(Outcome o) {
    switch (o) {
        case Outcome::accepted:
            return "accepted";
        case Outcome::duplicate:
            return "duplicate";
        case Outcome::stale:
            return "stale";
        case Outcome::count:
            break;
    }
    return "?";
}

namespace {

ApplyResult reject(Rejection::Code code, std::string field, std::string message) {
    return ApplyResult{Rejection{code, FieldError{std::move(field), std::move(message)}}, {}};
}

ApplyResult outcome(Outcome o) {
    return ApplyResult{o, {}};
}

}  // namespace

ApplyResult Registry::apply(const Event& event, TimePoint now) {
    return std::visit(
        [&](const auto& e) -> ApplyResult {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, Item>)
                return apply_item(e, now);
            else if constexpr (std::is_same_v<T, PostingEvent>)
                return apply_posting(e);
            else if constexpr (std::is_same_v<T, AgentState>)
                return apply_agent(e, now);
            else
                return apply_subscription(e, now);
        },
        event);
}

ApplyResult Registry::apply_item(const Item& item, TimePoint now) {
    if (auto err = validate(item))
        return reject(Rejection::Code::invalid_field, err->field, err->message);
    auto k = key(item.system, item.id);

    if (auto it = live_.find(k); it != live_.end()) {
        Item& held = it->second;
        if (held.channel != item.channel)
            return reject(Rejection::Code::invalid_field, "id",
                          "item " + item.id + " is a " + std::string(to_string(held.channel)) +
                              " item, not " + std::string(to_string(item.channel)));
        if (item.version == held.version) return outcome(Outcome::duplicate);
        if (item.version < held.version) return outcome(Outcome::stale);
        if (!move_allowed(item.channel, held.state, item.state))
            return reject(Rejection::Code::invalid_transition, "state",
                          "a " + std::string(to_string(item.channel)) + " item cannot move from " +
                              std::string(to_string(held.state)) + " to " +
                              std::string(to_string(item.state)));
        Item next = item;
        next.touched = now;
        if (next.channel == Channel::chat) next.postings = std::move(held.postings);
        ApplyResult r{Outcome::accepted, {}};
        if (is_terminal(next.state)) {
            ended_[k] = Ended{next.channel, next.version, now};
            r.changes.push_back(ItemStored{next, now});
            if (orphans_.erase(k)) r.changes.push_back(OrphanCleared{item.system, item.id});
            reindex(k, &held, nullptr);
            live_.erase(it);
        } else {
            reindex(k, &held, &next);
            held = std::move(next);
            r.changes.push_back(ItemStored{held, now});
        }
        return r;
    }

    if (auto it = ended_.find(k); it != ended_.end() && it->second.here &&
                                  it->second.channel == item.channel &&
                                  item.version > it->second.version) {
        // Closed here by a reconciliation: the CMS's own end of it is no news, and a CMS that
        // still reports it live had it after all.
        if (is_terminal(item.state)) return outcome(Outcome::duplicate);
        ended_.erase(it);
    }
    if (auto it = ended_.find(k); it != ended_.end()) {
        if (it->second.channel != item.channel)
            return reject(Rejection::Code::invalid_field, "id",
                          "item " + item.id + " was a " +
                              std::string(to_string(it->second.channel)) + " item, not " +
                              std::string(to_string(item.channel)));
        if (item.version == it->second.version) return outcome(Outcome::duplicate);
        if (item.version < it->second.version) return outcome(Outcome::stale);
        return reject(Rejection::Code::invalid_transition, "state",
                      "item " + item.id + " has ended; a newer snapshot cannot revive it");
    }

    // The first snapshot of an item may carry any state of its channel.
    ApplyResult r{Outcome::accepted, {}};
    if (is_terminal(item.state)) {
        ended_[k] = Ended{item.channel, item.version, now};
        r.changes.push_back(ItemStored{item, now});
    } else {
        auto& held = live_[k] = item;
        held.postings.clear();
        held.touched = now;
        reindex(k, nullptr, &held);
        r.changes.push_back(ItemStored{held, now});
    }
    return r;
}

ApplyResult Registry::apply_posting(const PostingEvent& p) {
    if (auto err = validate(p.posting))
        return reject(Rejection::Code::invalid_field, err->field, err->message);
    auto k = key(p.system, p.posting.chat_session_id);
    auto it = live_.find(k);
    if (it == live_.end()) {
        if (auto e = ended_.find(k); e != ended_.end() && e->second.channel == Channel::chat)
            return reject(Rejection::Code::invalid_transition, "chatSessionId",
                          "chat " + p.posting.chat_session_id + " has ended");
        return reject(Rejection::Code::invalid_field, "chatSessionId",
                      "no active chat " + p.posting.chat_session_id);
    }
    Item& chat = it->second;
    if (chat.channel != Channel::chat)
        return reject(
            Rejection::Code::invalid_field, "chatSessionId",
            p.posting.chat_session_id + " is a " + std::string(to_string(chat.channel)) + " item");
    // A resent posting (same sender, time and text) is recognised as a duplicate.
    if (std::find(chat.postings.begin(), chat.postings.end(), p.posting) != chat.postings.end())
        return outcome(Outcome::duplicate);
    chat.postings.push_back(p.posting);
    if (chat.postings.size() > limits_.max_chat_postings)
        chat.postings.erase(
            chat.postings.begin(),
            chat.postings.begin() +
                static_cast<std::ptrdiff_t>(chat.postings.size() - limits_.max_chat_postings));
    ApplyResult r{Outcome::accepted, {}};
    r.changes.push_back(PostingStored{p.system, p.posting});
    return r;
}

ApplyResult Registry::apply_agent(const AgentState& a, TimePoint now) {
    if (auto err = validate(a))
        return reject(Rejection::Code::invalid_field, err->field, err->message);
    auto k = key(a.system, a.user_id);
    auto it = agents_.find(k);
    if (it != agents_.end() && it->second == a) return outcome(Outcome::duplicate);
    agents_[k] = a;
    if (a.state != AgentStateValue::logged_off) logged_on_at_[k] = now;
    ApplyResult r{Outcome::accepted, {}};
    r.changes.push_back(AgentStored{a});
    return r;
}

ApplyResult Registry::apply_subscription(const SubscriptionEnded& s, TimePoint now) {
    auto& sub = subscriptions_[s.system];
    if (sub.ended && sub.reason == s.reason) return outcome(Outcome::duplicate);
    sub = SystemSubscription{true, s.reason, now};
    ApplyResult r{Outcome::accepted, {}};
    r.changes.push_back(SubscriptionStored{s, now});
    return r;
}

void Registry::restore(std::vector<Item> live, std::vector<EndedItem> ended,
                       std::vector<AgentState> agents, std::vector<OrphanRecord> orphans) {
    live_.reserve(live_.size() + live.size());
    for (auto& i : live) {
        auto k = key(i.system, i.id);
        if (i.postings.size() > limits_.max_chat_postings)
            i.postings.erase(
                i.postings.begin(),
                i.postings.begin() +
                    static_cast<std::ptrdiff_t>(i.postings.size() - limits_.max_chat_postings));
        auto [it, fresh] = live_.try_emplace(k, std::move(i));
        if (!fresh) continue;  // the journal's key is unique: never twice
        reindex(k, nullptr, &it->second);
    }
    for (auto& e : ended)
        ended_[key(e.system, e.id)] = Ended{e.channel, e.version, e.ended_at};
    for (auto& a : agents)
        agents_[key(a.system, a.user_id)] = std::move(a);
    for (auto& o : orphans) {
        auto k = key(o.system, o.id);
        if (live_.count(k)) orphans_[k] = std::move(o);
    }
}

void Registry::prune(TimePoint now) {
    for (auto it = ended_.begin(); it != ended_.end();) {
        if (now - it->second.ended_at > limits_.ended_retention)
            it = ended_.erase(it);
        else
            ++it;
    }
}

const Item* Registry::find(const std::string& system, const std::string& id) const {
    auto it = live_.find(key(system, id));
    return it == live_.end() ? nullptr : &it->second;
}

void Registry::reindex(const std::string& k, const Item* before, const Item* after) {
    const std::string* from = before && before->agent_id ? &*before->agent_id : nullptr;
    const std::string* to = after && after->agent_id ? &*after->agent_id : nullptr;
    if (from && to && *from == *to) return;
    if (from) {
        auto it = by_agent_.find(*from);
        if (it != by_agent_.end()) {
            it->second.erase(k);
            if (it->second.empty()) by_agent_.erase(it);
        }
    }
    if (to) by_agent_[*to].insert(k);
}

std::vector<Item> Registry::items(const ItemFilter& f) const {
    std::vector<const Item*> hits;
    auto consider = [&](const Item& i) {
        if (!f.system.empty() && i.system != f.system) return;
        if (!f.agent.empty() && i.agent_id.value_or("") != f.agent) return;
        if (f.channel && i.channel != *f.channel) return;
        if (f.state && i.state != *f.state) return;
        hits.push_back(&i);
    };
    if (!f.agent.empty()) {
        if (auto it = by_agent_.find(f.agent); it != by_agent_.end())
            for (auto& k : it->second)
                consider(live_.at(k));
    } else {
        for (auto& [k, i] : live_)
            consider(i);
    }
    std::sort(hits.begin(), hits.end(), [](const Item* a, const Item* b) {
        return std::tie(a->system, a->id) < std::tie(b->system, b->id);
    });
    std::vector<Item> out;
    out.reserve(hits.size());
    for (auto* i : hits)
        out.push_back(*i);
    return out;
}

std::vector<AgentState> Registry::agents() const {
    std::vector<AgentState> out;
    for (auto& [k, a] : agents_)
        out.push_back(a);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
        return std::tie(a.system, a.user_id) < std::tie(b.system, b.user_id);
    });
    return out;
}

const AgentState* Registry::find_agent(const std::string& system, const std::string& user) const {
    auto it = agents_.find(key(system, user));
    return it == agents_.end() ? nullptr : &it->second;
}

std::optional<Change> Registry::orphan(const std::string& system, const std::string& id,
                                       std::string reason, TimePoint now) {
    auto k = key(system, id);
    auto it = live_.find(k);
    if (it == live_.end() || orphans_.count(k)) return std::nullopt;
    OrphanRecord o;
    o.system = system;
    o.id = id;
    o.reason = std::move(reason);
    o.agent = it->second.agent_id.value_or("");
    o.at = now;
    orphans_[k] = o;
    return Change{OrphanStored{std::move(o)}};
}

std::optional<Change> Registry::clear_orphan(const std::string& system, const std::string& id) {
    if (!orphans_.erase(key(system, id))) return std::nullopt;
    return Change{OrphanCleared{system, id}};
}

std::optional<Change> Registry::classify(const std::string& system, const std::string& id,
                                         Classification c, TimePoint now) {
    auto it = orphans_.find(key(system, id));
    if (it == orphans_.end() || it->second.classification == c) return std::nullopt;
    it->second.classification = c;
    it->second.checked_at = now;
    return Change{OrphanStored{it->second}};
}

const OrphanRecord* Registry::find_orphan(const std::string& system, const std::string& id) const {
    auto it = orphans_.find(key(system, id));
    return it == orphans_.end() ? nullptr : &it->second;
}

std::vector<OrphanRecord> Registry::orphans(const std::string& system) const {
    std::vector<OrphanRecord> out;
    for (auto& [k, o] : orphans_)
        if (system.empty() || o.system == system) out.push_back(o);
    std::sort(out.begin(), out.end(),
              [](auto& a, auto& b) { return std::tie(a.system, a.id) < std::tie(b.system, b.id); });
    return out;
}

std::vector<Change> Registry::end_locally(const std::string& system, const std::string& id,
                                          TimePoint now) {
    auto k = key(system, id);
    auto it = live_.find(k);
    if (it == live_.end()) return {};
    Item ended = std::move(it->second);
    switch (ended.channel) {
        case Channel::phone:
            ended.state = State::disconnected;
            break;
        case Channel::chat:
            ended.state = State::ended;
            break;
        case Channel::email:
            ended.state = State::closed;
            break;
    }
    ended.changed_at = iso_utc(now);
    std::vector<Change> changes;
    ended_[k] = Ended{ended.channel, ended.version, now, true};
    reindex(k, &ended, nullptr);
    live_.erase(it);
    changes.push_back(ItemStored{std::move(ended), now});
    if (orphans_.erase(k)) changes.push_back(OrphanCleared{system, id});
    return changes;
}

std::vector<Change> Registry::reassign(const std::string& system, const std::string& id,
                                       const std::string& agent, TimePoint now) {
    auto k = key(system, id);
    auto it = live_.find(k);
    if (it == live_.end()) return {};
    Item next = it->second;
    next.agent_id = agent;
    next.touched = now;
    reindex(k, &it->second, &next);
    it->second = std::move(next);
    std::vector<Change> changes;
    changes.push_back(ItemStored{it->second, now});
    if (orphans_.erase(k)) changes.push_back(OrphanCleared{system, id});
    return changes;
}

std::vector<Change> Registry::release(const std::string& system, const std::string& id) {
    auto k = key(system, id);
    auto it = live_.find(k);
    if (it == live_.end()) return {};
    reindex(k, &it->second, nullptr);
    live_.erase(it);
    std::vector<Change> changes;
    changes.push_back(ItemReleased{system, id});
    if (orphans_.erase(k)) changes.push_back(OrphanCleared{system, id});
    return changes;
}

std::vector<std::pair<std::string, std::string>> Registry::owners() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [agent, keys] : by_agent_)
        if (!keys.empty()) out.emplace_back(agent, live_.at(*keys.begin()).system);
    return out;
}

std::optional<std::string> Registry::absence(const std::string& agent,
                                             const std::string& system) const {
    auto keys = by_agent_.find(agent);
    if (keys == by_agent_.end()) return std::nullopt;
    auto seen = logged_on_at_.find(key(system, agent));
    for (auto& k : keys->second) {
        auto o = orphans_.find(k);
        if (o != orphans_.end() && o->second.system == system && o->second.agent == agent &&
            o->second.reason != "untouched" && o->second.reason != "unknownAgent" &&
            (seen == logged_on_at_.end() || seen->second < o->second.at))
            return o->second.reason;
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Registry::untouched(TimePoint before) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [k, i] : live_)
        if (i.touched < before && !orphans_.contains(k)) out.emplace_back(i.system, i.id);
    return out;
}

std::unordered_map<std::string, std::uint64_t> Registry::versions(const std::string& system) const {
    std::unordered_map<std::string, std::uint64_t> out;
    for (auto& [k, i] : live_)
        if (i.system == system) out.emplace(i.id, i.version);
    return out;
}

std::string_view to_string(Classification c) {
    switch (c) {
        case Classification::unchecked:
            return "unchecked";
        case Classification::alive:
            return "alive";
        case Classification::gone:
            return "gone";
        case Classification::unknown:
            return "unknown";
    }
    return "?";
}

std::optional<Classification> classification_from_string(std::string_view s) {
    for (auto c : {Classification::unchecked, Classification::alive, Classification::gone,
                   Classification::unknown})
        if (to_string(c) == s) return c;
    return std::nullopt;
}

std::optional<Change> Registry::renew_subscription(const std::string& system) {
    auto it = subscriptions_.find(system);
    if (it == subscriptions_.end() || !it->second.ended) return std::nullopt;
    subscriptions_.erase(it);
    return Change{SubscriptionRenewed{system}};
}

}  // namespace cb::channels
