// The CMS links: what request() does on the caller's thread, and stopping with a probe in flight.
#include "cms/links.hpp"

#include "protocol/cms_codec.hpp"
#include "transport/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cms = cb::cms;
namespace transport = cb::transport;
using namespace cb::protocol;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

/// A loopback port nobody listens on: bound, read, closed again.
std::uint16_t closed_port() {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

cb::config::Cms cms_at(std::string id, std::string url) {
    cb::config::Cms c;
    c.id = std::move(id);
    c.url = std::move(url);
    c.request_timeout = 2s;
    c.probe_timeout = 2s;
    c.probe_interval = 1h;
    return c;
}

CmsRequest logon(std::string user) {
    CmsRequest r;
    r.op = CmsOp::logon;
    r.user_id = std::move(user);
    r.channels = {"phone"};
    return r;
}

}  // namespace

TEST_CASE("request() only posts: nothing is encoded, sent or answered on the caller's stack") {
    net::io_context ioc;
    cb::config::Config config;
    config.cms.push_back(
        cms_at("CMS-A", "http://127.0.0.1:" + std::to_string(closed_port()) + "/cms"));
    config.cms.push_back(cms_at("CMS-B", "ftp://nowhere"));
    cms::CmsLinks links(ioc);
    links.start(config, "node", "http://127.0.0.1:1/ici", {});

    std::vector<std::optional<cms::CmsResult>> results(3);
    auto done = [&](std::size_t i) { return [&results, i](cms::CmsResult r) { results[i] = r; }; };
    links.request("CMS-A", logon("alice"), done(0));
    links.request("CMS-X", logon("bob"), done(1));
    links.request("CMS-B", logon("carol"), done(2));
    for (auto& r : results)
        CHECK_FALSE(r.has_value());
    for (auto& s : links.status())
        CHECK(s.requests == 0);  // counted as it is encoded and handed to the HTTP client

    auto all_done = [&] {
        for (auto& r : results)
            if (!r) return false;
        return true;
    };
    while (!all_done() && ioc.run_one()) {
    }
    REQUIRE(all_done());
    REQUIRE(std::holds_alternative<CmsFault>(*results[0]));
    CHECK(std::get<CmsFault>(*results[0]).code == "unavailable");  // refused
    REQUIRE(std::holds_alternative<CmsFault>(*results[1]));
    CHECK(std::get<CmsFault>(*results[1]).code == "unknownSystem");
    REQUIRE(std::holds_alternative<CmsFault>(*results[2]));
    CHECK(std::get<CmsFault>(*results[2]).code == "unavailable");

    links.stop();
    ioc.run_for(30s);  // bounds a failure only
    CHECK(ioc.stopped());
}

TEST_CASE("a probe reports whether the CMS answered; stop() with one in flight leaves nothing") {
    net::io_context ioc;
    tcp::acceptor peer(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    std::optional<tcp::socket> probe_connection;
    peer.async_accept([&](boost::system::error_code ec, tcp::socket s) {
        if (!ec) probe_connection = std::move(s);  // held open, never answered
    });
    cb::config::Config config;
    auto cms = cms_at("CMS-A",
                      "http://127.0.0.1:" + std::to_string(peer.local_endpoint().port()) + "/cms");
    cms.probe_timeout = 200ms;  // the probe fails after this
    config.cms.push_back(cms);
    config.cms.push_back(cms_at("CMS-B", "ftp://nowhere"));
    cms::CmsLinks links(ioc);
    links.start(config, "node", "http://127.0.0.1:1/ici", {});
    // Nothing is probed until the broker asks (its CmsProbes decide when).
    for (int i = 0; i < 100; ++i)
        ioc.poll();
    CHECK_FALSE(probe_connection);
    std::optional<bool> unusable, silent;
    links.probe("CMS-B", [&](bool answered) { unusable = answered; });
    links.probe("CMS-A", [&](bool answered) { silent = answered; });
    CHECK_FALSE(unusable);  // never inside probe()
    while (!probe_connection && ioc.run_one()) {
    }
    REQUIRE(probe_connection);
    REQUIRE(unusable);
    CHECK(*unusable == false);  // no usable URL: no answer
    links.stop();
    peer.close();
    // The probe times out after stop() and is reported as no answer. run_for() only bounds a
    // failure: the io_context stops as soon as it has no more work.
    ioc.run_for(30s);
    CHECK(ioc.stopped());
    REQUIRE(silent);
    CHECK(*silent == false);
    auto status = links.status();
    REQUIRE(status.size() == 2);
    CHECK(status[0].last_probe.has_value());
    CHECK(status[0].last_error.find("timeout") == 0);
}

namespace {

/// A CMS that answers every request with the same fault.
struct FaultingCms : transport::HttpHandler {
    std::string message;
    void handle(transport::Request&&, const transport::PeerInfo&,
                transport::Respond respond) override {
        transport::Response res{boost::beast::http::status::internal_server_error, 11};
        res.set(boost::beast::http::field::content_type, "text/xml; charset=utf-8");
        res.body() = CmsCodec().encode_fault("m-1", CmsFault{"notAllowed", message, {}, true});
        res.prepare_payload();
        respond(std::move(res));
    }
};

}  // namespace

TEST_CASE("a CMS's fault text is passed on only up to limits maxFaultTextBytes, whole characters") {
    net::io_context ioc;
    auto cms_server = std::make_shared<FaultingCms>();
    std::string word = "Störung ";  // 9 bytes: a cut inside the ö would break UTF-8
    for (int i = 0; i < 1000; ++i)
        cms_server->message += word;
    transport::HttpServer server(ioc, [] { return transport::HttpLimits{}; });
    auto ep = server.listen_tcp("127.0.0.1", 0, cms_server);
    cb::config::Config config;
    config.cms.push_back(cms_at("CMS-A", "http://127.0.0.1:" + std::to_string(ep.port()) + "/cms"));
    config.limits.max_fault_text_bytes = 100;
    cms::CmsLinks links(ioc);
    links.start(config, "node", "http://127.0.0.1:1/ici", {});
    std::optional<cms::CmsResult> result;
    auto ask = [&] {
        result.reset();
        links.request("CMS-A", logon("alice"), [&](cms::CmsResult r) { result = std::move(r); });
        while (!result && ioc.run_one()) {
        }
        REQUIRE(result);
        REQUIRE(std::holds_alternative<CmsFault>(*result));
        return std::get<CmsFault>(*result);
    };
    auto fault = ask();
    CHECK(fault.code == "notAllowed");
    CHECK(fault.message.size() <= 100);
    CHECK(fault.message.size() >= 90);
    CHECK(fault.message.rfind("\xe2\x80\xa6") == fault.message.size() - 3);  // ends in "…"
    CHECK(fault.message.rfind("Störung St", 0) == 0);
    CHECK((static_cast<unsigned char>(fault.message[fault.message.size() - 4]) & 0xc0) != 0xc0);

    // A reload raises the limit: the next fault is passed on longer.
    config.limits.max_fault_text_bytes = 4096;
    links.set_reply_limits(config.limits);
    CHECK(ask().message.size() > 1000);
    links.stop();
    server.drain();
    ioc.run_for(5s);
}
