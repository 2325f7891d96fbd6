// The broker's side of the heartbeat monitor (DESIGN.md section 6): contacts, the one timer,
// and carrying out what the monitor decides (CMS requests, session ends, supervisors' events,
// orphans, audit records). Everything here runs on the core strand, but contact(), which queues.
#include "channels/item_json.hpp"
#include "daemon/broker.hpp"
#include "daemon/logging.hpp"
#include "protocol/desktop_codec.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cb::daemon {
namespace json = boost::json;

namespace {

/// An item newly offered to its agent: a phone call alerting, a chat or an e-mail offered.
bool is_offer(const channels::Item& i) {
    return i.agent_id &&
           (i.state == channels::State::alerting ||
            (i.channel != channels::Channel::phone && i.state == channels::State::offered));
}

}  // namespace

heartbeat::Profile Broker::profile_of(const std::string& agent) const {
    auto c = config();
    auto* a = c->find_agent(agent);
    return a ? c->profile_of(*a) : heartbeat::Profile{};
}

void Broker::contact(const std::string& agent, heartbeat::Contact c) {
    {
        std::lock_guard lock(contacts_mutex_);
        contacts_.emplace_back(agent, std::move(c));
        if (contacts_due_) return;  // the batch being gathered takes this one too
        contacts_due_ = true;
    }
    // The first contact of a batch sets the batch's timer; the rest only queue.
    net::post(core_, [this] {
        if (stopping_.load()) return;
        contacts_timer_.expires_after(kContactBatch);
        contacts_timer_.async_wait(
            net::bind_executor(core_, [this](const boost::system::error_code& ec) {
                if (ec || stopping_.load()) return;
                std::vector<heartbeat::Action> actions;
                apply_contacts(actions);
                after_core_state(std::move(actions));
            }));
    });
}

void Broker::apply_contacts(std::vector<heartbeat::Action>& actions) {
    std::vector<std::pair<std::string, heartbeat::Contact>> batch;
    {
        std::lock_guard lock(contacts_mutex_);
        batch.swap(contacts_);
        contacts_due_ = false;
    }
    for (auto& [agent, c] : batch) {
        auto more = monitor_.contact(agent, std::move(c));
        actions.insert(actions.end(), std::make_move_iterator(more.begin()),
                       std::make_move_iterator(more.end()));
    }
}

void Broker::after_core_state(std::vector<heartbeat::Action> actions) {
    if (!actions.empty()) run_heartbeat(std::move(actions));
    arm_heartbeat();
    flush_hub();
}

void Broker::arm_heartbeat() {
    if (stopping_.load()) return;
    auto next = monitor_.next_deadline();
    if (auto probe = probes_.next_deadline(); probe && (!next || *probe < *next)) next = probe;
    if (!next) return;
    // Rounded up to the tick: one wake-up judges every deadline of the tick. Each agent's
    // deadline passes every lag or so even while it heartbeats (the monitor then finds the
    // later contact and queues the next), so 10,000 agents would otherwise wake the core
    // about 2,000 times a second.
    auto ticks =
        (next->time_since_epoch() + kHeartbeatTick - heartbeat::Time::duration(1)) / kHeartbeatTick;
    next = heartbeat::Time(
        std::chrono::duration_cast<heartbeat::Time::duration>(ticks * kHeartbeatTick));
    if (heartbeat_armed_ && *heartbeat_armed_ <= *next) return;
    heartbeat_armed_ = *next;
    heartbeat_timer_.expires_at(*next);
    heartbeat_timer_.async_wait(
        net::bind_executor(core_, [this](const boost::system::error_code& ec) {
            if (ec || stopping_.load()) return;
            heartbeat_armed_.reset();
            auto now = std::chrono::steady_clock::now();
            run_probes(probes_.advance(now));
            // Contacts still gathering in a batch count before any deadline is judged.
            std::vector<heartbeat::Action> actions;
            apply_contacts(actions);
            auto due = monitor_.advance(now);
            actions.insert(actions.end(), std::make_move_iterator(due.begin()),
                           std::make_move_iterator(due.end()));
            after_core_state(std::move(actions));
        }));
}

