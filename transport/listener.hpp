// The one accept loop of every listener (the ici and admin HTTP ports, the desktop WebSocket
// port, the admin Unix socket): it accepts, takes the connection's place in the listener's
// budget (and the budget of all TCP listeners), backs off when descriptors run out, does the
// TLS handshake where the listener has TLS, and hands the ready Stream to its owner.
//
// Ownership: the acceptor, its back-off and its retry timer live on the acceptor's own strand;
// close() posts there, so an accept that completes after the close finds the acceptor closed
// and ends the loop. Each connection gets a strand of its own at accept (on the listener's
// io_context, or where the owner's connection_executor puts it); its handshake runs there, and
// so does the owner's callback. A connection that fails its handshake (plain text
// on a TLS port, an old protocol version, a client that does not trust the certificate) or
// does not finish it within handshakeTimeout is closed and counted; so is one from a source over
// its rate of new handshakes (HandshakeRate), before any TLS work is done for it.
#pragma once

#include "transport/admission.hpp"
#include "transport/tls.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace cb::transport {

class Stream;

/// Who is at the other end of a connection.
struct PeerInfo {
    std::string address;        ///< "ip:port", or "unix" for the admin socket
    std::string ip;             ///< the source's key (source_of()); empty for the admin socket
    bool local_socket = false;  ///< came through the Unix socket: file permissions decided
};

/// What one server's listeners did with connections, for /metrics.
struct ListenerCounters {
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> refused_over_limit{0};   ///< the listener's budget was full
    std::atomic<std::uint64_t> refused_per_address{0};  ///< the source's share was full
    std::atomic<std::uint64_t> tls_failures{0};         ///< handshakes that failed or timed out
    std::atomic<std::uint64_t> tls_rate_limited{0};     ///< over the source's handshake rate
};

/// The limits every TCP listener has, whatever it serves (read at each connection).
struct ListenerLimits {
    unsigned max_connections = 20000;             ///< per listener
    unsigned max_connections_per_address = 1000;  ///< per listener and source; 0: no bound
    std::chrono::milliseconds tls_handshake_timeout{10000};  ///< from accept to TLS's end
    unsigned tls_handshakes_per_source = 200;  ///< new TLS handshakes a second per source; 0: any
};

struct ListenerOptions {
    std::string name;  ///< for the log: "ici listener 0.0.0.0:8450"
    std::function<BudgetLimits()> budget;
    std::shared_ptr<ConnectionBudget> parent;  ///< all TCP listeners' budget; null for none
    std::shared_ptr<TlsCredentials> tls;       ///< null: in clear
    /// New handshakes per source and second (limits tlsHandshakesPerSource); null: no bound.
    std::shared_ptr<HandshakeRate> handshake_rate;
    std::function<std::chrono::milliseconds()> handshake_timeout;  ///< read at each handshake
    std::shared_ptr<ListenerCounters> counters;
    /// The executor each new connection lives on (a strand of some io_context); empty: a strand
    /// of the listener's own io_context.
    std::function<boost::asio::any_io_executor()> connection_executor;
};

/// The options of a TCP listener whose limits its owner decides while it lives: `Owner` has
/// limits(), which returns a ListenerLimits (or a struct derived from it).
template <typename Owner>
ListenerOptions owned_listener_options(std::string name, const std::shared_ptr<Owner>& owner,
                                       std::shared_ptr<ConnectionBudget> parent,
                                       std::shared_ptr<TlsCredentials> tls,
                                       std::shared_ptr<ListenerCounters> counters) {
    std::weak_ptr<Owner> weak = owner;
    ListenerOptions o;
    o.name = std::string(tls ? "TLS " : "") + std::move(name);
    o.budget = listener_budget(weak);
    o.parent = std::move(parent);
    o.tls = std::move(tls);
    o.handshake_timeout = [weak] {
        auto s = weak.lock();
        return s ? std::chrono::milliseconds(s->limits().tls_handshake_timeout)
                 : std::chrono::milliseconds(10000);
    };
    if (o.tls)
        o.handshake_rate = std::make_shared<HandshakeRate>([weak] {
            auto s = weak.lock();
            return s ? s->limits().tls_handshakes_per_source : 0u;
        });
    o.counters = std::move(counters);
    return o;
}

/// Gets each connection, ready (TLS handshake done), on the connection's own strand.
using OnConnection = std::function<void(Stream&& stream, PeerInfo peer, ConnectionBudget::Ticket)>;

class Listener : public std::enable_shared_from_this<Listener> {
  public:
    /// Binds and starts accepting on a TCP address (port 0 takes a free one); throws on failure.
    static std::shared_ptr<Listener> tcp(boost::asio::io_context& ioc, const std::string& address,
                                         std::uint16_t port, ListenerOptions options,
                                         OnConnection on_connection);
    /// Binds and starts accepting on a Unix socket with file mode `mode`. A stale socket at
    /// `path` (nobody accepts on it) is replaced; anything else there (a file, a directory, a
    /// link, a socket another process serves) is refused with std::runtime_error and left
    /// alone. close() removes the socket only if it is still the one made here.
    static std::shared_ptr<Listener> unix_socket(boost::asio::io_context& ioc,
                                                 const std::string& path, unsigned mode,
                                                 ListenerOptions options,
                                                 OnConnection on_connection);
    ~Listener();

    /// The bound TCP address (unspecified for a Unix socket).
    boost::asio::ip::tcp::endpoint endpoint() const { return endpoint_; }
    const std::shared_ptr<TlsCredentials>& tls() const;
    /// Stops accepting (a Unix socket's file is removed at once). Any thread. A handshake in
    /// progress is closed when it ends instead of being handed over; connections already
    /// handed over are not touched.
    void close();

    struct Impl;

  private:
    explicit Listener(std::unique_ptr<Impl> impl);
    boost::asio::ip::tcp::endpoint endpoint_;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cb::transport
