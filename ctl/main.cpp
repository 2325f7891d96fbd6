// commbrokerctl: the operators' command line over the admin API (Unix socket or HTTP).
// Exit status: 0 done, 1 failed, 2 usage.
#include "config/config.hpp"
#include "config/password.hpp"
#include "ctl/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

using namespace cb::ctl;

namespace {

const std::string kUsage = R"(usage: commbrokerctl [OPTIONS] COMMAND [ARGS]

Commands:
  status                          the broker's state: version, uptime, listeners, counts, journal
  items [--agent A] [--channel phone|chat|email] [--state S] [--system ID]
                                  live items of the registry
  item SYSTEM ID                  one live item
  agents                          agent states reported by the CMSs, with their desktops' heartbeat
  audit [--since DURATION] [--agent A] [--item ID] [--limit N]
                                  the audit log: automatic actions with their reason and evidence
  systems                         configured CMS systems
  logoff AGENT [--reason TEXT]    log the agent off at its CMS; its live items become orphans
  recovery list [--system S] [--agent A] [--classification unchecked|alive|gone|unknown]
                                  orphaned items, with what is needed to find the customer
  recovery show SYSTEM ID         one orphan and its history in the audit log
  recovery reconcile [--system S] ask the CMSs for their items now; settle the orphans
  recovery close SYSTEM ID --reason TEXT
                                  end the item at its CMS (hangupCall, endChat, closeMessage)
  recovery assign SYSTEM ID AGENT --reason TEXT
                                  give the item to another logged-on agent
  recovery release SYSTEM ID --reason TEXT
                                  forget the item here; its CMS is not told
  reload [--dry-run]              re-read the broker's config file
  hash-password [--iterations N]  read a password from standard input, print its hash for the config
  check-config FILE               check a config file, print every error

Options:
  --socket PATH      the admin Unix socket (default: <adminSocket> of the config, else )" +
                           std::string(kDefaultSocket) + R"()
  --url URL          the admin listener instead, e.g. http://127.0.0.1:8452
  --user NAME        operator for --url; the password comes from COMMBROKER_PASSWORD
  --config FILE      the broker's config, to find its admin socket (default )" +
                           std::string(kDefaultConfig) + R"()
  --json             print the API's JSON instead of tables
  --dry-run          show what a command that changes state would do, change nothing
  -h, --help         this text
)";

int cmd_status(const Options& o) {
    auto v = call_json(o, http::verb::get, "/admin/v1/status");
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    auto& s = v.as_object();
    std::cout << "node         " << str(s.at("node")) << " (commbrokerd " << str(s.at("version"))
              << ")\n";
    std::cout << "uptime       " << str(s.at("uptimeSeconds")) << " s\n";
    std::cout << "ready        " << (s.at("ready").as_bool() ? "yes" : "no") << "\n";
    for (auto& l : s.at("listeners").as_array()) {
        auto& lo = l.as_object();
        std::cout << "listening    " << str(lo.at("service")) << " on "
                  << (lo.contains("path") ? "unix:" + str(lo.at("path"))
                                          : str(lo.at("address")) + ":" + str(lo.at("port")))
                  << "\n";
    }
    auto& c = s.at("counts").as_object();
    std::cout << "items        " << str(c.at("items")) << "\n";
    std::cout << "agents       " << str(c.at("agents")) << "\n";
    auto& j = s.at("journal").as_object();
    std::cout << "journal      " << str(j.at("path")) << " (sync=" << str(j.at("sync")) << ", "
              << (j.at("healthy").as_bool() ? "healthy" : "FAILED") << ", " << str(j.at("commits"))
              << " commits)\n";
    for (auto& sys : s.at("systems").as_array()) {
        auto& so = sys.as_object();
        std::string avail = so.at("available").is_null()
                                ? "availability not probed"
                                : (so.at("available").as_bool() ? "available" : "unavailable");
        std::cout << "system       " << str(so.at("id")) << " (" << avail << ")\n";
    }
    return 0;
}

