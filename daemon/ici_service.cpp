#include "daemon/ici_service.hpp"

#include "daemon/broker.hpp"
#include "daemon/logging.hpp"
#include "protocol/ici_codec.hpp"
#include "protocol/wsdl.hpp"

#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace cb::daemon {
namespace proto = cb::protocol;

namespace {

transport::Response text_response(http::status status, std::string body) {
    transport::Response res{status, 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(body) + "\n";
    return res;
}

/// The media type of a Content-Type value, lower-cased, without parameters.
std::string media_type(std::string_view value) {
    auto semi = value.find(';');
    auto type = value.substr(0, semi);
    while (!type.empty() && type.back() == ' ')
        type.remove_suffix(1);
    while (!type.empty() && type.front() == ' ')
        type.remove_prefix(1);
    std::string out(type);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return out;
}

transport::Response unauthorized() {
    auto res =
        text_response(http::status::unauthorized, "credentials of a configured CMS are required");
    res.set(http::field::www_authenticate, "Basic realm=\"commbroker ici\", charset=\"UTF-8\"");
    return res;
}

transport::Response soap_response(proto::SoapVersion version, int status, std::string body) {
    transport::Response res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, proto::content_type(version));
    res.body() = std::move(body);
    return res;
}

/// An encoded SOAP response; or, when the codec could not write one, the fixed server fault with
/// HTTP 500, so that nothing partial ever goes out (the CMS sends the event again).
transport::Response encoded_response(proto::SoapVersion version, int status,
                                     std::optional<std::string> body) {
    if (!body) {
        spdlog::error("ici: a response could not be encoded; answered with a server fault");
        return soap_response(version, 500,
                             std::string(proto::IciServerCodec::server_fault(version)));
    }
    return soap_response(version, status, std::move(*body));
}

}  // namespace

void IciService::handle(transport::Request&& req, const transport::PeerInfo& peer,
                        transport::Respond respond) {
    auto started = std::chrono::steady_clock::now();
    std::string_view target = req.target();
    auto qmark = target.find('?');
    auto path = target.substr(0, qmark);
    auto query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    if (path != "/ici")
        return respond(
            text_response(http::status::not_found, "no such resource; the SOAP endpoint is /ici"));

    if (req.method() == http::verb::get || req.method() == http::verb::head) {
        if (query == "wsdl" || query == "WSDL") {
            transport::Response res{http::status::ok, 11};
            res.set(http::field::content_type, "text/xml; charset=utf-8");
            res.body() = proto::wsdl_with_location(proto::kBrokerWsdl, broker_.public_url());
            return respond(std::move(res));
        }
        if (query == "wsdl=cms") {
            transport::Response res{http::status::ok, 11};
            res.set(http::field::content_type, "text/xml; charset=utf-8");
            res.body() = std::string(proto::kCmsWsdl);
            return respond(std::move(res));
        }
        auto res = text_response(http::status::method_not_allowed,
                                 "POST a SOAP request, or GET /ici?wsdl");
        res.set(http::field::allow, "POST, GET");
        return respond(std::move(res));
    }
    if (req.method() != http::verb::post) {
        auto res = text_response(http::status::method_not_allowed,
                                 "POST a SOAP request, or GET /ici?wsdl");
        res.set(http::field::allow, "POST, GET");
        return respond(std::move(res));
    }

    auto config = broker_.config();
    auto creds = parse_basic(req[http::field::authorization]);
    if (!creds) {
        broker_.soap_metrics().unauthorized.fetch_add(1);
        return respond(unauthorized());
    }
    const config::Cms* cms = config->find_cms_by_inbound_user(creds->user);
    // Known credentials pass at once; others are checked off this thread, a failure answered
    // late and a guessing source refused (LogonDoor).
    auto request = std::make_shared<transport::Request>(std::move(req));
    broker_.ici_door().check(
        peer.ip, creds->user, std::move(creds->password),
        cms ? &cms->inbound_password_hash : nullptr,
        [this, request, started, respond = std::move(respond),
         system = cms ? cms->id : std::string(),
         checked = cms ? cms->inbound_password_hash : std::string()](LogonDoor::Result r) mutable {
            if (r.verdict == LogonDoor::Verdict::ok)
                return serve(std::move(*request), system, checked, started, std::move(respond));
            broker_.soap_metrics().unauthorized.fetch_add(1);
            if (r.verdict == LogonDoor::Verdict::wrong) return respond(unauthorized());
            bool locked = r.verdict == LogonDoor::Verdict::locked;
            auto res = text_response(
                locked ? http::status::too_many_requests : http::status::service_unavailable,
                locked ? "too many failed logons from this address or for this user: try again "
                         "later"
                       : "too many logons are waiting for a password check: try again shortly");
            res.set(http::field::retry_after, std::to_string(r.retry_after.count()));
            respond(std::move(res));
        });
}

