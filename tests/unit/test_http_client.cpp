// The HTTP client against a loopback peer that accepts connections and never answers.
#include "transport/http_client.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace transport = cb::transport;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

/// Accepts every connection on 127.0.0.1 and holds it open without reading or answering.
struct SilentPeer {
    tcp::acceptor acceptor;
    std::vector<tcp::socket> held;
    std::function<void()> accept_next;

    explicit SilentPeer(net::io_context& ioc)
        : acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
        accept_next = [this] {
            acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
                if (ec) return;
                held.push_back(std::move(s));
                accept_next();
            });
        };
        accept_next();
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/cms";
    }
    void close() {
        boost::system::error_code ec;
        acceptor.close(ec);
        for (auto& s : held)
            s.close(ec);
    }
};

}  // namespace

TEST_CASE("a request waiting for a connection fails at its own deadline, not when one frees up") {
    net::io_context ioc;
    SilentPeer peer(ioc);
    transport::HttpClientOptions o;
    o.url = *transport::HttpUrl::parse(peer.url());
    o.max_connections = 1;
    auto client = transport::HttpClient::create(ioc, o);

    std::vector<std::string> order;
    transport::HttpReply slow, quick;
    client->post("<a/>", "a", 2s, [&](transport::HttpReply r) {
        slow = std::move(r);
        order.push_back("slow");
    });
    // Waits for the one connection, which the first request holds until its deadline.
    client->post("<b/>", "b", 100ms, [&](transport::HttpReply r) {
        quick = std::move(r);
        order.push_back("quick");
    });
    while (order.size() < 2 && ioc.run_one()) {
    }
    REQUIRE(order.size() == 2);
    CHECK(order[0] == "quick");
    CHECK_FALSE(quick.ok);
    CHECK(quick.timed_out);
    CHECK(quick.error == "timeout");
    CHECK(slow.timed_out);
    CHECK(peer.held.size() == 1);  // the waiting request never had a connection

    client->close();
    peer.close();
    ioc.run();  // nothing is left waiting: the io_context runs out of work
    CHECK(order.size() == 2);
}

TEST_CASE("a request still waiting when the client is closed fails at once with closed") {
    net::io_context ioc;
    SilentPeer peer(ioc);
    transport::HttpClientOptions o;
    o.url = *transport::HttpUrl::parse(peer.url());
    o.max_connections = 1;
    auto client = transport::HttpClient::create(ioc, o);

    std::vector<std::string> order;
    transport::HttpReply waiting;
    client->post("<a/>", "a", 2s, [&](transport::HttpReply) { order.push_back("busy"); });
    client->post("<b/>", "b", 1500ms, [&](transport::HttpReply r) {
        waiting = std::move(r);
        order.push_back("waiting");
    });
    while (peer.held.empty() && ioc.run_one()) {
    }
    client->close();
    while (order.empty() && ioc.run_one()) {
    }
    REQUIRE(order.size() == 1);
    CHECK(order[0] == "waiting");
    CHECK(waiting.error == "closed");
    CHECK_FALSE(waiting.timed_out);
    peer.close();
    ioc.run();
    CHECK(order.size() == 2);
}

TEST_CASE("requests beyond max_waiting fail at once with busy; those queued keep their place") {
    net::io_context ioc;
    SilentPeer peer(ioc);
    transport::HttpClientOptions o;
    o.url = *transport::HttpUrl::parse(peer.url());
    o.max_connections = 1;
    o.max_waiting = 2;
    auto client = transport::HttpClient::create(ioc, o);

    std::vector<std::string> order;
    std::vector<transport::HttpReply> replies(5);
    for (int i = 0; i < 5; ++i)
        client->post("<a/>", "a", 300ms, [&, i](transport::HttpReply r) {
            replies[i] = std::move(r);
            order.push_back(std::to_string(i));
        });
    // One holds the connection, two wait; the fourth and fifth are refused before any deadline.
    while (order.size() < 2 && ioc.run_one()) {
    }
    REQUIRE(order.size() == 2);
    CHECK(order[0] == "3");
    CHECK(order[1] == "4");
    CHECK(replies[3].error.rfind("busy", 0) == 0);
    CHECK_FALSE(replies[3].timed_out);
    while (order.size() < 5 && ioc.run_one()) {
    }
    for (int i = 0; i < 3; ++i)
        CHECK(replies[i].timed_out);
    client->close();
    peer.close();
    ioc.run();
}