void Broker::run_probes(std::vector<heartbeat::ProbeAction> actions) {
    for (auto& a : actions) {
        // Reported only if it is still so when the subscribe (or the post) is done: a decision
        // overtaken meanwhile is not announced after the one that overtook it.
        auto report = [this, system = a.system](bool available) {
            return [this, system, available] {
                net::post(core_, [this, system, available] {
                    if (probes_.available(system) == available) system_changed(system, available);
                });
            };
        };
        if (a.kind == heartbeat::ProbeActionKind::unavailable) {
            cms_.set_available(a.system, false, report(false));
            continue;
        }
        cms_.probe(a.system, [this, system = a.system, report](bool answered) {
            net::post(core_, [this, system, answered, report] {
                if (stopping_.load()) return;
                if (probes_.answered(system, answered, std::chrono::steady_clock::now()))
                    cms_.set_available(system, true, report(true));
                arm_heartbeat();
            });
        });
    }
}

struct Broker::RestoredWatch {
    std::vector<channels::SessionInfo> sessions;              // kept in the journal
    std::vector<std::pair<std::string, std::string>> owners;  // agents with live items, system
    heartbeat::Contact restart;
    std::size_t next = 0;  // into sessions, then owners
    std::size_t sessions_watched = 0, owners_watched = 0;
};

void Broker::watch_restored_sessions() {
    auto w = std::make_shared<RestoredWatch>();
    w->sessions = hub_.session_infos();
    w->owners = registry_.owners();
    w->restart = {std::chrono::steady_clock::now(), heartbeat::ContactKind::restart, {}};
    watch_restored(std::move(w));
}

void Broker::watch_restored(std::shared_ptr<RestoredWatch> w) {
    auto cfg = config();
    auto total = w->sessions.size() + w->owners.size();
    for (auto end = std::min(total, w->next + kRestoredSlice); w->next < end; ++w->next) {
        if (w->next < w->sessions.size()) {
            auto& s = w->sessions[w->next];
            // A desktop whose hello came first is watched already, from its hello; a session
            // ended meanwhile has nobody left to watch.
            if (monitor_.watching(s.agent) || !hub_.has_session(s.agent)) continue;
            monitor_.watch(s.agent, s.system, profile_of(s.agent), w->restart);
            ++w->sessions_watched;
            continue;
        }
        // An agent who owns live items but had no desktop session kept gets the same window: if
        // no desktop of theirs is back by its end, the agent is logged off and the items
        // orphaned. Not one whose items are all orphans already: that logoff happened before
        // the restart.
        auto& [agent, system] = w->owners[w->next - w->sessions.size()];
        if (monitor_.watching(agent) || !cfg->find_agent(agent)) continue;
        channels::ItemFilter f;
        f.agent = agent;
        auto items = registry_.items(f);
        if (std::all_of(items.begin(), items.end(),
                        [&](auto& i) { return registry_.find_orphan(i.system, i.id) != nullptr; }))
            continue;
        monitor_.watch(agent, system, profile_of(agent), w->restart);
        ++w->owners_watched;
    }
    after_core_state({});
    if (w->next < total) {
        // The rest after whatever queued meanwhile (a CMS's events): a slice at a time.
        net::post(core_, [this, w = std::move(w)]() mutable {
            if (!stopping_.load()) watch_restored(std::move(w));
        });
        return;
    }
    if (w->sessions_watched + w->owners_watched > 0)
        spdlog::info(
            "heartbeat: {} restored desktop session(s) and {} agent(s) with live items get a "
            "fresh window from readiness",
            w->sessions_watched, w->owners_watched);
}

void Broker::audit(std::string action, const std::string& agent, const std::string& system,
                   const std::string& item, std::string reason, std::string details,
                   std::string actor) {
    journal_->submit(
        {channels::AuditStored{now(), std::move(action), agent, system, item, std::move(reason),
                               std::move(details), std::move(actor)}},
        [](bool) {});
}