void IciService::serve(transport::Request&& req, const std::string& system,
                       const std::string& checked_hash,
                       std::chrono::steady_clock::time_point started, transport::Respond respond) {
    auto config = broker_.config();
    const config::Cms* cms = config->find_cms(system);
    // Removed by a reload while its credentials were checked, or given another password.
    if (!cms || cms->inbound_password_hash != checked_hash) return respond(unauthorized());
    auto type = media_type(req[http::field::content_type]);
    proto::SoapVersion assumed;
    if (type == "text/xml")
        assumed = proto::SoapVersion::v11;
    else if (type == "application/soap+xml")
        assumed = proto::SoapVersion::v12;
    else
        return respond(text_response(
            http::status::unsupported_media_type,
            "Content-Type must be text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)"));

    auto& metrics = broker_.soap_metrics();
    auto fault_response = [&metrics](proto::IciServerCodec& codec, const proto::ReplyContext& reply,
                                     const proto::Fault& fault) {
        metrics.count_fault(fault.code);
        auto res = encoded_response(reply.version, proto::http_status(reply.version, fault),
                                    codec.encode_fault(reply, fault));
        if (fault.code == proto::FaultCode::unavailable && res.result_int() == 503)
            res.set(http::field::retry_after, "5");
        return res;
    };

    proto::CodecLimits limits;
    limits.gate.max_depth = config->limits.max_xml_depth;
    limits.gate.max_attributes = config->limits.max_attributes;
    limits.max_string = config->limits.max_body_bytes;
    auto& codec = proto::IciServerCodec::for_this_thread();
    auto decoded = codec.decode(req.body(), cms->id, limits, assumed);
    if (auto* failed = std::get_if<proto::DecodeFailed>(&decoded)) {
        static LogLimit limit;
        if (std::uint64_t left_out = 0; limit.allow(left_out))
            spdlog::info(
                "ici: {} fault {} for {}{}: {}{}", cms->id, proto::to_string(failed->fault.code),
                failed->reply.operation ? proto::to_string(*failed->reply.operation) : "request",
                failed->fault.field.empty() ? "" : " field " + failed->fault.field,
                failed->fault.message, left_out_note(left_out));
        return respond(fault_response(codec, failed->reply, failed->fault));
    }
    if (broker_.stopping()) {
        auto& ok = std::get<proto::DecodedEvent>(decoded);
        return respond(fault_response(
            codec, ok.reply,
            proto::Fault{proto::FaultCode::unavailable, "the broker is shutting down", {}}));
    }

    auto& event = std::get<proto::DecodedEvent>(decoded);
    auto reply = event.reply;
    broker_.submit(
        std::move(event.event), started,
        [this, reply, started, respond = std::move(respond), fault_response,
         system = cms->id](SubmitResult r) mutable {
            // Encode on an I/O thread, never on the core or the journal thread.
            boost::asio::post(broker_.io(), [this, reply, started, respond = std::move(respond),
                                             fault_response, system = std::move(system),
                                             r = std::move(r)]() mutable {
                auto& codec = proto::IciServerCodec::for_this_thread();
                auto& metrics = broker_.soap_metrics();
                if (r.unavailable)
                    return respond(
                        fault_response(codec, reply,
                                       proto::Fault{proto::FaultCode::unavailable,
                                                    "the journal cannot take changes now",
                                                    {}}));
                if (auto* rejection = std::get_if<channels::Rejection>(&r.result)) {
                    auto code = rejection->code == channels::Rejection::Code::invalid_transition
                                    ? proto::FaultCode::invalid_transition
                                    : proto::FaultCode::invalid_field;
                    static LogLimit limit;
                    if (std::uint64_t left_out = 0; limit.allow(left_out))
                        spdlog::info("ici: {} fault {} for {}: {}: {}{}", system,
                                     proto::to_string(code), proto::to_string(*reply.operation),
                                     rejection->error.field, rejection->error.message,
                                     left_out_note(left_out));
                    return respond(fault_response(
                        codec, reply,
                        proto::Fault{code, rejection->error.message, rejection->error.field}));
                }
                auto outcome = std::get<channels::Outcome>(r.result);
                metrics.count_event(*reply.operation, outcome);
                metrics.ack_latency.observe(static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count()));
                respond(encoded_response(reply.version, 200, codec.encode_status(reply, outcome)));
            });
        });
}

}  // namespace cb::daemon
