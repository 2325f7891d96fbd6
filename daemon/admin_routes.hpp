// Internal to the admin API (daemon/admin_*.cpp): one request as a route handler gets it, the
// JSON responses, and the handlers of the route table in admin_api.cpp. Each handler answers
// through `respond` exactly once, from any thread.
#pragma once

#include "config/config.hpp"
#include "recovery/reconcile.hpp"
#include "transport/http_server.hpp"

#include <boost/json/fwd.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cb::daemon {

namespace http = boost::beast::http;
namespace net = boost::asio;
class Broker;
}  // namespace cb::daemon

namespace cb::daemon::admin {

struct Call {
    Broker& broker;
    const transport::Request& request;
    std::vector<std::string> args;              ///< the path's {} segments, %-decoded
    std::map<std::string, std::string> params;  ///< the query, %-decoded
    std::shared_ptr<const config::Config> config;
    std::string actor;  ///< "operator NAME" over TCP, "admin socket" on the Unix socket
    transport::Respond respond;
};

transport::Response json_response(http::status status, const boost::json::value& body);
transport::Response error_response(http::status status, std::string code, std::string message);
/// The request's body as a JSON object with only `allowed` fields (an empty body is {}); else
/// the 400 response to send.
std::variant<boost::json::object, transport::Response> body_object(
    const transport::Request& request, const std::vector<std::string>& allowed);
/// The reconciliations' progress, for status and the recovery routes.
boost::json::object reconciliation_json(const recovery::ReconcileBook& book);
std::string metrics_text(Broker& b, std::size_t items, std::size_t agents);

// The recovery routes (admin_recovery.cpp).
void orphans(Call& c);
void orphan(Call& c);
void reconcile(Call& c);
void orphan_close(Call& c);
void orphan_assign(Call& c);
void orphan_release(Call& c);
void agent_logoff(Call& c);

}  // namespace cb::daemon::admin
