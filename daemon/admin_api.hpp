// The admin listener and Unix socket: the operators' HTTP/JSON API (PROTOCOL.md section 4),
// /metrics, /healthz and /readyz. Over TCP every /admin route needs an operator's HTTP Basic
// credentials (checked by the admin LogonDoor); on the Unix socket the file's permissions decide.
// Registry reads run on the core and the JSON is written on the session's thread.
#pragma once

#include "transport/http_server.hpp"

namespace cb::daemon {

namespace http = boost::beast::http;
namespace net = boost::asio;

class Broker;

class AdminApi : public transport::HttpHandler {
  public:
    explicit AdminApi(Broker& broker) : broker_(broker) {}
    void handle(transport::Request&& request, const transport::PeerInfo& peer,
                transport::Respond respond) override;

  private:
    /// After the credentials (or the socket's permissions): the route table; `actor` is who
    /// asked, for the audit log.
    void route(transport::Request&& request, std::string actor, transport::Respond respond);

    Broker& broker_;
};

}  // namespace cb::daemon
