#include "transport/http_server.hpp"

#include "transport/admission.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_set>

namespace cb::transport {
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using unix_socket = net::local::stream_protocol;

class SessionBase {
  public:
    virtual ~SessionBase() = default;
    /// Closes the connection if it is waiting for a request; otherwise it closes after the
    /// response in progress. Thread-safe (posts to the session's strand).
    virtual void drain() = 0;
};

struct HttpServer::Shared {
    std::function<HttpLimits()> limits;
    std::atomic<std::size_t> connections{0};
    std::atomic<bool> draining{false};
    HttpCounters counters;
    std::mutex mutex;
    std::unordered_set<SessionBase*> sessions;
    std::vector<std::function<void()>> closers;  // close the acceptors
};

namespace {

PeerInfo peer_of(const tcp::socket& s) {
    beast::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return {"?", "?", false};
    return {ep.address().to_string() + ":" + std::to_string(ep.port()), source_of(ep.address()),
            false};
}
PeerInfo peer_of(const unix_socket::socket&) {
    return {"unix", "", true};
}

/// A request framed by Content-Length alone, or by one `Transfer-Encoding: chunked` alone.
bool plain_framing(const Request& req) {
    auto te = req.count(http::field::transfer_encoding);
    if (te == 0) return true;
    if (te > 1 || req.count(http::field::content_length) > 0) return false;
    auto value = req[http::field::transfer_encoding];
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    return beast::iequals(value, "chunked");
}

Response plain_error(http::status status, unsigned version, std::string text) {
    Response res{status, version};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(text) + "\n";
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

/// One HTTP connection: read a request, hand it to the handler, write the response, repeat.
template <typename Protocol>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Protocol>> {
    using Stream =
        beast::basic_stream<Protocol, net::any_io_executor, beast::unlimited_rate_policy>;

  public:
    Session(typename Protocol::socket socket, PeerInfo peer, ConnectionBudget::Ticket ticket,
            std::shared_ptr<HttpServer::Shared> shared, std::shared_ptr<HttpHandler> handler)
        : stream_(std::move(socket)),
          shared_(std::move(shared)),
          handler_(std::move(handler)),
          peer_(std::move(peer)),
          ticket_(std::move(ticket)) {
        shared_->connections.fetch_add(1);
        std::lock_guard lock(shared_->mutex);
        shared_->sessions.insert(this);
    }

    ~Session() override {
        shared_->connections.fetch_sub(1);
        std::lock_guard lock(shared_->mutex);
        shared_->sessions.erase(this);
    }

    void start() {
        net::dispatch(stream_.get_executor(),
                      [self = this->shared_from_this()] { self->do_read(); });
    }

    void drain() override {
        // The session may be ending right now; only a live shared_ptr may be posted.
        auto self = this->weak_from_this().lock();
        if (!self) return;
        net::post(stream_.get_executor(), [self] {
            self->closing_ = true;
            if (self->reading_) self->stream_.cancel();
        });
    }

  private:
    void do_read() {
        if (closing_ || shared_->draining.load()) return do_close();
        auto limits = shared_->limits();
        parser_.emplace();
        parser_->body_limit(limits.max_body_bytes);
        parser_->header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
        stream_.expires_after(limits.idle_timeout);
        reading_ = true;
        http::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&Session::on_header, this->shared_from_this()));
    }

    void on_header(beast::error_code ec, std::size_t n) {
        if (ec) return on_read(ec, n);
        if (!plain_framing(parser_->get())) {
            // Framed by something other than its length or plain chunked coding: another hop
            // may read a different request from the same bytes. Refused before its body, and
            // the connection closed, so nothing that follows is read out of step.
            reading_ = false;
            shared_->counters.bad_requests.fetch_add(1);
            return write(plain_error(http::status::bad_request, 11,
                                     "Transfer-Encoding other than chunked, or together with "
                                     "Content-Length, is not accepted"));
        }
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        reading_ = false;
        if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
            ec == net::error::connection_reset || ec == net::error::eof)
            return do_close();
        if (ec == beast::error::timeout) {
            shared_->counters.timeouts.fetch_add(1);
            return do_close();
        }
        if (ec == http::error::body_limit) {
            shared_->counters.body_too_large.fetch_add(1);
            return write(
                plain_error(http::status::payload_too_large, 11, "request body over the limit"));
        }
        if (ec == http::error::header_limit) {
            shared_->counters.bad_requests.fetch_add(1);
            return write(plain_error(http::status::request_header_fields_too_large, 11,
                                     "request header over the limit"));
        }
        if (ec) {
            shared_->counters.bad_requests.fetch_add(1);
            return write(plain_error(http::status::bad_request, 11,
                                     "malformed HTTP request: " + ec.message()));
        }
        shared_->counters.requests.fetch_add(1);
        // No deadline while the handler works (it may wait for the journal); writes get one.
        stream_.expires_never();
        auto req = parser_->release();
        keep_alive_ = req.keep_alive();
        unsigned version = req.version();
        handler_->handle(
            std::move(req), peer_,
            [self = this->shared_from_this(), version](Response res) mutable {
                net::post(
                    self->stream_.get_executor(), [self, version, res = std::move(res)]() mutable {
                        res.version(version);
                        if (!self->keep_alive_ || self->closing_ || self->shared_->draining.load())
                            res.keep_alive(false);
                        self->write(std::move(res));
                    });
            });
    }