int cmd_items(const Options& o) {
    auto target =
        with_filters(o, "/admin/v1/items",
                     {{"--agent", "agent"},
                      {"--channel", "channel"},
                      {"--state", "state"},
                      {"--system", "system"}},
                     "items takes --agent, --channel, --state and --system, each with a value");
    auto v = call_json(o, http::verb::get, target);
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& i : v.as_object().at("items").as_array()) {
        auto& it = i.as_object();
        std::string remote;
        if (auto* r = it.if_contains("remoteNumbers"))
            for (auto& n : r->as_array())
                remote += (remote.empty() ? "" : ",") + str(n);
        rows.push_back({str(it.at("system")), str(it.at("id")), str(it.at("channel")),
                        str(it.at("state")), str(it.at("version")),
                        it.contains("agentId") ? str(it.at("agentId")) : "-",
                        remote.empty() ? "-" : remote, str(it.at("changedAt"))});
    }
    print_table({"SYSTEM", "ID", "CHANNEL", "STATE", "VERSION", "AGENT", "REMOTE", "CHANGED"},
                rows);
    return 0;
}

int cmd_item(const Options& o) {
    if (o.args.size() != 3) throw UsageError("item takes SYSTEM and ID");
    auto v =
        call_json(o, http::verb::get,
                  "/admin/v1/items/" + query_escape(o.args[1]) + "/" + query_escape(o.args[2]));
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    for (auto& [k, val] : v.as_object())
        std::cout << std::left << std::setw(16) << std::string(k) << str(val) << "\n";
    return 0;
}

int cmd_agents(const Options& o) {
    if (o.args.size() != 1) throw UsageError("agents takes no arguments");
    auto v = call_json(o, http::verb::get, "/admin/v1/agents");
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& a : v.as_object().at("agents").as_array()) {
        auto& ao = a.as_object();
        std::vector<std::string> row{str(ao.at("system")), str(ao.at("userId")),
                                     str(ao.at("state")), str(ao.at("reasonCode"))};
        if (auto* hb = ao.if_contains("heartbeat")) {
            auto& h = hb->as_object();
            std::ostringstream silent;
            silent << std::fixed << std::setprecision(1)
                   << h.at("silentSeconds").to_number<double>() << " s (" << str(h.at("contact"))
                   << ")";
            row.insert(row.end(), {str(h.at("state")), silent.str(),
                                   h.at("connected").as_bool() ? str(h.at("peer")) : "-"});
        } else {
            row.insert(row.end(), {"-", "-", "-"});
        }
        rows.push_back(std::move(row));
    }
    print_table({"SYSTEM", "AGENT", "STATE", "REASON", "HEARTBEAT", "SILENT FOR", "DESKTOP"}, rows);
    return 0;
}

int cmd_audit(const Options& o) {
    auto target = with_filters(
        o, "/admin/v1/audit",
        {{"--since", "since"}, {"--agent", "agent"}, {"--item", "item"}, {"--limit", "limit"}},
        "audit takes --since DURATION, --agent, --item and --limit, "
        "each with a value");
    auto v = call_json(o, http::verb::get, target);
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& e : v.as_object().at("entries").as_array()) {
        auto& eo = e.as_object();
        auto dash = [](std::string s) { return s.empty() ? std::string("-") : s; };
        rows.push_back({str(eo.at("at")), str(eo.at("action")), dash(str(eo.at("agent"))),
                        dash(str(eo.at("system"))), dash(str(eo.at("item"))), str(eo.at("reason")),
                        json::serialize(eo.at("details"))});
    }
    print_table({"AT", "ACTION", "AGENT", "SYSTEM", "ITEM", "REASON", "EVIDENCE"}, rows);
    return 0;
}

int cmd_systems(const Options& o) {
    if (o.args.size() != 1) throw UsageError("systems takes no arguments");
    auto v = call_json(o, http::verb::get, "/admin/v1/systems");
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    std::vector<std::vector<std::string>> rows;
    for (auto& s : v.as_object().at("systems").as_array()) {
        auto& so = s.as_object();
        rows.push_back({str(so.at("id")), str(so.at("url")),
                        so.at("available").is_null() ? "not probed" : str(so.at("available")),
                        str(so.at("subscription"))});
    }
    print_table({"SYSTEM", "URL", "AVAILABLE", "SUBSCRIPTION"}, rows);
    return 0;
}

