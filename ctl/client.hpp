// commbrokerctl's side of the admin API: its options, one HTTP exchange over the Unix socket
// or TCP, and the helpers the commands share to print what came back.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace cb::ctl {

namespace http = boost::beast::http;
namespace json = boost::json;

inline constexpr const char* kDefaultConfig = "/etc/commbroker/commbroker.xml";
inline constexpr const char* kDefaultSocket = "/run/commbroker/admin.sock";

/// A command used wrongly: exit status 2, with the usage.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// The command failed: exit status 1.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    std::string socket;
    std::string url;
    std::string user;
    std::string config = kDefaultConfig;
    bool config_given = false;
    bool json = false;
    bool dry_run = false;
    std::vector<std::string> args;
};

struct HttpResult {
    unsigned status;
    std::string body;
};

/// The admin socket: --socket, $COMMBROKER_SOCKET, the config's <adminSocket>, the default.
std::string resolve_socket(const Options& o);
/// One request; throws Failure if the broker cannot be reached.
HttpResult call(const Options& o, http::verb method, const std::string& target,
                const std::string& body = {});
/// One request whose answer is JSON; throws Failure with the broker's message on 4xx and 5xx.
json::value call_json(const Options& o, http::verb method, const std::string& target,
                      const std::string& body = {});
/// A JSON value as a table cell ("-" for null).
std::string str(const json::value& v);
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);
/// %-escapes what may not stand in a path segment or query value.
std::string query_escape(const std::string& s);
/// `target` with the command's `--option VALUE` pairs as query parameters (`filters` maps each
/// option to its parameter); `usage` is the message for anything else.
std::string with_filters(const Options& o, std::string target,
                         const std::map<std::string, std::string>& filters,
                         const std::string& usage);

/// commbrokerctl recovery ... and logoff AGENT (ctl/recovery.cpp).
int cmd_recovery(const Options& o);
int cmd_logoff(const Options& o);

}  // namespace cb::ctl