    void write(Response res) {
        auto out = std::make_shared<Response>(std::move(res));
        out->prepare_payload();
        bool close = !out->keep_alive();
        stream_.expires_after(shared_->limits().idle_timeout);
        http::async_write(
            stream_, *out,
            [self = this->shared_from_this(), out, close](beast::error_code ec, std::size_t) {
                if (ec || close) return self->do_close();
                self->do_read();
            });
    }

    void do_close() {
        beast::error_code ec;
        stream_.socket().shutdown(Protocol::socket::shutdown_send, ec);
        stream_.close();
    }

    Stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<HttpServer::Shared> shared_;
    std::shared_ptr<HttpHandler> handler_;
    PeerInfo peer_;
    ConnectionBudget::Ticket ticket_;  // this connection's place in its listener's budget
    bool keep_alive_ = true;
    bool reading_ = false;
    bool closing_ = false;
};

template <typename Protocol>
class Listener : public std::enable_shared_from_this<Listener<Protocol>> {
  public:
    Listener(net::io_context& ioc, typename Protocol::acceptor acceptor,
             std::shared_ptr<HttpServer::Shared> shared, std::shared_ptr<HttpHandler> handler,
             std::string name, std::function<BudgetLimits()> limits,
             std::shared_ptr<ConnectionBudget> parent)
        : ioc_(ioc),
          acceptor_(std::move(acceptor)),
          retry_(acceptor_.get_executor()),
          shared_(std::move(shared)),
          handler_(std::move(handler)),
          budget_(ConnectionBudget::create(std::move(limits), std::move(parent))),
          pacer_(std::move(name)) {}

    void start() {
        net::post(acceptor_.get_executor(),
                  [self = this->shared_from_this()] { self->do_accept(); });
    }
    void close() {
        net::post(acceptor_.get_executor(), [self = this->shared_from_this()] {
            beast::error_code ec;
            self->acceptor_.close(ec);
            self->retry_.cancel();
        });
    }

  private:
    void do_accept() {
        if (!acceptor_.is_open()) return;
        acceptor_.async_accept(
            net::make_strand(ioc_),
            beast::bind_front_handler(&Listener::on_accept, this->shared_from_this()));
    }

    void on_accept(beast::error_code ec, typename Protocol::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
            // Out of descriptors, the loop would spin: it waits, and says so once.
            auto wait = pacer_.failed(ec);
            if (wait.count() == 0) return do_accept();
            retry_.expires_after(wait);
            retry_.async_wait([self = this->shared_from_this()](beast::error_code e) {
                if (!e) self->do_accept();
            });
            return;
        }
        pacer_.accepted();
        auto peer = peer_of(socket);
        ConnectionBudget::Ticket ticket;
        auto refusal = budget_->take(peer.ip, ticket);
        if (refusal == ConnectionBudget::Refusal::none) {
            shared_->counters.accepted.fetch_add(1);
            std::make_shared<Session<Protocol>>(std::move(socket), std::move(peer),
                                                std::move(ticket), shared_, handler_)
                ->start();
        } else {
            // Closed unanswered: an answer would cost what the budget is there to bound.
            (refusal == ConnectionBudget::Refusal::per_address
                 ? shared_->counters.refused_per_address
                 : shared_->counters.refused_over_limit)
                .fetch_add(1);
            beast::error_code ignored;
            socket.close(ignored);
        }
        do_accept();
    }

    net::io_context& ioc_;
    typename Protocol::acceptor acceptor_;
    net::steady_timer retry_;  // the accept back-off (on the acceptor's strand)
    std::shared_ptr<HttpServer::Shared> shared_;
    std::shared_ptr<HttpHandler> handler_;
    std::shared_ptr<ConnectionBudget> budget_;
    AcceptPacer pacer_;
};

}  // namespace