void Broker::run_heartbeat(std::vector<heartbeat::Action> actions) {
    using heartbeat::ActionKind;
    auto steady_now = std::chrono::steady_clock::now();
    auto wall_now = now();
    for (auto& a : actions) {
        auto silent =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady_now - a.last_contact.at);
        auto last_wall = wall_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                        steady_now - a.last_contact.at);
        json::object evidence{{"profile", a.profile},
                              {"lastContact", channels::iso_utc(last_wall)},
                              {"contact", heartbeat::to_string(a.last_contact.kind)},
                              {"peer", a.last_contact.peer},
                              {"silentMs", silent.count()}};
        auto tell_supervisors = [&](std::string_view state) {
            if (a.system.empty() || hub_.sessions() == 0) return;
            json::object o{{"userId", a.agent},
                           {"system", a.system},
                           {"state", state},
                           {"lastContact", evidence["lastContact"]},
                           {"peer", a.last_contact.peer}};
            hub_.route_supervisors("agentHeartbeat", a.system, json::serialize(o), steady_now);
        };
        auto logoff = [&](const std::string& system) {
            protocol::CmsRequest r;
            r.op = protocol::CmsOp::logoff;
            r.reason = "heartbeatLost";
            r.user_id = a.agent;
            cms_.request(system, std::move(r), [agent = a.agent, system](cms::CmsResult result) {
                if (auto* f = std::get_if<protocol::CmsFault>(&result))
                    spdlog::warn("heartbeat: logoff of {} at {} failed: {}: {}", agent, system,
                                 f->code, f->message);
            });
        };
        switch (a.kind) {
            case ActionKind::suspect: {
                spdlog::warn("heartbeat: {} silent for {} ms (last {} from {}): suspect", a.agent,
                             silent.count(), heartbeat::to_string(a.last_contact.kind),
                             a.last_contact.peer.empty() ? "-" : a.last_contact.peer);
                auto* state = a.system.empty() ? nullptr : registry_.find_agent(a.system, a.agent);
                // A late tick may bring the loss in the same batch: then no notReady first.
                bool lost_too = std::any_of(actions.begin(), actions.end(), [&](auto& other) {
                    return other.kind == ActionKind::lost && other.agent == a.agent;
                });
                if (a.set_not_ready && state && !lost_too &&
                    (state->state == channels::AgentStateValue::ready ||
                     state->state == channels::AgentStateValue::wrap_up)) {
                    std::string previous(channels::to_string(state->state));
                    monitor_.note_replaced_mode(a.agent, previous);
                    evidence["previousMode"] = previous;
                    protocol::CmsRequest r;
                    r.op = protocol::CmsOp::set_work_mode;
                    r.state = "notReady";
                    r.user_id = a.agent;
                    // A restore asked for while this is on its way waits for its answer, so
                    // that the two cannot overtake each other on the CMS link's connections.
                    mode_in_flight_[a.agent] = std::nullopt;
                    cms_.request(a.system, std::move(r),
                                 [this, agent = a.agent, system = a.system](cms::CmsResult result) {
                                     if (auto* f = std::get_if<protocol::CmsFault>(&result))
                                         spdlog::warn(
                                             "heartbeat: setWorkMode notReady for {} "
                                             "failed: {}: {}",
                                             agent, f->code, f->message);
                                     net::post(core_, [this, agent, system] {
                                         auto it = mode_in_flight_.find(agent);
                                         if (it == mode_in_flight_.end()) return;
                                         auto restore = std::move(it->second);
                                         mode_in_flight_.erase(it);
                                         if (restore) set_work_mode(agent, system, *restore);
                                     });
                                 });
                }
                tell_supervisors("suspect");
                audit("heartbeatSuspect", a.agent, a.system, {}, "silent for longer than lag",
                      json::serialize(evidence));
                break;
            }
            case ActionKind::cleared:
                spdlog::info("heartbeat: {} heard from again ({})", a.agent,
                             heartbeat::to_string(a.last_contact.kind));
                if (!a.restore_mode.empty() && !a.system.empty()) {
                    evidence["restoredMode"] = a.restore_mode;
                    if (auto it = mode_in_flight_.find(a.agent); it != mode_in_flight_.end())
                        it->second = a.restore_mode;  // sent when notReady is answered
                    else
                        set_work_mode(a.agent, a.system, a.restore_mode);
                }
                tell_supervisors("active");
                audit("heartbeatCleared", a.agent, a.system, {}, "heard from again",
                      json::serialize(evidence));
                break;
            case ActionKind::lost:
            case ActionKind::expired: {
                bool lost = a.kind == ActionKind::lost;
                mode_in_flight_.erase(a.agent);  // logged off: nothing to restore
                json::array orphaned;
                if (lost && !a.system.empty()) {
                    spdlog::warn("heartbeat: {} silent for {} ms: logging off at {}", a.agent,
                                 silent.count(), a.system);
                    logoff(a.system);
                    // Nothing heard since the broker restarted: the restart orphaned them.
                    bool restart = a.last_contact.kind == heartbeat::ContactKind::restart;
                    for (auto& key : orphan_items(
                             a.agent, {}, restart ? "brokerRestart" : "heartbeatLost", "broker"))
                        orphaned.push_back(json::string(key));
                    evidence["orphaned"] = std::move(orphaned);
                } else {
                    spdlog::info("heartbeat: the session of {} ends after {} ms of silence",
                                 a.agent, silent.count());
                }
                hub_.end_session(a.agent, channels::ByeReason::heartbeat_lost);
                resume_keys_.forget(a.agent);
                if (lost) tell_supervisors("lost");
                audit(lost ? "heartbeatLogoff" : "heartbeatSessionExpired", a.agent, a.system, {},
                      "silent for longer than lag + grace", json::serialize(evidence));
                break;
            }
            case ActionKind::rejected: {
                auto* item = registry_.find(a.system, a.item);
                std::string system = item ? item->system : a.system;
                spdlog::warn("heartbeat: {} silent for {} ms was offered {}: rejected, logging off",
                             a.agent, silent.count(), a.item);
                if (auto name = protocol::cms_operation("reject", a.channel))
                    if (auto op = protocol::cms_op_from_name(*name)) {
                        protocol::CmsRequest r;
                        r.op = *op;
                        r.user_id = a.agent;
                        r.item_id = a.item;
                        r.reason = "heartbeatLost";
                        cms_.request(system, std::move(r),
                                     [agent = a.agent, item = a.item](cms::CmsResult result) {
                                         if (auto* f = std::get_if<protocol::CmsFault>(&result))
                                             spdlog::warn(
                                                 "heartbeat: reject of {} for {} "
                                                 "failed: {}: {}",
                                                 item, agent, f->code, f->message);
                                     });
                    }
                logoff(system);
                json::array orphaned;
                // The offer being rejected is no orphan: it ends when the CMS takes the reject.
                for (auto& key :
                     orphan_items(a.agent, {}, "heartbeatLost", "broker", nullptr, a.item))
                    orphaned.push_back(json::string(key));
                evidence["orphaned"] = std::move(orphaned);
                hub_.end_session(a.agent, channels::ByeReason::heartbeat_lost);
                resume_keys_.forget(a.agent);
                a.system = system;
                tell_supervisors("lost");
                audit("heartbeatReject", a.agent, system, a.item,
                      "offered to an agent silent for longer than lag", json::serialize(evidence));
                break;
            }
        }
    }
}

