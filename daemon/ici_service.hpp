// The ici listener: POST /ici (the IciBroker SOAP port) and GET /ici?wsdl, ?wsdl=cms.
// Per request, on the session's thread: method, credentials (HTTP Basic; the account names the
// CMS system), content type, then the codec (gate + gSOAP). The event goes to the core, and the
// response is encoded and sent once the change is durable.
#pragma once

#include "daemon/http_server.hpp"

namespace cb::daemon {

class Broker;

class IciService : public HttpHandler {
  public:
    explicit IciService(Broker& broker) : broker_(broker) {}
    void handle(Request&& request, const PeerInfo& peer, Respond respond) override;

  private:
    Broker& broker_;
};

}  // namespace cb::daemon
