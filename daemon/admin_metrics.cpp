// /metrics: the Prometheus text of the broker's counters and gauges.
#include "daemon/admin_routes.hpp"
#include "daemon/broker.hpp"

namespace cb::daemon::admin {

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
    gauge("commbroker_journal_hub_backlog",
          "Desktop session and replay records waiting to be handed to the journal (in chunks, "
          "each once the last is committed).",
          d.journal_backlog, "gauge");
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
    PasswordVerifier::Counters pw;
    std::size_t queued = 0;
    for (auto* door : {&b.ici_door(), &b.desktop_door(), &b.admin_door()}) {
        auto c = door->verifier().counters();
        pw.cached += c.cached;
        pw.hashed += c.hashed;
        pw.busy += c.busy;
        queued += door->verifier().queued();
    }
    out +=
        "# HELP commbroker_password_checks_total Logon password checks (every door): answered "
        "from the cache, hashed (PBKDF2), refused because too many were waiting.\n"
        "# TYPE commbroker_password_checks_total counter\n"
        "commbroker_password_checks_total{result=\"cached\"} " +
        std::to_string(pw.cached) + "\ncommbroker_password_checks_total{result=\"hashed\"} " +
        std::to_string(pw.hashed) + "\ncommbroker_password_checks_total{result=\"busy\"} " +
        std::to_string(pw.busy) + "\n";
    out +=
        "# HELP commbroker_password_queue Logons waiting for a password check.\n"
        "# TYPE commbroker_password_queue gauge\ncommbroker_password_queue " +
        std::to_string(queued) + "\n";
    out +=
        "# HELP commbroker_logon_failures_total Failed logons (wrong or unknown credentials) "
        "by door.\n# TYPE commbroker_logon_failures_total counter\n";
    std::string held, refused, locks;
    for (auto [door, c] :
         {std::pair<const char*, LogonGuard::Counters>{"ici", b.ici_door().counters()},
          {"desktop", b.desktop_door().counters()},
          {"admin", b.admin_door().counters()}}) {
        auto label = std::string("{door=\"") + door + "\"} ";
        out += "commbroker_logon_failures_total" + label + std::to_string(c.failures) + "\n";
        held += "commbroker_logon_held_total" + label + std::to_string(c.held) + "\n";
        refused += "commbroker_logon_refused_total" + label + std::to_string(c.refused) + "\n";
        locks += "commbroker_logon_locks_total" + label + std::to_string(c.locks) + "\n";
    }
    out +=
        "# HELP commbroker_logon_held_total Failed logons answered late (logonGuard).\n"
        "# TYPE commbroker_logon_held_total counter\n" +
        held;
    out +=
        "# HELP commbroker_logon_refused_total Logons refused unchecked: their source "
        "address or user was locked.\n# TYPE commbroker_logon_refused_total counter\n" +
        refused;
    out +=
        "# HELP commbroker_logon_locks_total Source addresses and users locked after "
        "lockAfter failures.\n# TYPE commbroker_logon_locks_total counter\n" +
        locks;
    auto dc = b.desktop_counters();
    out +=
        "# HELP commbroker_desktop_refused_total Desktop connections closed unanswered, by "
        "reason.\n# TYPE commbroker_desktop_refused_total counter\n"
        "commbroker_desktop_refused_total{reason=\"overLimit\"} " +
        std::to_string(dc.refused_over_limit) +
        "\ncommbroker_desktop_refused_total{reason=\"perAddress\"} " +
        std::to_string(dc.refused_per_address) +
        "\ncommbroker_desktop_refused_total{reason=\"helloTimeout\"} " +
        std::to_string(dc.hello_timeouts) +
        "\ncommbroker_desktop_refused_total{reason=\"tlsHandshake\"} " +
        std::to_string(dc.tls_failures) +
        "\ncommbroker_desktop_refused_total{reason=\"tlsRate\"} " +
        std::to_string(dc.tls_rate_limited) +
        "\n# HELP commbroker_desktop_idle_closed_total Desktop connections closed after nothing "
        "was heard from them for limits desktopIdleTimeout.\n"
        "# TYPE commbroker_desktop_idle_closed_total "
        "counter\ncommbroker_desktop_idle_closed_total " +
        std::to_string(dc.idle_timeouts) + "\n";
    auto& h = b.http().counters();
    auto& hl = b.http().listener_counters();
    out +=
        "# HELP commbroker_open_connections Connections open on all TCP listeners together "
        "(limits maxOpenConnections), TLS handshakes in progress included.\n"
        "# TYPE commbroker_open_connections gauge\ncommbroker_open_connections " +
        std::to_string(b.open_connections()) + "\n";
    out +=
        "# HELP commbroker_http_connections Open HTTP connections (ici and admin).\n"
        "# TYPE commbroker_http_connections gauge\ncommbroker_http_connections " +
        std::to_string(b.http().connections()) + "\n";
    out +=
        "# HELP commbroker_http_closed_total HTTP connections ended or refused, by reason.\n"
        "# TYPE commbroker_http_closed_total counter\n";
    out += "commbroker_http_closed_total{reason=\"overLimit\"} " +
           std::to_string(hl.refused_over_limit.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"perAddress\"} " +
           std::to_string(hl.refused_per_address.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"tlsHandshake\"} " +
           std::to_string(hl.tls_failures.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"tlsRate\"} " +
           std::to_string(hl.tls_rate_limited.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"bodyTooLarge\"} " +
           std::to_string(h.body_too_large.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"badRequest\"} " +
           std::to_string(h.bad_requests.load()) + "\n";
    out += "commbroker_http_closed_total{reason=\"timeout\"} " + std::to_string(h.timeouts.load()) +
           "\n";
    auto& ds = d;
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

}  // namespace cb::daemon::admin