int cmd_reload(const Options& o) {
    if (o.args.size() != 1) throw UsageError("reload takes no arguments (but --dry-run)");
    auto v = call_json(o, http::verb::post,
                       o.dry_run ? "/admin/v1/reload?dryRun=true" : "/admin/v1/reload");
    if (o.json) return std::cout << json::serialize(v) << "\n", 0;
    auto& r = v.as_object();
    std::cout << (o.dry_run ? "the config is valid; a reload would apply it" : "reloaded") << "\n";
    for (auto& k : r.at("kept").as_array())
        std::cout << "kept until restart: " << str(k) << "\n";
    return 0;
}

std::string read_password() {
    std::string pw;
    bool tty = ::isatty(STDIN_FILENO);
    termios old{};
    if (tty) {
        std::cerr << "password: " << std::flush;
        ::tcgetattr(STDIN_FILENO, &old);
        termios quiet = old;
        quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::getline(std::cin, pw);
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::cerr << "\n";
    }
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
}

int cmd_hash_password(const Options& o) {
    unsigned iterations = cb::config::kDefaultPbkdf2Iterations;
    for (std::size_t i = 1; i < o.args.size(); ++i) {
        if (o.args[i] == "--iterations" && i + 1 < o.args.size()) {
            try {
                iterations = static_cast<unsigned>(std::stoul(o.args[++i]));
            } catch (...) {
                throw UsageError("--iterations takes a number");
            }
            if (iterations < cb::config::kMinPbkdf2Iterations)
                throw UsageError("--iterations must be at least " +
                                 std::to_string(cb::config::kMinPbkdf2Iterations));
        } else {
            throw UsageError("hash-password takes only --iterations N");
        }
    }
    auto pw = read_password();
    if (pw.empty()) throw Failure("an empty password cannot be hashed");
    std::cout << cb::config::hash_password(pw, iterations) << "\n";
    return 0;
}

int cmd_check_config(const Options& o) {
    if (o.args.size() != 2) throw UsageError("check-config takes FILE");
    auto parsed = cb::config::load_file(o.args[1]);
    if (!parsed.config) {
        for (auto& e : parsed.errors)
            std::cerr << e << "\n";
        std::cerr << o.args[1] << ": " << parsed.errors.size() << " error(s)\n";
        return 1;
    }
    std::cout << o.args[1] << ": ok\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            auto value = [&](const char* name) {
                if (i + 1 >= argc) throw UsageError(std::string(name) + " takes a value");
                return std::string(argv[++i]);
            };
            if (a == "--socket")
                o.socket = value("--socket");
            else if (a == "--url")
                o.url = value("--url");
            else if (a == "--user")
                o.user = value("--user");
            else if (a == "--config")
                o.config = value("--config"), o.config_given = true;
            else if (a == "--json")
                o.json = true;
            else if (a == "--dry-run")
                o.dry_run = true;
            else if (a == "-h" || a == "--help")
                return std::cout << kUsage, 0;
            else
                o.args.push_back(a);
        }
        if (o.args.empty()) throw UsageError("a command is required");
        const auto& cmd = o.args[0];
        if (cmd == "status") return cmd_status(o);
        if (cmd == "items") return cmd_items(o);
        if (cmd == "item") return cmd_item(o);
        if (cmd == "agents") return cmd_agents(o);
        if (cmd == "audit") return cmd_audit(o);
        if (cmd == "systems") return cmd_systems(o);
        if (cmd == "reload") return cmd_reload(o);
        if (cmd == "hash-password") return cmd_hash_password(o);
        if (cmd == "check-config") return cmd_check_config(o);
        if (cmd == "recovery") return cmd_recovery(o);
        if (cmd == "logoff") return cmd_logoff(o);
        throw UsageError("unknown command " + cmd);
    } catch (const UsageError& e) {
        std::cerr << "commbrokerctl: " << e.what() << "\n\n" << kUsage;
        return 2;
    } catch (const Failure& e) {
        std::cerr << "commbrokerctl: " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "commbrokerctl: " << e.what() << "\n";
        return 1;
    }
}
