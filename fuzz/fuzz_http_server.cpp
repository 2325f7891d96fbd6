// The HTTP request path through the real session code: an HttpServer listens on 127.0.0.1 (port
// 0) with a small handler, and each input is written to it over a loopback TCP connection, which
// is then half-closed. The server must answer or close the connection in time and never crash.
// One io_context on the fuzzer's thread runs both ends.
#include "transport/http_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

namespace transport = cb::transport;
namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

/// Answers every request with its method, target and body size, as the services do: at once,
/// keeping the connection open when the request asks for it.
class EchoHandler : public transport::HttpHandler {
  public:
    void handle(transport::Request&& request, const transport::PeerInfo&,
                transport::Respond respond) override {
        transport::Response res{http::status::ok, request.version()};
        res.set(http::field::content_type, "text/plain");
        res.body() = std::string(request.method_string()) + " " + std::string(request.target()) +
                     " " + std::to_string(request.body().size()) + "\n";
        res.keep_alive(request.keep_alive());
        respond(std::move(res));
    }
};

/// Small limits so that the limit paths are reachable with short inputs.
transport::HttpLimits small_limits() {
    transport::HttpLimits limits;
    limits.max_body_bytes = 1024;
    limits.max_header_bytes = 512;
    limits.idle_timeout = 500ms;
    limits.max_connections = 16;
    return limits;
}

struct Server {
    net::io_context ioc;
    transport::HttpServer http{ioc, small_limits};
    tcp::endpoint endpoint = http.listen_tcp("127.0.0.1", 0, std::make_shared<EchoHandler>());
};

/// One connection's client side; its handlers keep it alive.
struct Client {
    explicit Client(net::io_context& ioc) : socket(ioc), deadline(ioc) {}
    tcp::socket socket;
    net::steady_timer deadline;
    std::string input;
    std::string received;
    bool done = false;
    bool timed_out = false;
};

void read_until_closed(const std::shared_ptr<Client>& c) {
    c->received.reserve(c->received.size() + 4096);
    auto buffer = net::dynamic_buffer(c->received);
    net::async_read(c->socket, buffer, [c](boost::system::error_code, std::size_t) {
        // Closed by the server (eof), reset, or cancelled by the deadline: the exchange is over.
        c->done = true;
        c->deadline.cancel();
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Server& server = *new Server;  // lives for the whole run; never torn down mid-input
    auto c = std::make_shared<Client>(server.ioc);
    c->input.assign(reinterpret_cast<const char*>(data), size);
    // The client closes first, so each connection leaves a TIME_WAIT behind; at thousands of
    // inputs a second, a single source address runs out of ports. Loopback is 127.0.0.0/8: the
    // source address goes round 127.1.0.1 to 127.1.0.254.
    static unsigned next_source = 0;
    auto source = net::ip::make_address_v4(0x7f010001u + next_source++ % 254);
    boost::system::error_code connect_error;
    c->socket.open(tcp::v4());
    c->socket.bind(tcp::endpoint(source, 0), connect_error);
    if (!connect_error) {
        // Asynchronous: a blocking connect() can be cut short (EINTR) by libFuzzer's timer
        // signal, which a long run met once ("Interrupted system call").
        bool connected = false;
        c->socket.async_connect(server.endpoint, [&](boost::system::error_code ec) {
            connect_error = ec;
            connected = true;
        });
        while (!connected)
            server.ioc.run_one();
    }
    if (connect_error) {
        std::fprintf(stderr, "cannot connect to the server: %s\n", connect_error.message().c_str());
        std::abort();
    }
    // If the deadline cuts the exchange short, closing resets the connection at once.
    c->socket.set_option(net::socket_base::linger(true, 0));
    // The server closes an idle connection after 500 ms; it has much longer than that.
    c->deadline.expires_after(5s);
    c->deadline.async_wait([c](boost::system::error_code ec) {
        if (ec) return;
        c->timed_out = true;
        boost::system::error_code ignored;
        c->socket.cancel(ignored);
    });
    net::async_write(c->socket, net::buffer(c->input),
                     [c](boost::system::error_code ec, std::size_t) {
                         boost::system::error_code ignored;
                         if (!ec) c->socket.shutdown(tcp::socket::shutdown_send, ignored);
                         read_until_closed(c);
                     });
    while (!c->done)
        server.ioc.run_one();
    while (server.ioc.poll() > 0) {
    }
    if (c->timed_out) {
        std::fprintf(stderr, "the server neither closed nor answered within 5 s; got %zu bytes\n",
                     c->received.size());
        std::abort();
    }
    boost::system::error_code ignored;
    c->socket.close(ignored);
    return 0;
}
