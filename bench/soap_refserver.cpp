// Reference servers for the SOAP benchmark, on the same HTTP server as commbrokerd:
//   fixed: answers every request with a fixed SOAP response, parsing nothing (the HTTP ceiling)
//   codec: gate + gSOAP decode + gSOAP encode of "accepted", no registry, no journal
// usage: soap_refserver fixed|codec   (prints the bound port, serves until SIGTERM)
#include "protocol/ici_codec.hpp"
#include "transport/http_server.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/beast/http.hpp>

#include <iostream>
#include <string>

using namespace cb;

namespace {

class FixedHandler : public transport::HttpHandler {
  public:
    void handle(transport::Request&&, const transport::PeerInfo&,
                transport::Respond respond) override {
        transport::Response res{boost::beast::http::status::ok, 11};
        res.set(boost::beast::http::field::content_type, "text/xml; charset=utf-8");
        res.body() = kBody;
        respond(std::move(res));
    }
    static inline const std::string kBody =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SOAP-ENV:Envelope "
        "xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "xmlns:ici=\"urn:commbroker:ici:1\"><SOAP-ENV:Body><ici:phoneCallChangedResponse><status>"
        "accepted</status>"
        "</ici:phoneCallChangedResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>";
};

class CodecHandler : public transport::HttpHandler {
  public:
    void handle(transport::Request&& req, const transport::PeerInfo&,
                transport::Respond respond) override {
        auto& codec = protocol::IciServerCodec::for_this_thread();
        auto decoded = codec.decode(req.body(), "CMS-A", {}, protocol::SoapVersion::v11);
        transport::Response res{boost::beast::http::status::ok, 11};
        res.set(boost::beast::http::field::content_type, "text/xml; charset=utf-8");
        std::optional<std::string> body;
        auto version = protocol::SoapVersion::v11;
        if (auto* ok = std::get_if<protocol::DecodedEvent>(&decoded)) {
            version = ok->reply.version;
            body = codec.encode_status(ok->reply, channels::Outcome::accepted);
        } else {
            auto& f = std::get<protocol::DecodeFailed>(decoded);
            version = f.reply.version;
            res.result(protocol::http_status(f.reply.version, f.fault));
            body = codec.encode_fault(f.reply, f.fault);
        }
        if (!body) {
            res.result(boost::beast::http::status::internal_server_error);
            body = std::string(protocol::IciServerCodec::server_fault(version));
        }
        res.body() = std::move(*body);
        respond(std::move(res));
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "";
    std::shared_ptr<transport::HttpHandler> handler;
    if (mode == "fixed")
        handler = std::make_shared<FixedHandler>();
    else if (mode == "codec")
        handler = std::make_shared<CodecHandler>();
    else {
        std::cerr << "usage: soap_refserver fixed|codec\n";
        return 2;
    }
    boost::asio::io_context ioc(1);
    transport::HttpServer server(ioc, [] { return transport::HttpLimits{}; });
    auto ep = server.listen_tcp("127.0.0.1", 0, handler);
    std::cout << ep.port() << std::endl;
    boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](auto, int) { ioc.stop(); });
    ioc.run();
    return 0;
}
