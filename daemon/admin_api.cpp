#include "daemon/admin_api.hpp"

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

namespace {

Response json_response(http::status status, const json::value& body) {
    Response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = json::serialize(body) + "\n";
    return res;
}

Response error_response(http::status status, std::string code, std::string message) {
    return json_response(
        status, json::object{{"error", json::object{{"code", code}, {"message", message}}}});
}

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

std::string metrics_text(Broker& b, std::size_t items, std::size_t agents) {
    std::string out = b.soap_metrics().render();
    out += b.desktop_latency().render(
        "commbroker_desktop_event_latency_seconds",
        "From the SOAP request that caused an event to its desktop frame written.");
    auto d = b.desktop_stats();
    auto gauge = [&](const char* name, const char* help, std::uint64_t v, const char* type) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
               name + " " + std::to_string(v) + "\n";
    };
    gauge("commbroker_desktop_connections", "Open desktop WebSocket connections.",
          b.desktop_connections(), "gauge");
    gauge("commbroker_desktop_sessions", "Desktop sessions, connected or waiting for a resume.",
          d.sessions, "gauge");
    gauge("commbroker_desktop_queued_frames", "Frames waiting for desktops.", d.queued, "gauge");
    gauge("commbroker_desktop_events_total", "Events routed to desktops.", d.counters.events_routed,
          "counter");
    gauge("commbroker_desktop_coalesced_total",
          "Unsent item snapshots replaced by a newer one for a desktop over budget.",
          d.counters.frames_coalesced, "counter");
    gauge("commbroker_desktop_overload_total", "overload frames sent.", d.counters.overloads,
          "counter");
    gauge("commbroker_desktop_too_slow_total", "Desktops cut off with bye tooSlow.",
          d.counters.too_slow, "counter");
    gauge("commbroker_desktop_resumes_total", "Sessions resumed with their missed events.",
          d.counters.resumes, "counter");
    gauge("commbroker_desktop_resyncs_total", "Resumes answered with a resync snapshot.",
          d.counters.resyncs, "counter");
    out +=
        "# HELP commbroker_cms_available CMS availability (1 up, 0 down, -1 unknown).\n"
        "# TYPE commbroker_cms_available gauge\n";
    for (auto& s : b.cms().status())
        out += "commbroker_cms_available{system=\"" + s.id + "\"} " +
               std::to_string(s.available ? (*s.available ? 1 : 0) : -1) + "\n";
    auto js = b.journal().stats();
    out +=
        "# HELP commbroker_journal_commits_total Journal transactions committed.\n"
        "# TYPE commbroker_journal_commits_total counter\ncommbroker_journal_commits_total " +
        std::to_string(js.commits) + "\n";
    out +=
        "# HELP commbroker_journal_changes_total Changes committed to the journal.\n"
        "# TYPE commbroker_journal_changes_total counter\ncommbroker_journal_changes_total " +
        std::to_string(js.changes) + "\n";
    out +=
        "# HELP commbroker_journal_failures_total Journal transactions that failed.\n"
        "# TYPE commbroker_journal_failures_total counter\ncommbroker_journal_failures_total " +
        std::to_string(js.failures) + "\n";
    out +=
        "# HELP commbroker_journal_commit_seconds_max Longest journal commit.\n"
        "# TYPE commbroker_journal_commit_seconds_max "
        "gauge\ncommbroker_journal_commit_seconds_max " +
        std::to_string(static_cast<double>(js.commit_micros_max) / 1e6) + "\n";
    out +=
        "# HELP commbroker_journal_wal_bytes Size of the journal's WAL after the last commit.\n"
        "# TYPE commbroker_journal_wal_bytes gauge\ncommbroker_journal_wal_bytes " +
        std::to_string(js.wal_bytes) + "\n";
    out +=
        "# HELP commbroker_journal_checkpoints_total WAL checkpoints (background and forced).\n"
        "# TYPE commbroker_journal_checkpoints_total counter\n"
        "commbroker_journal_checkpoints_total{kind=\"background\"} " +
        std::to_string(js.checkpoints) +
        "\ncommbroker_journal_checkpoints_total{kind=\"forced\"} " +
        std::to_string(js.forced_checkpoints) + "\n";
    out +=
        "# HELP commbroker_journal_healthy 1 while commits succeed, 0 while failing or lost.\n"
        "# TYPE commbroker_journal_healthy gauge\ncommbroker_journal_healthy " +
        std::string(b.journal().healthy() ? "1" : "0") + "\n";
    auto pw = b.passwords().counters();
    out +=
        "# HELP commbroker_password_checks_total Desktop logon password checks: answered from "
        "the cache, hashed (PBKDF2), refused because too many were waiting.\n"
        "# TYPE commbroker_password_checks_total counter\n"
        "commbroker_password_checks_total{result=\"cached\"} " +
        std::to_string(pw.cached) + "\ncommbroker_password_checks_total{result=\"hashed\"} " +
        std::to_string(pw.hashed) + "\ncommbroker_password_checks_total{result=\"busy\"} " +
        std::to_string(pw.busy) + "\n";
    out +=
        "# HELP commbroker_password_queue Logons waiting for a password check.\n"
        "# TYPE commbroker_password_queue gauge\ncommbroker_password_queue " +
        std::to_string(b.passwords().queued()) + "\n";
    auto& h = b.http().counters();
    out +=
        "# HELP commbroker_http_connections Open HTTP connections (ici and admin).\n"
        "# TYPE commbroker_http_connections gauge\ncommbroker_http_connections " +
        std::to_string(b.http().connections()) + "\n";
    out +=
        "# HELP commbroker_http_closed_total HTTP connections ended or refused, by reason.\n"
        "# TYPE commbroker_http_closed_total counter\n";
    out += "commbroker_http_closed_total{reason=\"overLimit\"} " +
           std::to_string(h.refused_over_limit.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"bodyTooLarge\"} " +
           std::to_string(h.body_too_large.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"badRequest\"} " +
           std::to_string(h.bad_requests.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"timeout\"} " + std::to_string(h.timeouts.load()) +
           "\n";
    auto ds = b.desktop_stats();
    out +=
        "# HELP commbroker_heartbeat_watched Agents the heartbeat monitor watches.\n"
        "# TYPE commbroker_heartbeat_watched gauge\ncommbroker_heartbeat_watched " +
        std::to_string(ds.watched) + "\n";
    out +=
        "# HELP commbroker_heartbeat_suspects Agents suspect now (silent over lag).\n"
        "# TYPE commbroker_heartbeat_suspects gauge\ncommbroker_heartbeat_suspects " +
        std::to_string(ds.suspects) + "\n";
    out +=
        "# HELP commbroker_heartbeat_actions_total What the heartbeat monitor did, by action.\n"
        "# TYPE commbroker_heartbeat_actions_total counter\n";
    for (auto [name, n] : {std::pair<const char*, std::uint64_t>{"suspect", ds.heartbeat.suspects},
                           {"cleared", ds.heartbeat.cleared},
                           {"logoff", ds.heartbeat.lost},
                           {"expired", ds.heartbeat.expired},
                           {"reject", ds.heartbeat.rejected}})
        out += "commbroker_heartbeat_actions_total{action=\"" + std::string(name) + "\"} " +
               std::to_string(n) + "\n";
    out +=
        "# HELP commbroker_cms_outages_total Times a CMS became unavailable.\n"
        "# TYPE commbroker_cms_outages_total counter\ncommbroker_cms_outages_total " +
        std::to_string(b.cms_outages()) + "\n";
    out +=
        "# HELP commbroker_orphans Live items orphaned (their agent was lost).\n"
        "# TYPE commbroker_orphans gauge\ncommbroker_orphans " +
        std::to_string(ds.orphans) + "\n";
    out +=
        "# HELP commbroker_items Live items in the registry.\n# TYPE commbroker_items "
        "gauge\ncommbroker_items " +
        std::to_string(items) + "\n";
    out +=
        "# HELP commbroker_agents Agent states reported by CMSs.\n# TYPE commbroker_agents "
        "gauge\ncommbroker_agents " +
        std::to_string(agents) + "\n";
    out +=
        "# HELP commbroker_ready 1 when the broker takes events.\n# TYPE commbroker_ready "
        "gauge\ncommbroker_ready " +
        std::string(b.ready() ? "1" : "0") + "\n";
    return out;
}

}  // namespace

void AdminApi::handle(Request&& req, const PeerInfo& peer, Respond respond) {
    std::string_view target = req.target();
    auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    std::string_view query =
        qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;

    if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
        if (!get)
            return respond(
                error_response(http::status::method_not_allowed, "methodNotAllowed", "use GET"));
        if (path == "/healthz") {
            auto why = broker_.unhealthy();
            Response res{why ? http::status::service_unavailable : http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = why ? "unhealthy: " + *why + "\n" : "ok\n";
            return respond(std::move(res));
        }
        if (path == "/readyz") {
            auto why = broker_.not_ready_reason();
            Response res{why.empty() ? http::status::ok : http::status::service_unavailable, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = why.empty() ? "ready\n" : "not ready: " + why + "\n";
            return respond(std::move(res));
        }
        return broker_.on_core(
            [this, respond = std::move(respond)](channels::Registry& reg) mutable {
                auto items = reg.item_count(), agents = reg.agent_count();
                Response res{http::status::ok, 11};
                res.set(http::field::content_type, "text/plain; version=0.0.4");
                res.body() = metrics_text(broker_, items, agents);
                respond(std::move(res));
            });
    }

    if (path.substr(0, 10) != "/admin/v1/")
        return respond(error_response(http::status::not_found, "notFound", "no such resource"));

    auto config = broker_.config();
    if (!peer.local_socket) {
        auto creds = parse_basic(req[http::field::authorization]);
        const auto* op = creds ? config->find_operator(creds->user) : nullptr;
        if (!op || !broker_.credentials().verify(creds->user, creds->password, op->password_hash)) {
            spdlog::warn("admin: refused credentials{} from {}",
                         creds ? " of user " + creds->user : std::string(), peer.address);
            auto res = error_response(http::status::unauthorized, "unauthorized",
                                      "an operator's credentials are required");
            res.set(http::field::www_authenticate,
                    "Basic realm=\"commbroker admin\", charset=\"UTF-8\"");
            return respond(std::move(res));
        }
    }

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
    auto method_not_allowed = [&](const char* allowed) {
        auto res = error_response(http::status::method_not_allowed, "methodNotAllowed",
                                  std::string("this resource takes ") + allowed);
        res.set(http::field::allow, allowed);
        return res;
    };

    const std::string& head = decoded[0];
    if (head == "status" && decoded.size() == 1) {
        if (!get) return respond(method_not_allowed("GET"));
        return broker_.on_core(
            [this, config, respond = std::move(respond)](channels::Registry& reg) mutable {
                json::object counts{{"items", reg.item_count()},
                                    {"agents", reg.agent_count()},
                                    {"desktops", broker_.desktop_connections()},
                                    {"desktopSessions", broker_.desktop_stats().sessions},
                                    {"orphans", broker_.desktop_stats().orphans},
                                    {"endedRemembered", reg.ended_count()}};
                json::array systems;
                for (auto& link : broker_.cms().status()) {
                    json::object s{{"id", link.id}, {"available", nullptr}};
                    if (link.available) s["available"] = *link.available;
                    if (auto it = reg.subscriptions().find(link.id);
                        it != reg.subscriptions().end() && it->second.ended)
                        s["subscription"] = "ended";
                    systems.push_back(std::move(s));
                }
                json::array listeners;
                for (auto& l : broker_.listeners())
                    listeners.push_back(json::object{{"service", config::to_string(l.service)},
                                                     {"address", l.address},
                                                     {"port", l.port}});
                if (!config->admin_socket.path.empty())
                    listeners.push_back(
                        json::object{{"service", "admin"}, {"path", config->admin_socket.path}});
                auto js = broker_.journal().stats();
                auto jh = broker_.journal().health();
                json::object journal{{"path", broker_.journal().path()},
                                     {"sync", broker_.journal().sync_full() ? "full" : "normal"},
                                     {"healthy", broker_.journal().healthy()},
                                     {"state", recovery::to_string(jh.state)},
                                     {"commits", js.commits},
                                     {"changes", js.changes},
                                     {"walBytes", js.wal_bytes}};
                if (jh.state != recovery::JournalHealth::State::ok) journal["reason"] = jh.reason;
                json::object status{
                    {"version", COMMBROKER_VERSION},
                    {"node", config->node.id},
                    {"uptimeSeconds", broker_.uptime().count()},
                    {"ready", broker_.ready()},
                    {"listeners", std::move(listeners)},
                    {"counts", std::move(counts)},
                    {"systems", std::move(systems)},
                    {"journal", std::move(journal)},
                    {"reconciliation", json::object{{"state", "none"}}},
                };
                respond(json_response(http::status::ok, status));
            });
    }

    if (head == "items" && (decoded.size() == 1 || decoded.size() == 3)) {
        if (!get) return respond(method_not_allowed("GET"));
        if (decoded.size() == 3) {
            return broker_.on_core([system = decoded[1], id = decoded[2],
                                    respond = std::move(respond)](channels::Registry& reg) mutable {
                const auto* item = reg.find(system, id);
                if (!item)
                    return respond(error_response(http::status::not_found, "notFound",
                                                  "no live item " + id + " of system " + system));
                respond(json_response(http::status::ok, channels::to_json(*item)));
            });
        }
        channels::ItemFilter filter;
        for (auto& [k, v] : params) {
            if (k == "agent")
                filter.agent = v;
            else if (k == "system")
                filter.system = v;
            else if (k == "channel") {
                filter.channel = channels::channel_from_string(v);
                if (!filter.channel)
                    return respond(
                        error_response(http::status::bad_request, "badRequest",
                                       "channel must be phone, chat or email, not \"" + v + "\""));
            } else if (k == "state") {
                filter.state = channels::state_from_string(v);
                if (!filter.state)
                    return respond(error_response(http::status::bad_request, "badRequest",
                                                  "no item state \"" + v + "\""));
            } else {
                return respond(
                    error_response(http::status::bad_request, "badRequest",
                                   "unknown filter \"" + k + "\" (agent, channel, state, system)"));
            }
        }
        return broker_.on_core(
            [filter, respond = std::move(respond)](channels::Registry& reg) mutable {
                auto items = reg.items(filter);
                json::array out;
                out.reserve(items.size());
                for (auto& i : items)
                    out.push_back(channels::to_json(i));
                respond(json_response(http::status::ok, json::object{{"items", std::move(out)}}));
            });
    }

    if (head == "agents" && decoded.size() <= 2) {
        if (!get) return respond(method_not_allowed("GET"));
        return broker_.on_core_state(
            [id = decoded.size() == 2 ? decoded[1] : std::string(),
             respond = std::move(respond)](Broker::CoreState& core) mutable {
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
                    return respond(
                        error_response(http::status::not_found, "notFound", "no agent " + id));
                // One agent ID may be known at several systems: /agents/{id} lists each.
                respond(json_response(http::status::ok, json::object{{"agents", std::move(out)}}));
            });
    }

    if (head == "recovery" && decoded.size() == 2 && decoded[1] == "orphans") {
        if (!get) return respond(method_not_allowed("GET"));
        return broker_.on_core_state(
            [this, respond = std::move(respond)](Broker::CoreState&) mutable {
                json::array out;
                for (auto& [item, orphan] : broker_.orphans()) {
                    auto o = channels::to_json(item);
                    o["reason"] = orphan.reason;
                    o["orphanedAt"] = channels::iso_utc(orphan.at);
                    o["orphanedFrom"] = orphan.agent;
                    o["classification"] = "unchecked";
                    out.push_back(std::move(o));
                }
                respond(json_response(http::status::ok, json::object{{"orphans", std::move(out)}}));
            });
    }

    if (head == "audit" && decoded.size() == 1) {
        if (!get) return respond(method_not_allowed("GET"));
        recovery::AuditQuery q;
        for (auto& [k, v] : params) {
            if (k == "agent") {
                q.agent = v;
            } else if (k == "item") {
                q.item = v;
            } else if (k == "since") {
                auto d = config::parse_duration(v);
                if (!d)
                    return respond(error_response(
                        http::status::bad_request, "badRequest",
                        "since must be a duration such as 90s, 15m or 2h (at most 12000d), "
                        "not \"" +
                            v + "\""));
                q.since = std::chrono::system_clock::now() - *d;
            } else if (k == "limit") {
                char* end = nullptr;
                auto n = std::strtoull(v.c_str(), &end, 10);
                if (v.empty() || *end || n < 1 || n > kMaxAuditRecords)
                    return respond(error_response(
                        http::status::bad_request, "badRequest",
                        "limit must be a number from 1 to " + std::to_string(kMaxAuditRecords)));
                q.limit = n;
            } else {
                return respond(
                    error_response(http::status::bad_request, "badRequest",
                                   "unknown filter \"" + k + "\" (agent, item, since, limit)"));
            }
        }
        // A read-only connection of its own, on this session's thread: the journal's thread
        // is never asked to wait for an operator.
        std::vector<channels::AuditStored> records;
        try {
            records = recovery::read_audit(broker_.journal().path(), q);
        } catch (const std::exception& e) {
            return respond(
                error_response(http::status::service_unavailable, "unavailable", e.what()));
        }
        json::array out;
        for (auto& r : records) {
            json::object o{{"at", channels::iso_utc(r.at)},
                           {"action", r.action},
                           {"agent", r.agent},
                           {"system", r.system},
                           {"item", r.item},
                           {"reason", r.reason}};
            boost::system::error_code ec;
            auto details = json::parse(r.details, ec);
            o["details"] = ec ? json::value(r.details) : std::move(details);
            out.push_back(std::move(o));
        }
        return respond(json_response(http::status::ok, json::object{{"entries", std::move(out)}}));
    }

    if (head == "systems" && decoded.size() == 1) {
        if (!get) return respond(method_not_allowed("GET"));
        return broker_.on_core(
            [this, respond = std::move(respond)](channels::Registry& reg) mutable {
                json::array out;
                for (auto& link : broker_.cms().status()) {
                    json::object s{{"id", link.id},
                                   {"url", link.url},
                                   {"available", nullptr},
                                   {"lastProbe", nullptr},
                                   {"name", link.name},
                                   {"cmsVersion", link.version},
                                   {"state", link.state},
                                   {"requests", link.requests},
                                   {"failures", link.failures}};
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

    if (head == "reload" && decoded.size() == 1) {
        if (req.method() != http::verb::post) return respond(method_not_allowed("POST"));
        bool dry_run = params.count("dryRun") && params["dryRun"] != "false";
        if (dry_run) {
            auto parsed = config::load_file(config->source);
            if (!parsed.config) {
                json::array errs;
                for (auto& e : parsed.errors)
                    errs.emplace_back(e);
                return respond(json_response(
                    http::status::bad_request,
                    json::object{{"error", json::object{{"code", "invalidConfig"},
                                                        {"message", "the config has errors"},
                                                        {"errors", std::move(errs)}}}}));
            }
            json::array kept;
            for (auto& k : config::reload_diff(*config, *parsed.config))
                kept.emplace_back(k);
            return respond(json_response(
                http::status::ok,
                json::object{{"reloaded", false}, {"dryRun", true}, {"kept", std::move(kept)}}));
        }
        auto r = broker_.reload();
        if (!r.ok) {
            json::array errs;
            for (auto& e : r.errors)
                errs.emplace_back(e);
            return respond(json_response(
                http::status::bad_request,
                json::object{
                    {"error",
                     json::object{{"code", "invalidConfig"},
                                  {"message", "the config has errors; the running config stays"},
                                  {"errors", std::move(errs)}}}}));
        }
        json::array kept;
        for (auto& k : r.kept)
            kept.emplace_back(k);
        return respond(json_response(http::status::ok,
                                     json::object{{"reloaded", true}, {"kept", std::move(kept)}}));
    }

    respond(error_response(http::status::not_found, "notFound",
                           "no such resource: " + std::string(path)));
}

}  // namespace cb::daemon
