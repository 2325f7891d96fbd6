#include "transport/listener.hpp"

#include "transport/stream.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

namespace cb::transport {
using tcp = net::ip::tcp;
using unix_protocol = net::local::stream_protocol;

namespace {

PeerInfo peer_of(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return {"?", "?", false};
    return {ep.address().to_string() + ":" + std::to_string(ep.port()), source_of(ep.address()),
            false};
}
PeerInfo peer_of(const unix_protocol::socket&) {
    return {"unix", "", true};
}

/// Clears the way for a Unix socket at `path`: removes a stale socket, refuses anything else.
void clear_socket_path(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw std::runtime_error(std::string("cannot look at it: ") + std::strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        throw std::runtime_error(
            "something that is not a socket is there (a file, a directory or a link); it was "
            "left alone: remove it or choose another path");
    boost::system::error_code ec;
    net::io_context probe_ctx;
    unix_protocol::socket probe(probe_ctx);
    probe.open();
    probe.non_blocking(true);  // a server with a full backlog answers EAGAIN, not a wait
    probe.connect(unix_protocol::endpoint(path), ec);
    if (!ec || ec == net::error::would_block || ec == net::error::try_again)
        throw std::runtime_error(
            "another process accepts connections on it (is a broker already running?)");
    if (ec != net::error::connection_refused)
        throw std::runtime_error("cannot tell whether it is in use: " + ec.message());
    ::unlink(path.c_str());  // a stale socket: nobody listens on it
}

/// A connection between accept and the end of its TLS handshake.
/// A connection between accept and the end of its TLS handshake. Until the client's first
/// bytes arrive it is a bare socket and a timer: the TLS state (some 70 KiB of buffers) is made
/// only then, so that a connection that never speaks costs little while it waits.
struct Handshake {
    Handshake(tcp::socket s, PeerInfo p, ConnectionBudget::Ticket t)
        : socket(std::move(s)),
          timer(socket.get_executor()),
          peer(std::move(p)),
          ticket(std::move(t)) {}
    tcp::socket socket;
    net::steady_timer timer;  // the handshake's deadline while the socket waits to be read
    std::optional<Stream> stream;
    PeerInfo peer;
    ConnectionBudget::Ticket ticket;
};

}  // namespace

struct Listener::Impl {
    Impl(net::io_context& ioc, ListenerOptions o, OnConnection on)
        : ioc(ioc),
          strand(net::make_strand(ioc)),
          retry(strand),
          options(std::move(o)),
          on_connection(std::move(on)),
          budget(ConnectionBudget::create(options.budget, options.parent)),
          pacer(options.name) {
        if (!options.counters) options.counters = std::make_shared<ListenerCounters>();
    }
    net::io_context& ioc;
    net::strand<net::io_context::executor_type> strand;  // the acceptor's
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<unix_protocol::acceptor> unix_acceptor;
    net::steady_timer retry;  // the accept back-off
    ListenerOptions options;
    OnConnection on_connection;
    std::shared_ptr<ConnectionBudget> budget;
    AcceptPacer pacer;
    // set by close(), read by handshakes that end after it
    std::shared_ptr<std::atomic<bool>> closed = std::make_shared<std::atomic<bool>>(false);
    // the Unix socket made here: removed at the close only if it is still this one
    std::string unix_path;
    dev_t unix_dev = 0;
    ino_t unix_ino = 0;