void Broker::set_work_mode(const std::string& agent, const std::string& system,
                           const std::string& mode) {
    protocol::CmsRequest r;
    r.op = protocol::CmsOp::set_work_mode;
    r.state = mode;
    r.user_id = agent;
    cms_.request(system, std::move(r), [agent, mode](cms::CmsResult result) {
        if (auto* f = std::get_if<protocol::CmsFault>(&result))
            spdlog::warn("heartbeat: setWorkMode {} for {} failed: {}: {}", mode, agent, f->code,
                         f->message);
    });
}

void Broker::inspect(std::vector<channels::Change>& changes) {
    auto steady_now = std::chrono::steady_clock::now();
    std::vector<heartbeat::Action> actions;
    std::shared_ptr<const config::Config> cfg;
    std::vector<channels::Change> more;
    bool contacts_applied = false;
    for (auto& c : changes) {
        if (auto* stored = std::get_if<channels::ItemStored>(&c)) {
            auto& i = stored->item;
            if (is_offer(i)) {
                // Whether the agent is silent is judged with every contact that came so far.
                if (!contacts_applied) apply_contacts(actions);
                contacts_applied = true;
                if (auto a = monitor_.offered(*i.agent_id, i.id, i.channel, steady_now)) {
                    a->system = i.system;
                    actions.push_back(std::move(*a));
                }
            }
            if (channels::is_terminal(i.state)) continue;
            auto* orphan = registry_.find_orphan(i.system, i.id);
            // The orphan has an owner again, or someone works on it: recovered.
            auto recovered = [&](const std::string& how) {
                auto record = *orphan;
                if (auto cleared = registry_.clear_orphan(i.system, i.id)) {
                    announce("itemRecovered", i, record, how);
                    audit("orphanRecovered", i.agent_id.value_or(""), i.system, i.id, how,
                          json::serialize(channels::to_json(i)));
                    more.push_back(std::move(*cleared));
                }
                orphan = nullptr;
            };
            // An untouched item that its CMS changes: somebody is working on it after all.
            if (orphan && orphan->reason == "untouched") recovered("changedAtCms");
            if (!i.agent_id) continue;
            if (!cfg) cfg = config();
            if (!cfg->find_agent(*i.agent_id)) {
                // An item of an agent the broker does not know: nobody here can handle it.
                if (orphan) continue;
                if (auto o = registry_.orphan(i.system, i.id, "unknownAgent", stored->at)) {
                    auto& record = std::get<channels::OrphanStored>(*o).orphan;
                    // A CMS that reports many agents the config lacks would write a line
                    // per item: 20 a minute at most (every one is in the audit log).
                    static LogLimit lines;
                    if (std::uint64_t left_out = 0; lines.allow(left_out))
                        spdlog::warn(
                            "recovery: {}/{} belongs to {}, an agent this broker does not "
                            "know: orphaned{}",
                            i.system, i.id, *i.agent_id, left_out_note(left_out));
                    announce("itemOrphaned", i, record);
                    audit("itemOrphaned", *i.agent_id, i.system, i.id, "unknownAgent",
                          json::serialize(channels::to_json(i)));
                    more.push_back(std::move(*o));
                }
            } else if (orphan && orphan->agent != *i.agent_id) {
                recovered("reassignedAtCms");  // the CMS gave it to someone else
            } else if (!orphan && registry_.orphan_count() > 0) {
                // The agent's other items are orphans because it is gone, and it has not come
                // back: one adopted from the CMS, or offered before the CMS saw the logoff,
                // joins them.
                if (auto reason = registry_.absence(*i.agent_id, i.system))
                    orphan_each({i}, *reason, "broker", "of " + *i.agent_id + ", who is gone",
                                &more);
            }
        } else if (auto* agent = std::get_if<channels::AgentStored>(&c)) {
            // Logged off at the CMS (by the desktop, or the CMS itself) while items are live.
            if (agent->agent.state == channels::AgentStateValue::logged_off) {
                auto by = operator_logoffs_.find(agent->agent.user_id);
                bool op = by != operator_logoffs_.end();
                orphan_items(agent->agent.user_id, agent->agent.system,
                             op ? "operatorLogoff" : "agentLoggedOff", op ? by->second : "broker",
                             &more);
            }
        } else if (auto* ended = std::get_if<channels::SubscriptionStored>(&c)) {
            spdlog::warn("cms {}: subscription ended ({}); subscribing again", ended->ended.system,
                         ended->ended.reason);
            cms_.subscription_ended(ended->ended.system);
        }
    }
    for (auto& m : more)
        changes.push_back(std::move(m));
    if (actions.empty()) return;
    run_heartbeat(std::move(actions));
    flush_hub();
}

}  // namespace cb::daemon