HttpServer::HttpServer(net::io_context& ioc, std::function<HttpLimits()> limits,
                       std::shared_ptr<ConnectionBudget> all)
    : ioc_(ioc),
      all_(std::move(all)),
      shared_(std::make_shared<Shared>()),
      connections_(shared_->connections),
      counters_(shared_->counters) {
    shared_->limits = std::move(limits);
}

HttpServer::~HttpServer() {
    // Listeners a failed start left open: each holds the shared state, which holds its closer.
    std::lock_guard lock(shared_->mutex);
    for (auto& close : shared_->closers)
        close();
    shared_->closers.clear();
}

tcp::endpoint HttpServer::listen_tcp(const std::string& address, std::uint16_t port,
                                     std::shared_ptr<HttpHandler> handler) {
    tcp::endpoint ep(net::ip::make_address(address), port);
    tcp::acceptor acceptor(net::make_strand(ioc_));
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(net::socket_base::max_listen_connections);
    auto bound = acceptor.local_endpoint();
    auto name = "listener " + bound.address().to_string() + ":" + std::to_string(bound.port());
    auto l = std::make_shared<Listener<tcp>>(ioc_, std::move(acceptor), shared_, std::move(handler),
                                             name, listener_budget(std::weak_ptr<Shared>(shared_)),
                                             all_);
    l->start();
    std::lock_guard lock(shared_->mutex);
    shared_->closers.push_back([l] { l->close(); });
    return bound;
}

namespace {

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
    unix_socket::socket probe(probe_ctx);
    probe.open();
    probe.non_blocking(true);  // a server with a full backlog answers EAGAIN, not a wait
    probe.connect(unix_socket::endpoint(path), ec);
    if (!ec || ec == net::error::would_block || ec == net::error::try_again)
        throw std::runtime_error(
            "another process accepts connections on it (is a broker already running?)");
    if (ec != net::error::connection_refused)
        throw std::runtime_error("cannot tell whether it is in use: " + ec.message());
    ::unlink(path.c_str());  // a stale socket: nobody listens on it
}

}  // namespace

void HttpServer::listen_unix(const std::string& path, unsigned mode,
                             std::shared_ptr<HttpHandler> handler) {
    clear_socket_path(path);
    unix_socket::acceptor acceptor(net::make_strand(ioc_));
    unix_socket::endpoint ep(path);
    acceptor.open(ep.protocol());
    {
        // Made for the owner only; the configured mode follows once it is made, so nobody else
        // connects in between. The umask is the process's: a file another thread made in this
        // instant would get fewer permissions, never more.
        auto old = ::umask(0177);
        boost::system::error_code bind_ec;
        acceptor.bind(ep, bind_ec);
        ::umask(old);
        if (bind_ec) throw boost::system::system_error(bind_ec);
    }
    acceptor.listen(net::socket_base::max_listen_connections);
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0)
        throw std::runtime_error("cannot set the mode of " + path);
    struct stat made {};
    ::lstat(path.c_str(), &made);
    auto l = std::make_shared<Listener<unix_socket>>(
        ioc_, std::move(acceptor), shared_, std::move(handler), "listener unix:" + path,
        [shared = std::weak_ptr<Shared>(shared_)] {
            BudgetLimits b;
            if (auto s = shared.lock()) b.total = s->limits().unix_max_connections;
            b.per_address = 0;
            return b;
        },
        nullptr);  // never within the network listeners' budget
    l->start();
    std::lock_guard lock(shared_->mutex);
    shared_->closers.push_back([l, path, dev = made.st_dev, ino = made.st_ino] {
        l->close();
        // Only our own socket: whatever replaced it meanwhile is someone else's.
        struct stat now {};
        if (::lstat(path.c_str(), &now) == 0 && S_ISSOCK(now.st_mode) && now.st_dev == dev &&
            now.st_ino == ino)
            ::unlink(path.c_str());
    });
}

void HttpServer::drain() {
    shared_->draining.store(true);
    std::lock_guard lock(shared_->mutex);
    for (auto& close : shared_->closers)
        close();
    shared_->closers.clear();
    for (auto* s : shared_->sessions)
        s->drain();
}

}  // namespace cb::transport
