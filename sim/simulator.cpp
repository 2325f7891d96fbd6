#include "sim/state.hpp"

namespace cb::sim {

namespace {

transport::Response json_response(http::status status, const json::value& body) {
    transport::Response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = json::serialize(body) + "\n";
    res.prepare_payload();
    return res;
}

transport::Response json_error(http::status status, std::string_view code, std::string message) {
    return json_response(status, json::object{{"error", {{"code", code}, {"message", message}}}});
}

}  // namespace

Simulator::Simulator(net::io_context& ioc, Options options)
    : ioc_(ioc), options_(std::move(options)), state_(std::make_unique<State>(ioc_, options_)) {}

Simulator::~Simulator() = default;

void Simulator::start() {
    if (!options_.preload.empty()) state_->preload(options_.preload);
    state_->schedule_offers();
}

void Simulator::handle(transport::Request&& req, const transport::PeerInfo&,
                       transport::Respond respond) {
    // Sessions call from their strands; the simulator's state belongs to its one thread.
    net::post(ioc_, [self = shared_from_this(), req = std::move(req),
                     respond = std::move(respond)]() mutable {
        auto& s = *self->state_;
        std::string target(req.target());
        if (target.rfind("/control/", 0) == 0) {
            auto action = target.substr(9);
            if (action == "state" && req.method() == http::verb::get)
                return respond(json_response(http::status::ok, s.state_json()));
            if (req.method() != http::verb::post)
                return respond(json_error(http::status::method_not_allowed, "method",
                                          "control actions are POSTs"));
            boost::system::error_code ec;
            auto body = json::parse(req.body().empty() ? "{}" : req.body(), ec);
            if (ec || !body.is_object())
                return respond(json_error(http::status::bad_request, "invalidJson",
                                          "the body must be a JSON object"));
            try {
                return respond(
                    json_response(http::status::ok, s.control(action, body.as_object())));
            } catch (const std::invalid_argument& e) {
                return respond(json_error(http::status::bad_request, "invalidRequest", e.what()));
            } catch (const std::exception& e) {
                return respond(json_error(http::status::conflict, "notPossible", e.what()));
            }
        }
        if (req.method() != http::verb::post)
            return respond(json_error(http::status::method_not_allowed, "method",
                                      "POST a SOAP request to the IciCms port"));
        if (!self->options_.user.empty()) {
            auto creds = daemon::parse_basic(req[http::field::authorization]);
            if (!creds || creds->user != self->options_.user ||
                creds->password != self->options_.password) {
                transport::Response res{http::status::unauthorized, 11};
                res.set(http::field::www_authenticate, "Basic realm=\"commbroker-cmss\"");
                res.prepare_payload();
                return respond(std::move(res));
            }
        }
        if (s.stalled) {
            s.held.push_back({std::move(respond), std::move(req.body())});
            return;
        }
        s.answer(std::move(req.body()), std::move(respond));
    });
}

}  // namespace cb::sim
