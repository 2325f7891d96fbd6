// commbrokerctl recovery list|show|reconcile|close|assign|release, and logoff AGENT: the
// operators' side of the recovery module (PROTOCOL.md section 4).
#include "ctl/client.hpp"

#include <cstdio>
#include <ctime>
#include <iostream>

namespace cb::ctl {

namespace {

const char* kRecoveryUsage =
    "recovery takes list [--system S] [--agent A] [--classification C], show SYSTEM ID, "
    "reconcile [--system S], close SYSTEM ID --reason TEXT, assign SYSTEM ID AGENT --reason "
    "TEXT, or release SYSTEM ID --reason TEXT";

/// How long ago an xsd:dateTime in UTC (as the broker writes them) was, e.g. "4m12s".
std::string age_of(const json::value& v) {
    if (!v.is_string()) return "-";
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(v.as_string().c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return "-";
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    auto seconds = static_cast<long long>(std::difftime(std::time(nullptr), timegm(&tm)));
    if (seconds < 0) seconds = 0;
    std::string out;
    if (seconds >= 86400) out += std::to_string(seconds / 86400) + "d";
    if (seconds >= 3600) out += std::to_string(seconds / 3600 % 24) + "h";
    if (seconds >= 60) out += std::to_string(seconds / 60 % 60) + "m";
    return out + std::to_string(seconds % 60) + "s";
}

std::string joined(const json::object& o, const char* name) {
    std::string out;
    if (auto* a = o.if_contains(name); a && a->is_array())
        for (auto& x : a->as_array())
            out += (out.empty() ? "" : ",") + str(x);
    return out.empty() ? "-" : out;
}

int list(const Options& o) {
    Options rest = o;
    rest.args.erase(rest.args.begin());  // "recovery"
    auto target = with_filters(
        rest, "/admin/v1/recovery/orphans",
        {{"--system", "system"}, {"--agent", "agent"}, {"--classification", "classification"}},
        "recovery list takes --system, --agent and --classification, each with a value");
    auto v = call_json(o, http::verb::get, target);
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& x : v.as_object().at("orphans").as_array()) {
        auto& it = x.as_object();
        auto attached = it.contains("attachedData") ? str(it.at("attachedData")) : "-";
        rows.push_back({str(it.at("system")), str(it.at("id")), str(it.at("channel")),
                        str(it.at("state")), str(it.at("orphanedFrom")),
                        joined(it, "remoteNumbers"), attached, age_of(it.at("orphanedAt")),
                        str(it.at("reason")), str(it.at("classification"))});
    }
    print_table({"SYSTEM", "ID", "CHANNEL", "STATE", "AGENT", "REMOTE", "ATTACHED DATA",
                 "ORPHANED FOR", "WHY", "CLASSIFICATION"},
                rows);
    auto& r = v.as_object().at("reconciliation").as_object();
    std::cout << rows.size() << " orphan(s); reconciliation: " << str(r.at("state")) << "\n";
    return 0;
}

int show(const Options& o) {
    if (o.args.size() != 4) throw UsageError("recovery show takes SYSTEM and ID");
    auto path = query_escape(o.args[2]) + "/" + query_escape(o.args[3]);
    auto v = call_json(o, http::verb::get, "/admin/v1/recovery/orphans/" + path);
    auto history = call_json(o, http::verb::get, "/admin/v1/audit?item=" + query_escape(o.args[3]));
    if (o.json) {
        json::object out{{"orphan", v}, {"audit", history.as_object().at("entries")}};
        return std::cout << json::serialize(out) << "\n", 0;
    }
    for (auto& [k, val] : v.as_object())
        std::cout << std::string(k) << std::string(k.size() < 16 ? 16 - k.size() : 1, ' ')
                  << str(val) << "\n";
    std::cout << "\nhistory:\n";
    std::vector<std::vector<std::string>> rows;
    for (auto& e : history.as_object().at("entries").as_array()) {
        auto& eo = e.as_object();
        if (str(eo.at("system")) != o.args[2]) continue;
        rows.push_back(
            {str(eo.at("at")), str(eo.at("action")), str(eo.at("actor")), str(eo.at("reason"))});
    }
    print_table({"AT", "ACTION", "BY", "REASON"}, rows);
    return 0;
}

int reconcile(const Options& o) {
    std::string system;
    if (o.args.size() == 4 && o.args[2] == "--system")
        system = o.args[3];
    else if (o.args.size() != 2)
        throw UsageError("recovery reconcile takes only --system S");
    auto v = call_json(
        o, http::verb::post, "/admin/v1/recovery/reconcile",
        system.empty() ? std::string() : json::serialize(json::object{{"system", system}}));
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    bool failed = false;
    for (auto& s : v.as_object().at("systems").as_array()) {
        auto& so = s.as_object();
        if (!system.empty() && str(so.at("system")) != system) continue;
        failed = failed || str(so.at("state")) == "failed";
        rows.push_back({str(so.at("system")), str(so.at("state")), str(so.at("cmsItems")),
                        str(so.at("refreshed")), str(so.at("adopted")), str(so.at("gone")),
                        str(so.at("alive")), str(so.at("unknown")),
                        so.contains("error") ? str(so.at("error")) : "-"});
    }
    print_table(
        {"SYSTEM", "STATE", "AT CMS", "REFRESHED", "ADOPTED", "GONE", "ALIVE", "UNKNOWN", "ERROR"},
        rows);
    std::cout << str(v.as_object().at("orphans")) << " orphan(s) left\n";
    return failed ? 1 : 0;
}

/// close, assign, release: SYSTEM ID [AGENT] --reason TEXT.
int act(const Options& o, const std::string& action) {
    std::vector<std::string> positional;
    std::string reason;
    for (std::size_t i = 2; i < o.args.size(); ++i) {
        if (o.args[i] == "--reason" && i + 1 < o.args.size())
            reason = o.args[++i];
        else
            positional.push_back(o.args[i]);
    }
    std::size_t wanted = action == "assign" ? 3 : 2;
    if (positional.size() != wanted)
        throw UsageError("recovery " + action + " takes SYSTEM ID" +
                         (action == "assign" ? " AGENT" : "") + " --reason TEXT");
    if (reason.empty())
        throw UsageError("recovery " + action + " needs --reason TEXT: it goes into the audit log");
    json::object body{{"reason", reason}, {"dryRun", o.dry_run}};
    if (action == "assign") body["agent"] = positional[2];
    auto target = "/admin/v1/recovery/orphans/" + query_escape(positional[0]) + "/" +
                  query_escape(positional[1]) + "/" + action;
    auto v = call_json(o, http::verb::post, target, json::serialize(body));
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::cout << (o.dry_run ? "dry run: " : "") << str(v.as_object().at("message")) << "\n";
    return 0;
}

}  // namespace

int cmd_recovery(const Options& o) {
    if (o.args.size() < 2) throw UsageError(kRecoveryUsage);
    const auto& sub = o.args[1];
    if (sub == "list") return list(o);
    if (sub == "show") return show(o);
    if (sub == "reconcile") return reconcile(o);
    if (sub == "close" || sub == "assign" || sub == "release") return act(o, sub);
    throw UsageError(kRecoveryUsage);
}

int cmd_logoff(const Options& o) {
    std::string agent, reason;
    for (std::size_t i = 1; i < o.args.size(); ++i) {
        if (o.args[i] == "--reason" && i + 1 < o.args.size())
            reason = o.args[++i];
        else if (agent.empty())
            agent = o.args[i];
        else
            throw UsageError("logoff takes AGENT [--reason TEXT]");
    }
    if (agent.empty()) throw UsageError("logoff takes AGENT [--reason TEXT]");
    json::object body{{"dryRun", o.dry_run}};
    if (!reason.empty()) body["reason"] = reason;
    auto v = call_json(o, http::verb::post, "/admin/v1/agents/" + query_escape(agent) + "/logoff",
                       json::serialize(body));
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    auto& r = v.as_object();
    std::cout << (o.dry_run ? "dry run: " : "") << str(r.at("message")) << "\n";
    if (auto* items = r.if_contains("orphaned"))
        for (auto& i : items->as_array())
            std::cout << "  " << (o.dry_run ? "would orphan " : "orphaned ")
                      << str(i.as_object().at("system")) << "/" << str(i.as_object().at("id"))
                      << "\n";
    return 0;
}

}  // namespace cb::ctl