    bool open() const {
        return tcp_acceptor ? tcp_acceptor->is_open() : unix_acceptor && unix_acceptor->is_open();
    }
};

namespace {

void accept_next(const std::shared_ptr<Listener>& self, Listener::Impl& m);

/// Hands a ready connection to the owner, on the connection's strand.
void hand_over(const OnConnection& on_connection, Stream stream, PeerInfo peer,
               ConnectionBudget::Ticket ticket) {
    auto ex = stream.get_executor();
    net::post(ex, [on_connection, stream = std::move(stream), peer = std::move(peer),
                   ticket = std::move(ticket)]() mutable {
        on_connection(std::move(stream), std::move(peer), std::move(ticket));
    });
}

}  // namespace

namespace {

template <class Socket>
void on_accept(const std::shared_ptr<Listener>& self, Listener::Impl& m,
               boost::system::error_code ec, Socket socket) {
    auto& o = m.options;
    auto& on_connection = m.on_connection;
    if (ec == net::error::operation_aborted || !m.open()) return;
    if (ec) {
        // Out of descriptors, the loop would spin: it waits, and says so once.
        auto wait = m.pacer.failed(ec);
        if (wait.count() == 0) return accept_next(self, m);
        m.retry.expires_after(wait);
        m.retry.async_wait([self, &m](boost::system::error_code e) {
            if (!e) accept_next(self, m);
        });
        return;
    }
    m.pacer.accepted();
    auto peer = peer_of(socket);
    ConnectionBudget::Ticket ticket;
    auto refusal = m.budget->take(peer.ip, ticket);
    if (refusal != ConnectionBudget::Refusal::none) {
        // Closed unanswered: an answer would cost what the budget is there to bound.
        (refusal == ConnectionBudget::Refusal::per_address ? o.counters->refused_per_address
                                                           : o.counters->refused_over_limit)
            .fetch_add(1);
        boost::system::error_code ignored;
        socket.close(ignored);
        return accept_next(self, m);
    }
    o.counters->accepted.fetch_add(1);
    if constexpr (std::is_same_v<Socket, unix_protocol::socket>) {
        hand_over(on_connection, Stream(UnixStream(std::move(socket))), std::move(peer),
                  std::move(ticket));
    } else if (!o.tls) {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        hand_over(on_connection, Stream(TcpStream(std::move(socket))), std::move(peer),
                  std::move(ticket));
    } else {
        if (o.handshake_rate &&
            !o.handshake_rate->take(peer.ip, std::chrono::steady_clock::now())) {
            // Closed before any TLS work: the source opens connections faster than its rate.
            o.counters->tls_rate_limited.fetch_add(1);
            boost::system::error_code ignored;
            socket.close(ignored);
            return accept_next(self, m);
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto hs =
            std::make_shared<Handshake>(std::move(socket), std::move(peer), std::move(ticket));
        auto timeout =
            o.handshake_timeout ? o.handshake_timeout() : std::chrono::milliseconds(10000);
        auto deadline = std::chrono::steady_clock::now() + timeout;
        auto failed = [counters = o.counters, name = o.name](Handshake& h,
                                                             const boost::system::error_code& ec) {
            // Plain text on a TLS port, a protocol or cipher it does not offer, a certificate it
            // does not trust, or silence: counted, not logged per connection (anyone can
            // cause it).
            counters->tls_failures.fetch_add(1);
            spdlog::debug("{}: TLS handshake with {} failed: {}", name, h.peer.address,
                          ec.message());
        };
        net::post(hs->socket.get_executor(), [hs, on_connection, tls = o.tls, deadline, failed,
                                              closed = m.closed] {
            if (closed->load()) return;  // the listener stopped meanwhile
            hs->timer.expires_at(deadline);
            hs->timer.async_wait([hs](const boost::system::error_code& ec) {
                boost::system::error_code ignored;
                if (!ec) hs->socket.close(ignored);  // silent until the deadline
            });
            hs->socket.async_wait(tcp::socket::wait_read, [hs, on_connection, tls, deadline, failed,
                                                           closed](boost::system::error_code ec) {
                hs->timer.cancel();
                if (closed->load()) return;
                if (ec)
                    return failed(*hs, ec == net::error::operation_aborted
                                           ? make_error_code(beast::error::timeout)
                                           : ec);
                auto& stream = hs->stream.emplace(TcpStream(std::move(hs->socket)), tls->current());
                stream.expires_at(deadline);
                stream.tls_stream().async_handshake(
                    net::ssl::stream_base::server,
                    [hs, on_connection, failed, closed](boost::system::error_code ec) {
                        if (closed->load()) return hs->stream->close();
                        if (ec) {
                            failed(*hs, ec);
                            return hs->stream->close();
                        }
                        hs->stream->expires_never();
                        on_connection(std::move(*hs->stream), std::move(hs->peer),
                                      std::move(hs->ticket));
                    });
            });
        });
    }
    accept_next(self, m);
}

void accept_next(const std::shared_ptr<Listener>& self, Listener::Impl& m) {
    if (!m.open()) return;
    if (m.tcp_acceptor)
        m.tcp_acceptor->async_accept(m.options.connection_executor
                                         ? m.options.connection_executor()
                                         : net::any_io_executor(net::make_strand(m.ioc)),
                                     [self, &m](boost::system::error_code ec, tcp::socket s) {
                                         on_accept(self, m, ec, std::move(s));
                                     });
    else
        m.unix_acceptor->async_accept(
            net::make_strand(m.ioc),
            [self, &m](boost::system::error_code ec, unix_protocol::socket s) {
                on_accept(self, m, ec, std::move(s));
            });
}

}  // namespace

Listener::Listener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Listener::~Listener() = default;

const std::shared_ptr<TlsCredentials>& Listener::tls() const {
    return impl_->options.tls;
}

std::shared_ptr<Listener> Listener::tcp(net::io_context& ioc, const std::string& address,
                                        std::uint16_t port, ListenerOptions options,
                                        OnConnection on_connection) {
    auto impl = std::make_unique<Impl>(ioc, std::move(options), std::move(on_connection));
    tcp::endpoint ep(net::ip::make_address(address), port);
    auto& a = impl->tcp_acceptor.emplace(impl->strand);
    a.open(ep.protocol());
    a.set_option(net::socket_base::reuse_address(true));
    a.bind(ep);
    a.listen(net::socket_base::max_listen_connections);
    auto l = std::shared_ptr<Listener>(new Listener(std::move(impl)));
    l->endpoint_ = l->impl_->tcp_acceptor->local_endpoint();
    // The first accept is armed on the acceptor's strand too, so that it never races a close().
    net::post(l->impl_->strand, [l] { accept_next(l, *l->impl_); });
    return l;
}

std::shared_ptr<Listener> Listener::unix_socket(net::io_context& ioc, const std::string& path,
                                                unsigned mode, ListenerOptions options,
                                                OnConnection on_connection) {
    clear_socket_path(path);
    auto impl = std::make_unique<Impl>(ioc, std::move(options), std::move(on_connection));
    auto& a = impl->unix_acceptor.emplace(impl->strand);
    unix_protocol::endpoint ep(path);
    a.open(ep.protocol());
    {
        // Made for the owner only; the configured mode follows once it is made, so nobody else
        // connects in between. The umask is the process's: a file another thread made in this
        // instant would get fewer permissions, never more.
        auto old = ::umask(0177);
        boost::system::error_code bind_ec;
        a.bind(ep, bind_ec);
        ::umask(old);
        if (bind_ec) throw boost::system::system_error(bind_ec);
    }
    a.listen(net::socket_base::max_listen_connections);
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0)
        throw std::runtime_error("cannot set the mode of " + path);
    struct stat made {};
    ::lstat(path.c_str(), &made);
    impl->unix_path = path;
    impl->unix_dev = made.st_dev;
    impl->unix_ino = made.st_ino;
    auto l = std::shared_ptr<Listener>(new Listener(std::move(impl)));
    net::post(l->impl_->strand, [l] { accept_next(l, *l->impl_); });
    return l;
}

void Listener::close() {
    auto& m = *impl_;
    if (m.closed->exchange(true)) return;
    if (!m.unix_path.empty()) {
        // At once, not on the strand: after a failed start nothing runs the strand any more.
        // Only our own socket: whatever replaced it meanwhile is someone else's.
        struct stat now {};
        if (::lstat(m.unix_path.c_str(), &now) == 0 && S_ISSOCK(now.st_mode) &&
            now.st_dev == m.unix_dev && now.st_ino == m.unix_ino)
            ::unlink(m.unix_path.c_str());
    }
    net::post(m.strand, [self = shared_from_this()] {
        auto& m = *self->impl_;
        boost::system::error_code ec;
        if (m.tcp_acceptor) m.tcp_acceptor->close(ec);
        if (m.unix_acceptor) m.unix_acceptor->close(ec);
        m.retry.cancel();
    });
}

}  // namespace cb::transport
