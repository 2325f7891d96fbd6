// The broker's side of the recovery module (DESIGN.md section 7): orphans as they arise and
// are re-adopted, reconciliation with the CMSs (getItems, planned by recovery/reconcile.hpp),
// and the operators' actions; and how local changes and the hub's records reach the journal
// (commit_local(), flush_hub()). Everything here runs on the core strand, but reconcile() and
// recover(), which post to it.
#include "channels/item_json.hpp"
#include "daemon/broker.hpp"
#include "protocol/desktop_codec.hpp"

#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <set>
#include <unordered_set>

namespace cb::daemon {
namespace json = boost::json;
using channels::Change;

namespace {

json::object orphan_json(const channels::OrphanRecord& o) {
    json::object out{{"reason", o.reason},
                     {"orphanedAt", channels::iso_utc(o.at)},
                     {"orphanedFrom", o.agent},
                     {"classification", channels::to_string(o.classification)}};
    return out;
}

/// The audit record's evidence: the item before and after, the orphan it was.
std::string details(const channels::Item* before, const channels::Item* after,
                    const channels::OrphanRecord* orphan, json::object extra = {}) {
    extra["before"] = before ? json::value(channels::to_json(*before)) : json::value(nullptr);
    extra["after"] = after ? json::value(channels::to_json(*after)) : json::value(nullptr);
    if (orphan) extra["orphan"] = orphan_json(*orphan);
    return json::serialize(extra);
}

/// The CMS operation that ends an item of `channel`.
protocol::CmsOp closing_op(channels::Channel channel) {
    switch (channel) {
        case channels::Channel::phone:
            return protocol::CmsOp::hangup_call;
        case channels::Channel::chat:
            return protocol::CmsOp::end_chat;
        case channels::Channel::email:
            return protocol::CmsOp::close_message;
    }
    return protocol::CmsOp::hangup_call;
}

/// A fault that says the CMS could not be asked, rather than that it refused.
bool unreachable(const protocol::CmsFault& f) {
    return f.code == "timeout" || f.code == "unavailable" || f.code == "unknownSystem";
}

}  // namespace

void Broker::announce(const std::string& event, const channels::Item& item,
                      const channels::OrphanRecord& orphan, const std::string& how) {
    if (hub_.sessions() == 0) return;
    auto o = channels::to_json(item, orphan);
    if (!how.empty()) o["recoveredBy"] = how;
    hub_.route_supervisors(event, item.system, json::serialize(o),
                           std::chrono::steady_clock::now());
}

std::vector<std::string> Broker::orphan_items(const std::string& agent, const std::string& system,
                                              const std::string& reason, const std::string& actor,
                                              std::vector<Change>* batch, const std::string& skip) {
    channels::ItemFilter f;
    f.agent = agent;
    f.system = system;
    auto items = registry_.items(f);
    std::erase_if(items, [&](const channels::Item& i) { return i.id == skip; });
    return orphan_each(items, reason, actor, "of " + agent, batch);
}

std::vector<std::string> Broker::orphan_each(const std::vector<channels::Item>& items,
                                             const std::string& reason, const std::string& actor,
                                             const std::string& whose, std::vector<Change>* batch) {
    std::vector<Change> changes;
    std::vector<std::string> keys;
    std::set<std::string> systems;
    auto at = now();
    for (auto& item : items) {
        auto c = registry_.orphan(item.system, item.id, reason, at);
        if (!c) continue;
        const auto& record = std::get<channels::OrphanStored>(*c).orphan;
        announce("itemOrphaned", item, record);
        audit("itemOrphaned", item.agent_id.value_or(""), item.system, item.id, reason,
              details(&item, &item, &record), actor);
        keys.push_back(item.system + "/" + item.id);
        systems.insert(item.system);
        changes.push_back(std::move(*c));
    }
    if (keys.empty()) return keys;
    spdlog::warn("recovery: {} live item(s) {} orphaned ({})", keys.size(), whose, reason);
    if (batch)
        for (auto& c : changes)
            batch->push_back(std::move(c));
    else
        journal_->submit(std::move(changes), [](bool) {});
    // Each new orphan is classified by asking its CMS.
    for (auto& s : systems)
        reconcile(s, "orphaned");
    return keys;
}

void Broker::orphan_untouched() {
    auto after = config()->recovery.orphan_after;
    if (after <= config::Duration::zero()) return;
    auto steady = std::chrono::steady_clock::now();
    // A pass over every live item, every quarter of orphanAfter and at least once a minute: an
    // item becomes an orphan at most that much later than orphanAfter.
    auto every = std::min<std::chrono::steady_clock::duration>(after / 4, std::chrono::minutes(1));
    if (steady - last_untouched_check_ < every) return;
    last_untouched_check_ = steady;
    std::vector<channels::Item> items;
    for (auto& [system, id] : registry_.untouched(now() - after))
        items.push_back(*registry_.find(system, id));
    if (items.empty()) return;
    orphan_each(items, "untouched", "broker", "untouched for " + config::format_duration(after));
}

void Broker::agent_back(const std::string& agent, bool logged_on) {
    channels::ItemFilter f;
    f.agent = agent;
    std::vector<Change> changes;
    for (auto& item : registry_.items(f)) {
        const auto* o = registry_.find_orphan(item.system, item.id);
        // An untouched item was not orphaned by the agent's absence: only a change of it, an
        // operator or its end settles it.
        if (!o || o->reason == "untouched") continue;
        if (!logged_on) {
            const auto* state = registry_.find_agent(item.system, agent);
            if (!state || state->state == channels::AgentStateValue::logged_off) continue;
        }
        auto record = *o;
        auto c = registry_.clear_orphan(item.system, item.id);
        announce("itemRecovered", item, record, "agentBack");
        audit("orphanRecovered", agent, item.system, item.id, "the agent is back",
              details(&item, &item, &record));
        changes.push_back(std::move(*c));
    }
    if (changes.empty()) return;
    spdlog::info("recovery: {} orphan(s) of {} re-adopted: the agent is back", changes.size(),
                 agent);
    journal_->submit(std::move(changes), [](bool) {});
}

void Broker::commit_local(std::vector<Change> changes, std::function<void(bool)> done) {
    if (changes.empty()) {
        if (done) done(true);
        return;
    }
    auto steady_now = std::chrono::steady_clock::now();
    hub_.route(changes, steady_now, steady_now);
    inspect(changes);
    journal_->submit(std::move(changes), [done = std::move(done)](bool ok) {
        if (done) done(ok);
    });
    flush_hub();
}

void Broker::flush_hub(bool with_replay) {
    auto changes = hub_.take_journal(with_replay);
    std::move(changes.begin(), changes.end(), std::back_inserter(hub_backlog_));
    submit_hub_backlog();
}

void Broker::submit_hub_backlog(bool all) {
    if (hub_backlog_.empty() || (hub_chunk_in_flight_ && !all)) return;
    // A quarter of the backlog at a time when it is long, at most 4 * kHubChunk: chunks that
    // grow with a steady flow of records (bench/desktop_bench.sh's is drained with room to
    // spare), and stay small enough that a CMS's event does not wait long behind one.
    auto most = std::max(kHubChunk, hub_backlog_.size() / 4);
    most = std::min<std::size_t>(most, 4 * kHubChunk);
    auto n = all ? hub_backlog_.size() : std::min(most, hub_backlog_.size());
    std::vector<channels::Change> chunk(
        std::make_move_iterator(hub_backlog_.begin()),
        std::make_move_iterator(hub_backlog_.begin() + static_cast<long>(n)));
    hub_backlog_.erase(hub_backlog_.begin(), hub_backlog_.begin() + static_cast<long>(n));
    hub_chunk_in_flight_ = true;
    // Committed or given up (a journal that stopped): either way the next chunk may go.
    journal_->submit(std::move(chunk), [this](bool) {
        net::post(core_, [this] {
            hub_chunk_in_flight_ = false;
            submit_hub_backlog();
        });
    });
}

void Broker::orphans_unknown(const std::string& system) {
    std::vector<Change> changes;
    auto at = now();
    for (auto& o : registry_.orphans(system))
        if (auto c = registry_.classify(o.system, o.id, channels::Classification::unknown, at))
            changes.push_back(std::move(*c));
    if (!changes.empty()) journal_->submit(std::move(changes), [](bool) {});
}

void Broker::reconcile(const std::string& only, std::string trigger, std::function<void()> done) {
    net::post(core_, [this, only, trigger = std::move(trigger), done = std::move(done)]() mutable {
        std::vector<std::string> systems;
        if (!only.empty())
            systems.push_back(only);
        else
            for (auto& c : config()->cms)
                systems.push_back(c.id);
        if (systems.empty() || stopping_.load()) {
            if (done) done();
            return;
        }
        auto remaining = std::make_shared<std::size_t>(systems.size());
        auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
        for (auto& system : systems) {
            reconcile_waiters_[system].push_back([remaining, shared_done] {
                if (--*remaining == 0 && *shared_done) (*shared_done)();
            });
            if (!reconciles_.begin(system, trigger, now())) {
                // One is running: orphans made since it asked need another round.
                if (trigger == "orphaned") reconcile_again_[system] = true;
                continue;
            }
            auto held = registry_.versions(system);
            protocol::CmsRequest r;
            r.op = protocol::CmsOp::get_items;
            r.all_users = true;
            spdlog::info("recovery: reconciling {} ({}): asking for its items", system, trigger);
            cms_.request(system, std::move(r),
                         [this, system, held = std::move(held)](cms::CmsResult result) mutable {
                             net::post(core_, [this, system, held = std::move(held),
                                               result = std::move(result)]() mutable {
                                 finish_reconcile(system, std::move(held), std::move(result));
                             });
                         });
        }
    });
}

struct Broker::ReconcileRun {
    std::string system;
    std::unordered_map<std::string, std::uint64_t> held;  // versions when getItems went out
    recovery::ReconcilePlan plan;
    std::unordered_set<std::string> at_cms;
    std::size_t next = 0;  // into refresh, then adopt, then gone
    std::size_t refused = 0;
};

void Broker::finish_reconcile(const std::string& system,
                              std::unordered_map<std::string, std::uint64_t> held,
                              cms::CmsResult result) {
    using State = recovery::SystemReconcile::State;
    auto& st = reconciles_.at(system);
    if (auto* f = std::get_if<protocol::CmsFault>(&result)) {
        st.state = State::failed;
        st.error = f->code + ": " + f->message;
        orphans_unknown(system);
        st.unknown = registry_.orphans(system).size();
        spdlog::warn("recovery: cannot reconcile {} ({}); its {} orphan(s) stay unknown", system,
                     st.error, st.unknown);
        return end_reconcile(system);
    }
    auto& reply = std::get<protocol::CmsReply>(result);
    st.cms_items = reply.items.size();
    auto run = std::make_shared<ReconcileRun>();
    run->system = system;
    run->plan = recovery::plan_reconcile(system, std::move(reply.items), held, registry_);
    run->held = std::move(held);
    for (auto* list : {&run->plan.refresh, &run->plan.adopt})
        for (auto& item : *list)
            run->at_cms.insert(item.id);
    reconcile_slice(std::move(run));
}

void Broker::reconcile_slice(std::shared_ptr<ReconcileRun> run) {
    using State = recovery::SystemReconcile::State;
    auto& system = run->system;
    auto& st = reconciles_.at(system);
    auto at = now();
    auto& plan = run->plan;
    auto listed = plan.refresh.size() + plan.adopt.size();
    auto total = listed + plan.gone.size();
    std::vector<Change> changes;
    for (auto end = std::min(total, run->next + kReconcileSlice); run->next < end; ++run->next) {
        auto i = run->next;
        if (i < listed) {
            bool adopting = i >= plan.refresh.size();
            auto& item = adopting ? plan.adopt[i - plan.refresh.size()] : plan.refresh[i];
            // Applied like an event: one that came meanwhile and is newer wins.
            auto r = registry_.apply(item, at);
            if (auto* rejection = std::get_if<channels::Rejection>(&r.result)) {
                if (++run->refused <= 3)
                    spdlog::warn("recovery: {} sent {} in getItems, refused: {}: {}", system,
                                 item.id, rejection->error.field, rejection->error.message);
                continue;
            }
            if (!r.accepted()) continue;
            if (adopting) {
                ++st.adopted;
                audit("reconcileAdopted", item.agent_id.value_or(""), system, item.id,
                      "the CMS has it and the broker did not", details(nullptr, &item, nullptr));
            } else {
                ++st.refreshed;
            }
            for (auto& c : r.changes)
                changes.push_back(std::move(c));
            continue;
        }
        auto& id = plan.gone[i - listed];
        const auto* item = registry_.find(system, id);
        // Changed since the request (an event between two slices): the CMS has it after all.
        if (!item || item->version != run->held[id]) continue;
        auto before = *item;
        std::optional<channels::OrphanRecord> orphan;
        if (const auto* o = registry_.find_orphan(system, id)) orphan = *o;
        audit("reconcileGone", before.agent_id.value_or(""), system, id,
              "the CMS no longer has it: closed here",
              details(&before, nullptr, orphan ? &*orphan : nullptr));
        ++st.gone;
        for (auto& c : registry_.end_locally(system, id, at))
            changes.push_back(std::move(c));
    }
    if (run->next < total) {
        // The rest a slice at a time, each once the journal has this one (a failed commit too:
        // the journal answers it when it gives up or recovers), behind whatever queued
        // meanwhile on the core and in the journal (a CMS's events).
        commit_local(std::move(changes), [this, run = std::move(run)](bool) mutable {
            net::post(core_, [this, run = std::move(run)]() mutable {
                if (!stopping_.load()) return reconcile_slice(std::move(run));
                auto& st = reconciles_.at(run->system);
                st.state = State::failed;
                st.error = "the broker stopped before it was done";
                end_reconcile(run->system);
            });
        });
        return;
    }
    if (run->refused > 3)
        spdlog::warn("recovery: {} more item(s) of {} refused", run->refused - 3, system);
    for (auto& o : registry_.orphans(system)) {
        if (!run->at_cms.count(o.id)) continue;  // changed since the request: the next round
        ++st.alive;
        if (auto c = registry_.classify(system, o.id, channels::Classification::alive, at))
            changes.push_back(std::move(*c));
    }
    st.state = State::done;
    commit_local(std::move(changes));
    spdlog::info(
        "recovery: {} reconciled: {} item(s) at the CMS, {} refreshed, {} adopted, {} closed "
        "as gone, {} orphan(s) alive",
        system, st.cms_items, st.refreshed, st.adopted, st.gone, st.alive);
    end_reconcile(system);
}

void Broker::end_reconcile(const std::string& system) {
    reconciles_.at(system).finished = now();
    auto waiters = std::move(reconcile_waiters_[system]);
    reconcile_waiters_.erase(system);
    if (reconcile_again_.erase(system) && !stopping_.load()) reconcile(system, "orphaned");
    for (auto& w : waiters)
        w();
}

void Broker::recover(RecoveryAction action, std::function<void(RecoveryOutcome)> done) {
    net::post(core_, [this, a = std::move(action), done = std::move(done)]() mutable {
        using Kind = RecoveryAction::Kind;
        RecoveryOutcome out;
        auto fail = [&](int status, std::string code, std::string message) {
            out.status = status;
            out.error_code = std::move(code);
            out.message = std::move(message);
            done(std::move(out));
        };
        if (stopping_.load()) return fail(503, "unavailable", "the broker is stopping");
        auto cfg = config();

        if (a.kind == Kind::logoff) {
            if (!cfg->find_agent(a.agent)) return fail(404, "notFound", "no agent " + a.agent);
            std::set<std::string> systems;
            for (auto& s : registry_.agents())
                if (s.user_id == a.agent && s.state != channels::AgentStateValue::logged_off)
                    systems.insert(s.system);
            if (auto on = hub_.system_of(a.agent); !on.empty()) systems.insert(on);
            if (systems.empty())
                return fail(409, "conflict", a.agent + " is not logged on at any system");
            out.systems.assign(systems.begin(), systems.end());
            channels::ItemFilter f;
            f.agent = a.agent;
            out.orphaned = registry_.items(f);
            if (a.dry_run) {
                out.message = "would log " + a.agent + " off at " + std::to_string(systems.size()) +
                              " system(s) and orphan " + std::to_string(out.orphaned.size()) +
                              " live item(s)";
                return done(std::move(out));
            }
            // Answered once every system has: the items are orphaned where the logoff was taken.
            struct Pending {
                RecoveryOutcome out;
                std::size_t left = 0;
                std::vector<std::string> refused;
                std::vector<std::string> succeeded;
                bool unreachable = false;
            };
            operator_logoffs_[a.agent] = a.actor;
            auto pending = std::make_shared<Pending>();
            pending->out = std::move(out);
            pending->left = systems.size();
            for (auto& system : systems) {
                protocol::CmsRequest r;
                r.op = protocol::CmsOp::logoff;
                r.user_id = a.agent;
                r.reason = a.reason;
                cms_.request(
                    system, std::move(r), [this, a, system, pending, done](cms::CmsResult result) {
                        net::post(
                            core_, [this, a, system, pending, done, result = std::move(result)] {
                                if (auto* f = std::get_if<protocol::CmsFault>(&result)) {
                                    pending->refused.push_back(system + ": " + f->code + ": " +
                                                               f->message);
                                    pending->unreachable = pending->unreachable || unreachable(*f);
                                    audit("operatorLogoffRefused", a.agent, system, {}, a.reason,
                                          json::serialize(
                                              json::object{{"fault", f->code + ": " + f->message}}),
                                          a.actor);
                                } else {
                                    pending->succeeded.push_back(system);
                                    auto keys =
                                        orphan_items(a.agent, system, "operatorLogoff", a.actor);
                                    if (hub_.system_of(a.agent) == system) {
                                        hub_.set_system(a.agent, {});
                                        monitor_.set_system(a.agent, {});
                                    }
                                    json::array orphaned;
                                    for (auto& k : keys)
                                        orphaned.emplace_back(k);
                                    audit("operatorLogoff", a.agent, system, {}, a.reason,
                                          json::serialize(
                                              json::object{{"orphaned", std::move(orphaned)}}),
                                          a.actor);
                                    flush_hub();
                                }
                                if (--pending->left > 0) return;
                                operator_logoffs_.erase(a.agent);
                                auto& o = pending->out;
                                o.systems = pending->succeeded;
                                if (pending->refused.empty()) {
                                    o.message = a.agent + " logged off";
                                } else {
                                    o.status = pending->unreachable ? 503 : 409;
                                    o.error_code = pending->unreachable ? "unavailable" : "refused";
                                    o.message = "the logoff was refused: ";
                                    for (std::size_t i = 0; i < pending->refused.size(); ++i)
                                        o.message += (i ? "; " : "") + pending->refused[i];
                                }
                                done(std::move(o));
                            });
                    });
            }
            return;
        }

        const auto* item = registry_.find(a.system, a.id);
        const auto* orphan = registry_.find_orphan(a.system, a.id);
        if (!item || !orphan)
            return fail(404, "notFound", "no orphan " + a.id + " of system " + a.system);
        out.before = *item;
        out.orphan = *orphan;

        if (a.kind == Kind::close) {
            auto op = closing_op(item->channel);
            out.cms_request = std::string(protocol::to_string(op));
            if (a.dry_run) {
                out.message = "would ask " + a.system + " to " + out.cms_request + " " + a.id +
                              "; the item ends when " + a.system + " reports it";
                return done(std::move(out));
            }
            protocol::CmsRequest r;
            r.op = op;
            r.user_id = item->agent_id.value_or(orphan->agent);
            r.item_id = a.id;
            r.reason = a.reason;
            cms_.request(
                a.system, std::move(r),
                [this, a, out = std::move(out), done](cms::CmsResult result) mutable {
                    net::post(core_, [this, a, out = std::move(out), done,
                                      result = std::move(result)]() mutable {
                        auto evidence = [&](json::object extra) {
                            return details(&*out.before, nullptr, &*out.orphan, std::move(extra));
                        };
                        if (auto* f = std::get_if<protocol::CmsFault>(&result)) {
                            out.status = unreachable(*f) ? 503 : 409;
                            out.error_code = unreachable(*f) ? "unavailable" : "refused";
                            out.message = a.system + " refused " + out.cms_request + " of " + a.id +
                                          ": " + f->code + ": " + f->message + "; nothing changed";
                            audit("orphanCloseRefused", out.before->agent_id.value_or(""), a.system,
                                  a.id, a.reason,
                                  evidence({{"request", out.cms_request},
                                            {"fault", f->code + ": " + f->message}}),
                                  a.actor);
                            return done(std::move(out));
                        }
                        out.message = a.system + " took " + out.cms_request + " of " + a.id +
                                      "; the item ends when " + a.system + " reports it";
                        audit("orphanClose", out.before->agent_id.value_or(""), a.system, a.id,
                              a.reason, evidence({{"request", out.cms_request}}), a.actor);
                        done(std::move(out));
                    });
                });
            return;
        }

        // assign and release change the registry here: answered once that is durable.
        auto commit = [this, &out, &done](std::vector<Change> changes) {
            commit_local(std::move(changes), [out = std::move(out), done](bool ok) mutable {
                if (!ok) {
                    out.status = 503;
                    out.error_code = "unavailable";
                    out.message +=
                        "; but the journal cannot commit now: the change is kept in "
                        "memory and written when it can";
                }
                done(std::move(out));
            });
        };
        if (a.kind == Kind::assign) {
            if (!cfg->find_agent(a.agent)) return fail(404, "notFound", "no agent " + a.agent);
            const auto* state = registry_.find_agent(a.system, a.agent);
            bool on = (state && state->state != channels::AgentStateValue::logged_off) ||
                      hub_.system_of(a.agent) == a.system;
            if (!on) return fail(409, "conflict", a.agent + " is not logged on at " + a.system);
            out.after = *item;
            out.after->agent_id = a.agent;
            if (a.dry_run) {
                out.message = "would give " + a.id + " to " + a.agent;
                return done(std::move(out));
            }
            auto changes = registry_.reassign(a.system, a.id, a.agent, now());
            announce("itemRecovered", *out.after, *out.orphan, "assigned");
            audit("orphanAssign", a.agent, a.system, a.id, a.reason,
                  details(&*out.before, &*out.after, &*out.orphan), a.actor);
            out.message = a.id + " given to " + a.agent;
            return commit(std::move(changes));
        }
        if (a.dry_run) {
            out.message = "would forget " + a.id + " here; " + a.system + " is not told";
            return done(std::move(out));
        }
        auto changes = registry_.release(a.system, a.id);
        announce("itemRecovered", *out.before, *out.orphan, "released");
        audit("orphanRelease", out.before->agent_id.value_or(""), a.system, a.id, a.reason,
              details(&*out.before, nullptr, &*out.orphan), a.actor);
        out.message = a.id + " forgotten here";
        commit(std::move(changes));
    });
}

}  // namespace cb::daemon
