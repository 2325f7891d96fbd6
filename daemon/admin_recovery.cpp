// The admin API's recovery routes (PROTOCOL.md section 4): orphans, reconciliation, the
// operators' close, assign and release, and an agent's logoff. The broker does the work on its
// core (daemon/broker_recovery.cpp); here requests are checked and answers written.
#include "channels/item_json.hpp"
#include "daemon/admin_routes.hpp"
#include "daemon/broker.hpp"

#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cb::daemon::admin {
namespace json = boost::json;

namespace {

/// The longest reason an operator may give.
constexpr std::size_t kMaxReason = 1024;

}  // namespace

json::object reconciliation_json(const recovery::ReconcileBook& book) {
    json::array systems;
    for (auto& [id, s] : book.systems()) {
        json::object o{{"system", id},
                       {"state", recovery::to_string(s.state)},
                       {"trigger", s.trigger},
                       {"startedAt", nullptr},
                       {"finishedAt", nullptr},
                       {"cmsItems", s.cms_items},
                       {"refreshed", s.refreshed},
                       {"adopted", s.adopted},
                       {"gone", s.gone},
                       {"alive", s.alive},
                       {"unknown", s.unknown}};
        if (s.started) o["startedAt"] = channels::iso_utc(*s.started);
        if (s.finished) o["finishedAt"] = channels::iso_utc(*s.finished);
        if (!s.error.empty()) o["error"] = s.error;
        systems.push_back(std::move(o));
    }
    return json::object{{"state", book.overall()}, {"systems", std::move(systems)}};
}

namespace {

http::status status_of(int code) {
    return static_cast<http::status>(code);
}

json::value item_or_null(const std::optional<channels::Item>& i) {
    return i ? json::value(channels::to_json(*i)) : json::value(nullptr);
}

/// Reads `reason`, `dryRun` (body or query) and, for assign, `agent`; then runs the action.
void run(Call& c, Broker::RecoveryAction action, bool needs_agent) {
    std::vector<std::string> allowed{"reason", "dryRun"};
    if (needs_agent) allowed.push_back("agent");
    auto parsed = body_object(c.request, allowed);
    if (auto* bad = std::get_if<transport::Response>(&parsed)) return c.respond(std::move(*bad));
    auto& body = std::get<json::object>(parsed);
    auto text = [&](const char* name) -> std::optional<std::string> {
        auto* v = body.if_contains(name);
        if (!v) return std::string();
        if (!v->is_string()) return std::nullopt;
        return std::string(v->as_string());
    };
    auto reason = text("reason");
    auto agent = text("agent");
    if (!reason || !agent)
        return c.respond(error_response(http::status::bad_request, "badRequest",
                                        "reason and agent must be strings"));
    if (reason->empty() && action.kind != Broker::RecoveryAction::Kind::logoff)
        return c.respond(error_response(http::status::bad_request, "badRequest",
                                        "a reason is required: it goes into the audit log"));
    if (std::any_of(reason->begin(), reason->end(),
                    [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; }))
        return c.respond(error_response(http::status::bad_request, "badRequest",
                                        "the reason must be one line without control characters"));
    if (reason->size() > kMaxReason)
        return c.respond(
            error_response(http::status::bad_request, "badRequest",
                           "the reason is longer than " + std::to_string(kMaxReason) + " bytes"));
    if (needs_agent && agent->empty())
        return c.respond(error_response(http::status::bad_request, "badRequest",
                                        "agent is required: who gets the item"));
    if (auto* d = body.if_contains("dryRun")) {
        if (!d->is_bool())
            return c.respond(error_response(http::status::bad_request, "badRequest",
                                            "dryRun must be true or false"));
        action.dry_run = d->as_bool();
    }
    if (auto it = c.params.find("dryRun"); it != c.params.end())
        action.dry_run = action.dry_run || it->second != "false";
    action.reason = reason->empty() ? "operator" : *reason;
    if (needs_agent) action.agent = *agent;
    action.actor = c.actor;
    if (!action.dry_run)
        spdlog::info("admin: {} asks to {} {} ({})", c.actor, c.request.target(), action.id,
                     action.reason);
    c.broker.recover(
        std::move(action), [respond = std::move(c.respond)](Broker::RecoveryOutcome out) mutable {
            json::object o{{"ok", out.status == 200},
                           {"message", out.message},
                           {"before", item_or_null(out.before)},
                           {"after", item_or_null(out.after)}};
            if (out.orphan) o["orphan"] = channels::to_json(*out.before, *out.orphan);
            if (!out.cms_request.empty()) o["cmsRequest"] = out.cms_request;
            if (!out.systems.empty()) {
                json::array systems;
                for (auto& s : out.systems)
                    systems.emplace_back(s);
                o["systems"] = std::move(systems);
            }
            if (!out.orphaned.empty()) {
                json::array items;
                for (auto& i : out.orphaned)
                    items.push_back(channels::to_json(i));
                o["orphaned"] = std::move(items);
            }
            if (out.status != 200)
                o["error"] = json::object{{"code", out.error_code}, {"message", out.message}};
            respond(json_response(status_of(out.status), o));
        });
}

Broker::RecoveryAction orphan_action(Call& c, Broker::RecoveryAction::Kind kind) {
    Broker::RecoveryAction a;
    a.kind = kind;
    a.system = c.args[0];
    a.id = c.args[1];
    return a;
}

}  // namespace

