// The ici listener: POST /ici (the IciBroker SOAP port) and GET /ici?wsdl, ?wsdl=cms.
// Per request, on the session's thread: method, credentials (HTTP Basic; the account names the
// CMS system; a credential not verified before is checked by the LogonDoor off this thread),
// content type, then the codec (gate + gSOAP). The event goes to the core, and the response is
// encoded and sent once the change is durable.
#pragma once

#include "transport/http_server.hpp"

#include <chrono>

namespace cb::daemon {

namespace http = boost::beast::http;
namespace net = boost::asio;

class Broker;

class IciService : public transport::HttpHandler {
  public:
    explicit IciService(Broker& broker) : broker_(broker) {}
    void handle(transport::Request&& request, const transport::PeerInfo& peer,
                transport::Respond respond) override;

  private:
    /// After the credentials of `system`'s account (checked against `checked_hash`): the SOAP
    /// request itself.
    void serve(transport::Request&& request, const std::string& system,
               const std::string& checked_hash, std::chrono::steady_clock::time_point started,
               transport::Respond respond);

    Broker& broker_;
};

}  // namespace cb::daemon
