#include "daemon/admin_api.hpp"

#include "daemon/admin_routes.hpp"

#include "channels/item_json.hpp"
#include "daemon/broker.hpp"
#include "protocol/fault.hpp"
#include "protocol/ici_codec.hpp"

#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>

namespace cb::daemon {
namespace json = boost::json;

namespace admin {

transport::Response json_response(http::status status, const json::value& body) {
    transport::Response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = json::serialize(body) + "\n";
    return res;
}

transport::Response error_response(http::status status, std::string code, std::string message) {
    return json_response(
        status, json::object{{"error", json::object{{"code", code}, {"message", message}}}});
}

std::variant<json::object, transport::Response> body_object(
    const transport::Request& request, const std::vector<std::string>& allowed) {
    if (request.body().empty()) return json::object{};
    boost::system::error_code ec;
    auto v = json::parse(request.body(), ec);
    if (ec || !v.is_object())
        return error_response(http::status::bad_request, "badRequest",
                              "the body must be a JSON object");
    for (auto& [k, ignored] : v.as_object())
        if (std::find(allowed.begin(), allowed.end(), std::string(k)) == allowed.end()) {
            std::string names;
            for (auto& a : allowed)
                names += (names.empty() ? "" : ", ") + a;
            return error_response(http::status::bad_request, "badRequest",
                                  "unknown field \"" + std::string(k) + "\" (" + names + ")");
        }
    return std::move(v.as_object());
}

}  // namespace admin

namespace {
using admin::Call;
using admin::error_response;
using admin::json_response;

/// Decodes %XX escapes (and '+' in a query); nullopt if an escape is broken.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return std::nullopt;
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

/// The most audit records one request returns.
constexpr std::size_t kMaxAuditRecords = 10000;

/// What the heartbeat monitor knows of an agent, for the admin API.
json::object heartbeat_json(const heartbeat::AgentView& v,
                            std::chrono::steady_clock::time_point steady_now,
                            std::chrono::system_clock::time_point wall_now) {
    auto silent = steady_now - v.last_contact.at;
    auto last = wall_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(silent);
    return json::object{
        {"state", heartbeat::to_string(v.state)},
        {"lastContact", channels::iso_utc(last)},
        {"silentSeconds",
         std::chrono::duration_cast<std::chrono::milliseconds>(silent).count() / 1000.0},
        {"contact", heartbeat::to_string(v.last_contact.kind)},
        {"peer", v.last_contact.peer},
        {"connected", v.attached},
        {"profile", v.profile},
        {"mode", v.mode == config::HeartbeatMode::watchdog ? "watchdog" : "onContact"}};
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    std::size_t start = 1;
    while (start <= path.size()) {
        auto end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        parts.emplace_back(path.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

void status(Call& c) {
    return c.broker.on_core_state([&b = c.broker, config = c.config,
                                   respond =
                                       std::move(c.respond)](Broker::CoreState& core) mutable {
        auto& reg = core.registry;
        json::object counts{
            {"items", reg.item_count()},           {"agents", reg.agent_count()},
            {"desktops", b.desktop_connections()}, {"desktopSessions", b.desktop_stats().sessions},
            {"orphans", reg.orphan_count()},       {"endedRemembered", reg.ended_count()}};
        json::array systems;
        for (auto& link : b.cms().status()) {
            json::object s{{"id", link.id}, {"available", nullptr}};
            if (link.available) s["available"] = *link.available;
            if (auto it = reg.subscriptions().find(link.id);
                it != reg.subscriptions().end() && it->second.ended)
                s["subscription"] = "ended";
            systems.push_back(std::move(s));
        }
        json::array listeners;
        for (auto& l : b.listeners())
            listeners.push_back(json::object{{"service", config::to_string(l.service)},
                                             {"address", l.address},
                                             {"port", l.port},
                                             {"tls", l.tls}});
        if (!config->admin_socket.path.empty())
            listeners.push_back(
                json::object{{"service", "admin"}, {"path", config->admin_socket.path}});
        auto js = b.journal().stats();
        auto jh = b.journal().health();
        json::object journal{{"backend", b.journal().backend()},
                             {"path", b.journal().location()},
                             {"sync", config::to_string(config->journal.sync)},
                             {"healthy", b.journal().healthy()},
                             {"state", recovery::to_string(jh.state)},
                             {"commits", js.commits},
                             {"changes", js.changes},
                             {"walBytes", js.wal_bytes}};
        if (jh.state != recovery::JournalHealth::State::ok) journal["reason"] = jh.reason;
        json::object status{
            {"version", COMMBROKER_VERSION},
            {"node", config->node.id},
            {"uptimeSeconds", b.uptime().count()},
            {"ready", b.ready()},
            {"listeners", std::move(listeners)},
            {"counts", std::move(counts)},
            {"systems", std::move(systems)},
            {"journal", std::move(journal)},
            {"reconciliation", admin::reconciliation_json(core.reconciles)},
        };
        respond(json_response(http::status::ok, status));
    });
}

void items(Call& c) {
    channels::ItemFilter filter;
    for (auto& [k, v] : c.params) {
        if (k == "agent")
            filter.agent = v;
        else if (k == "system")
            filter.system = v;
        else if (k == "channel") {
            filter.channel = channels::channel_from_string(v);
            if (!filter.channel)
                return c.respond(
                    error_response(http::status::bad_request, "badRequest",
                                   "channel must be phone, chat or email, not \"" + v + "\""));
        } else if (k == "state") {
            filter.state = channels::state_from_string(v);
            if (!filter.state)
                return c.respond(error_response(http::status::bad_request, "badRequest",
                                                "no item state \"" + v + "\""));
        } else {
            return c.respond(
                error_response(http::status::bad_request, "badRequest",
                               "unknown filter \"" + k + "\" (agent, channel, state, system)"));
        }
    }
    return c.broker.on_core(
        [filter, respond = std::move(c.respond)](channels::Registry& reg) mutable {
            auto items = reg.items(filter);
            json::array out;
            out.reserve(items.size());
            for (auto& i : items)
                out.push_back(channels::to_json(i));
            respond(json_response(http::status::ok, json::object{{"items", std::move(out)}}));
        });
}

void item(Call& c) {
    c.broker.on_core([system = c.args[0], id = c.args[1],
                      respond = std::move(c.respond)](channels::Registry& reg) mutable {
        const auto* item = reg.find(system, id);
        if (!item)
            return respond(error_response(http::status::not_found, "notFound",
                                          "no live item " + id + " of system " + system));
        respond(json_response(http::status::ok, channels::to_json(*item)));
    });
}

void agents(Call& c) {
    return c.broker.on_core_state([id = c.args.empty() ? std::string() : c.args[0],
                                   respond =
                                       std::move(c.respond)](Broker::CoreState& core) mutable {
        auto steady_now = std::chrono::steady_clock::now();
        auto wall_now = std::chrono::system_clock::now();
        json::array out;
        for (auto& a : core.registry.agents()) {
            if (!id.empty() && a.user_id != id) continue;
            auto o = channels::to_json(a);
            if (auto v = core.monitor.view(a.user_id))
                o["heartbeat"] = heartbeat_json(*v, steady_now, wall_now);
            out.push_back(std::move(o));
        }
        if (!id.empty() && out.empty())
            return respond(error_response(http::status::not_found, "notFound", "no agent " + id));
        // One agent ID may be known at several systems: /agents/{id} lists each.
        respond(json_response(http::status::ok, json::object{{"agents", std::move(out)}}));
    });
}

void audit(Call& c) {
    recovery::AuditQuery q;
    for (auto& [k, v] : c.params) {
        if (k == "agent") {
            q.agent = v;
        } else if (k == "item") {
            q.item = v;
        } else if (k == "since") {
            auto d = config::parse_duration(v);
            if (!d)
                return c.respond(error_response(
                    http::status::bad_request, "badRequest",
                    "since must be a duration such as 90s, 15m or 2h (at most 12000d), "
                    "not \"" +
                        v + "\""));
            q.since = std::chrono::system_clock::now() - *d;
        } else if (k == "limit") {
            char* end = nullptr;
            auto n = std::strtoull(v.c_str(), &end, 10);
            if (v.empty() || *end || n < 1 || n > kMaxAuditRecords)
                return c.respond(error_response(
                    http::status::bad_request, "badRequest",
                    "limit must be a number from 1 to " + std::to_string(kMaxAuditRecords)));
            q.limit = n;
        } else {
            return c.respond(
                error_response(http::status::bad_request, "badRequest",
                               "unknown filter \"" + k + "\" (agent, item, since, limit)"));
        }
    }
    // On this session's thread: the journal's own thread is never asked to wait for an operator.
    std::vector<channels::AuditStored> records;
    try {
        records = c.broker.journal().read_audit(q);
    } catch (const std::exception& e) {
        return c.respond(
            error_response(http::status::service_unavailable, "unavailable", e.what()));
    }
    json::array out;
    for (auto& r : records) {
        json::object o{{"at", channels::iso_utc(r.at)},
                       {"action", r.action},
                       {"agent", r.agent},
                       {"system", r.system},
                       {"item", r.item},
                       {"reason", r.reason},
                       {"actor", r.actor}};
        boost::system::error_code ec;
        auto details = json::parse(r.details, ec);
        o["details"] = ec ? json::value(r.details) : std::move(details);
        out.push_back(std::move(o));
    }
    return c.respond(json_response(http::status::ok, json::object{{"entries", std::move(out)}}));
}

void systems(Call& c) {
    return c.broker.on_core([&b = c.broker,
                             respond = std::move(c.respond)](channels::Registry& reg) mutable {
        json::array out;
        for (auto& link : b.cms().status()) {
            json::object s{
                {"id", link.id},        {"url", link.url},           {"available", nullptr},
                {"lastProbe", nullptr}, {"name", link.name},         {"cmsVersion", link.version},
                {"state", link.state},  {"requests", link.requests}, {"failures", link.failures}};
            if (link.available) s["available"] = *link.available;
            if (link.last_probe) s["lastProbe"] = channels::iso_utc(*link.last_probe);
            if (!link.last_error.empty()) s["lastError"] = link.last_error;
            auto it = reg.subscriptions().find(link.id);
            bool ended = it != reg.subscriptions().end() && it->second.ended;
            s["subscription"] = ended ? "ended" : link.subscribed ? "active" : "none";
            if (ended) s["subscriptionEndReason"] = it->second.reason;
            out.push_back(std::move(s));
        }
        respond(json_response(http::status::ok, json::object{{"systems", std::move(out)}}));
    });
}

/// 400 invalidConfig with every error of the file.
transport::Response invalid_config(const char* message, const std::vector<std::string>& errors) {
    json::array errs;
    for (auto& e : errors)
        errs.emplace_back(e);
    return json_response(http::status::bad_request,
                         json::object{{"error", json::object{{"code", "invalidConfig"},
                                                             {"message", message},
                                                             {"errors", std::move(errs)}}}});
}

void reload(Call& c) {
    bool dry_run = c.params.count("dryRun") && c.params["dryRun"] != "false";
    if (dry_run) {
        auto parsed = config::load_file(c.config->source);
        if (!parsed.config)
            return c.respond(invalid_config("the config has errors", parsed.errors));
        json::array kept;
        for (auto& k : config::reload_diff(*c.config, *parsed.config))
            kept.emplace_back(k);
        return c.respond(json_response(
            http::status::ok,
            json::object{{"reloaded", false}, {"dryRun", true}, {"kept", std::move(kept)}}));
    }
    auto r = c.broker.reload();
    if (!r.ok)
        return c.respond(
            invalid_config("the config has errors; the running config stays", r.errors));
    json::array kept;
    for (auto& k : r.kept)
        kept.emplace_back(k);
    return c.respond(json_response(http::status::ok,
                                   json::object{{"reloaded", true}, {"kept", std::move(kept)}}));
}

/// One route: a method and a path under /admin/v1 whose "{}" segments are arguments.
struct Route {
    http::verb method;
    std::vector<std::string_view> pattern;
    void (*handler)(Call&);
};

const std::vector<Route>& routes() {
    using V = http::verb;
    static const std::vector<Route> table{
        {V::get, {"status"}, status},
        {V::get, {"items"}, items},
        {V::get, {"items", "{}", "{}"}, item},
        {V::get, {"agents"}, agents},
        {V::get, {"agents", "{}"}, agents},
        {V::post, {"agents", "{}", "logoff"}, admin::agent_logoff},
        {V::get, {"systems"}, systems},
        {V::get, {"audit"}, audit},
        {V::post, {"reload"}, reload},
        {V::get, {"recovery", "orphans"}, admin::orphans},
        {V::get, {"recovery", "orphans", "{}", "{}"}, admin::orphan},
        {V::post, {"recovery", "reconcile"}, admin::reconcile},
        {V::post, {"recovery", "orphans", "{}", "{}", "close"}, admin::orphan_close},
        {V::post, {"recovery", "orphans", "{}", "{}", "assign"}, admin::orphan_assign},
        {V::post, {"recovery", "orphans", "{}", "{}", "release"}, admin::orphan_release},
    };
    return table;
}

/// The route's arguments if `path` matches its pattern.
std::optional<std::vector<std::string>> match(const Route& r,
                                              const std::vector<std::string>& path) {
    if (r.pattern.size() != path.size()) return std::nullopt;
    std::vector<std::string> args;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (r.pattern[i] == "{}")
            args.push_back(path[i]);
        else if (r.pattern[i] != path[i])
            return std::nullopt;
    }
    return args;
}

}  // namespace

void AdminApi::handle(transport::Request&& req, const transport::PeerInfo& peer,
                      transport::Respond respond) {
    std::string_view target = req.target();
    auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;

    if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
        if (!get)
            return respond(
                error_response(http::status::method_not_allowed, "methodNotAllowed", "use GET"));
        if (path == "/healthz") {
            auto why = broker_.unhealthy();
            transport::Response res{why ? http::status::service_unavailable : http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = why ? "unhealthy: " + *why + "\n" : "ok\n";
            return respond(std::move(res));
        }
        if (path == "/readyz") {
            auto why = broker_.not_ready_reason();
            transport::Response res{
                why.empty() ? http::status::ok : http::status::service_unavailable, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = why.empty() ? "ready\n" : "not ready: " + why + "\n";
            return respond(std::move(res));
        }
        return broker_.on_core(
            [this, respond = std::move(respond)](channels::Registry& reg) mutable {
                auto items = reg.item_count(), agents = reg.agent_count();
                transport::Response res{http::status::ok, 11};
                res.set(http::field::content_type, "text/plain; version=0.0.4");
                res.body() = admin::metrics_text(broker_, items, agents);
                respond(std::move(res));
            });
    }

    if (path.substr(0, 10) != "/admin/v1/")
        return respond(error_response(http::status::not_found, "notFound", "no such resource"));

    if (peer.local_socket) return route(std::move(req), "admin socket", std::move(respond));
    auto unauthorized = [] {
        auto res = error_response(http::status::unauthorized, "unauthorized",
                                  "an operator's credentials are required");
        res.set(http::field::www_authenticate,
                "Basic realm=\"commbroker admin\", charset=\"UTF-8\"");
        return res;
    };
    auto creds = parse_basic(req[http::field::authorization]);
    if (!creds) return respond(unauthorized());
    auto config = broker_.config();
    const auto* op = config->find_operator(creds->user);
    // Known credentials pass at once; others are checked off this thread, a failure answered
    // late and a guessing source refused (LogonDoor).
    auto request = std::make_shared<transport::Request>(std::move(req));
    auto user = creds->user;
    broker_.admin_door().check(
        peer.ip, creds->user, std::move(creds->password), op ? &op->password_hash : nullptr,
        [this, request, user, unauthorized,
         respond = std::move(respond)](LogonDoor::Result r) mutable {
            switch (r.verdict) {
                case LogonDoor::Verdict::ok:
                    return route(std::move(*request), "operator " + user, std::move(respond));
                case LogonDoor::Verdict::wrong:
                    return respond(unauthorized());
                case LogonDoor::Verdict::locked:
                case LogonDoor::Verdict::busy: {
                    bool locked = r.verdict == LogonDoor::Verdict::locked;
                    auto res = error_response(
                        locked ? http::status::too_many_requests
                               : http::status::service_unavailable,
                        locked ? "tooManyAttempts" : "busy",
                        locked ? "too many failed logons from this address or for this user: try "
                                 "again later"
                               : "too many logons are waiting for a password check: try again "
                                 "shortly");
                    res.set(http::field::retry_after, std::to_string(r.retry_after.count()));
                    return respond(std::move(res));
                }
            }
        });
}

void AdminApi::route(transport::Request&& req, std::string actor, transport::Respond respond) {
    auto config = broker_.config();
    std::string_view target = req.target();
    auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    std::string_view query =
        qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    auto parts = split_path(path.substr(9));  // after "/admin/v1"
    std::vector<std::string> decoded;
    for (auto& p : parts) {
        auto d = percent_decode(p, false);
        if (!d)
            return respond(error_response(http::status::bad_request, "badRequest",
                                          "a broken %-escape in the path"));
        decoded.push_back(std::move(*d));
    }
    std::map<std::string, std::string> params;
    for (std::size_t start = 0; start < query.size();) {
        auto end = query.find('&', start);
        if (end == std::string_view::npos) end = query.size();
        auto pair = query.substr(start, end - start);
        auto eq = pair.find('=');
        auto k = percent_decode(pair.substr(0, eq), true);
        auto v = percent_decode(
            eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!k || !v)
            return respond(error_response(http::status::bad_request, "badRequest",
                                          "a broken %-escape in the query"));
        if (!k->empty()) params[*k] = *v;
        start = end + 1;
    }

    // The route table: the first route whose path and method match; a path that matches
    // with another method is 405 with the methods it takes.
    std::string allowed;
    auto method = req.method() == http::verb::head ? http::verb::get : req.method();
    for (auto& r : routes()) {
        auto args = match(r, decoded);
        if (!args) continue;
        if (r.method != method) {
            auto name = std::string(http::to_string(r.method));
            if (allowed.find(name) == std::string::npos)
                allowed += (allowed.empty() ? "" : ", ") + name;
            continue;
        }
        Call call{broker_, req,   std::move(*args),  std::move(params),
                  config,  actor, std::move(respond)};
        return r.handler(call);
    }
    if (!allowed.empty()) {
        auto res = error_response(http::status::method_not_allowed, "methodNotAllowed",
                                  "this resource takes " + allowed);
        res.set(http::field::allow, allowed);
        return respond(std::move(res));
    }
    respond(error_response(http::status::not_found, "notFound",
                           "no such resource: " + std::string(path)));
}

}  // namespace cb::daemon