void orphans(Call& c) {
    std::string system, agent;
    std::optional<channels::Classification> classification;
    for (auto& [k, v] : c.params) {
        if (k == "system") {
            system = v;
        } else if (k == "agent") {
            agent = v;
        } else if (k == "classification") {
            classification = channels::classification_from_string(v);
            if (!classification)
                return c.respond(error_response(
                    http::status::bad_request, "badRequest",
                    "classification must be unchecked, alive, gone or unknown, not \"" + v + "\""));
        } else {
            return c.respond(
                error_response(http::status::bad_request, "badRequest",
                               "unknown filter \"" + k + "\" (system, agent, classification)"));
        }
    }
    c.broker.on_core_state([system, agent, classification,
                            respond = std::move(c.respond)](Broker::CoreState& core) mutable {
        json::array out;
        for (auto& o : core.registry.orphans(system)) {
            if (!agent.empty() && o.agent != agent) continue;
            if (classification && o.classification != *classification) continue;
            if (const auto* item = core.registry.find(o.system, o.id))
                out.push_back(channels::to_json(*item, o));
        }
        respond(
            json_response(http::status::ok,
                          json::object{{"orphans", std::move(out)},
                                       {"reconciliation", reconciliation_json(core.reconciles)}}));
    });
}

void orphan(Call& c) {
    c.broker.on_core_state([system = c.args[0], id = c.args[1],
                            respond = std::move(c.respond)](Broker::CoreState& core) mutable {
        const auto* o = core.registry.find_orphan(system, id);
        const auto* item = core.registry.find(system, id);
        if (!o || !item)
            return respond(error_response(http::status::not_found, "notFound",
                                          "no orphan " + id + " of system " + system));
        respond(json_response(http::status::ok, channels::to_json(*item, *o)));
    });
}

void reconcile(Call& c) {
    auto parsed = body_object(c.request, {"system"});
    if (auto* bad = std::get_if<transport::Response>(&parsed)) return c.respond(std::move(*bad));
    auto& body = std::get<json::object>(parsed);
    std::string system;
    if (auto* s = body.if_contains("system")) {
        if (!s->is_string())
            return c.respond(
                error_response(http::status::bad_request, "badRequest", "system must be a string"));
        system = std::string(s->as_string());
    }
    if (auto it = c.params.find("system"); it != c.params.end()) system = it->second;
    if (!system.empty() && !c.config->find_cms(system))
        return c.respond(
            error_response(http::status::not_found, "notFound", "no CMS system " + system));
    auto& broker = c.broker;
    broker.reconcile(system, "operator", [&broker, respond = std::move(c.respond)]() mutable {
        // On the core: the outcome of every system asked.
        broker.on_core_state([respond = std::move(respond)](Broker::CoreState& core) mutable {
            auto o = reconciliation_json(core.reconciles);
            o["orphans"] = core.registry.orphan_count();
            respond(json_response(http::status::ok, o));
        });
    });
}

void orphan_close(Call& c) {
    run(c, orphan_action(c, Broker::RecoveryAction::Kind::close), false);
}

void orphan_assign(Call& c) {
    run(c, orphan_action(c, Broker::RecoveryAction::Kind::assign), true);
}

void orphan_release(Call& c) {
    run(c, orphan_action(c, Broker::RecoveryAction::Kind::release), false);
}

void agent_logoff(Call& c) {
    Broker::RecoveryAction a;
    a.kind = Broker::RecoveryAction::Kind::logoff;
    a.agent = c.args[0];
    run(c, std::move(a), false);
}

}  // namespace cb::daemon::admin
