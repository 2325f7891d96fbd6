// HTTP/1.1 listeners and sessions (Beast) for the ici and admin services, on TCP (in clear or
// under TLS) and on a Unix socket. Connections come from the one accept loop of every listener
// (transport/listener.hpp: budgets, back-off, TLS handshake). A session reads one request at a
// time (pipelined requests wait in the buffer), hands it to its service's handler, and writes
// the response the handler gives back, from any thread.
//
// Ownership: each session runs on its own strand; the server's bookkeeping (the set of live
// sessions, its listeners) is guarded by its own mutex. Every listener has its own connection
// budget (in all and per source address, transport/admission.hpp), so that a full SOAP port
// never locks out the admin API or the Unix socket, and its own accept back-off. Handlers never
// block.
#pragma once

#include "transport/listener.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cb::transport {

namespace net = boost::asio;
namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

/// Called exactly once per request with its response; may be called from any thread.
using Respond = std::function<void(Response)>;

class HttpHandler {
  public:
    virtual ~HttpHandler() = default;
    virtual void handle(Request&& request, const PeerInfo& peer, Respond respond) = 0;
};

struct HttpLimits : ListenerLimits {
    std::size_t max_body_bytes = 65536;
    std::size_t max_header_bytes = 8192;
    std::chrono::milliseconds idle_timeout{60000};
    unsigned unix_max_connections = 64;  ///< the Unix socket's own budget
};

/// Why sessions ended, counted for /metrics.
struct HttpCounters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> body_too_large{0};
    std::atomic<std::uint64_t> bad_requests{0};
    std::atomic<std::uint64_t> timeouts{0};
};

class HttpServer {
  public:
    /// `all`: the budget every TCP listener's connections are also taken from (none if null);
    /// the Unix socket never is.
    HttpServer(net::io_context& ioc, std::function<HttpLimits()> limits,
               std::shared_ptr<ConnectionBudget> all = {});
    ~HttpServer();

    /// Starts accepting on a TCP address, under TLS if `tls` is given; returns the bound
    /// endpoint (port 0 takes a free one).
    net::ip::tcp::endpoint listen_tcp(const std::string& address, std::uint16_t port,
                                      std::shared_ptr<HttpHandler> handler,
                                      std::shared_ptr<TlsCredentials> tls = {});
    /// Starts accepting on a Unix socket with file mode `mode`. A stale socket at `path` (nobody
    /// accepts on it) is replaced; anything else there (a file, a directory, a link, a socket
    /// another process serves) is refused with std::runtime_error and left alone. At the close
    /// the socket is removed only if it is still the one made here.
    void listen_unix(const std::string& path, unsigned mode, std::shared_ptr<HttpHandler> handler);

    /// Stops accepting, closes idle connections and lets the busy ones finish their request.
    void drain();
    std::size_t connections() const { return connections_.load(); }
    const HttpCounters& counters() const { return counters_; }
    /// Accepted and refused connections and failed TLS handshakes, of all its listeners.
    const ListenerCounters& listener_counters() const;

    struct Shared;  // what sessions share with the server

  private:
    net::io_context& ioc_;
    std::shared_ptr<ConnectionBudget> all_;
    std::shared_ptr<Shared> shared_;
    std::atomic<std::size_t>& connections_;
    HttpCounters& counters_;
};

}  // namespace cb::transport
