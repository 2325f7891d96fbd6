#include "transport/http_server.hpp"

#include "transport/admission.hpp"
#include "transport/listener.hpp"
#include "transport/stream.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include <optional>
#include <unordered_set>

namespace cb::transport {
namespace beast = boost::beast;
using tcp = net::ip::tcp;

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
    std::shared_ptr<ListenerCounters> listener_counters = std::make_shared<ListenerCounters>();
    std::mutex mutex;
    std::unordered_set<SessionBase*> sessions;
    std::vector<std::shared_ptr<Listener>> listeners;
};

namespace {

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
class Session : public SessionBase, public std::enable_shared_from_this<Session> {
  public:
    Session(Stream stream, PeerInfo peer, ConnectionBudget::Ticket ticket,
            std::shared_ptr<HttpServer::Shared> shared, std::shared_ptr<HttpHandler> handler)
        : stream_(std::move(stream)),
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
        // Under TLS: a client that closed without close_notify (stream_truncated), or any
        // other failure of the TLS layer: nothing can be answered on it.
        if (ec.category() == net::error::get_ssl_category() ||
            ec == net::ssl::error::stream_truncated) {
            stream_.close();
            return;
        }
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
        if (closed_) return;
        closed_ = true;
        stream_.async_goodbye(std::chrono::seconds(1),
                              [self = this->shared_from_this()] { self->stream_.close(); });
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
    bool closed_ = false;  // the goodbye has been started
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
    // Listeners a failed start left open.
    std::lock_guard lock(shared_->mutex);
    for (auto& l : shared_->listeners)
        l->close();
    shared_->listeners.clear();
}

namespace {
OnConnection session_maker(std::shared_ptr<HttpServer::Shared> shared,
                           std::shared_ptr<HttpHandler> handler) {
    return [shared = std::move(shared), handler = std::move(handler)](
               Stream&& stream, PeerInfo peer, ConnectionBudget::Ticket ticket) {
        std::make_shared<Session>(std::move(stream), std::move(peer), std::move(ticket), shared,
                                  handler)
            ->start();
    };
}
}  // namespace

tcp::endpoint HttpServer::listen_tcp(const std::string& address, std::uint16_t port,
                                     std::shared_ptr<HttpHandler> handler,
                                     std::shared_ptr<TlsCredentials> tls) {
    auto o = owned_listener_options("listener " + address + ":" + std::to_string(port), shared_,
                                    all_, std::move(tls), shared_->listener_counters);
    auto l = Listener::tcp(ioc_, address, port, std::move(o),
                           session_maker(shared_, std::move(handler)));
    std::lock_guard lock(shared_->mutex);
    shared_->listeners.push_back(l);
    return l->endpoint();
}

void HttpServer::listen_unix(const std::string& path, unsigned mode,
                             std::shared_ptr<HttpHandler> handler) {
    ListenerOptions o;
    o.name = "listener unix:" + path;
    o.budget = [shared = std::weak_ptr<Shared>(shared_)] {
        BudgetLimits b;
        if (auto s = shared.lock()) b.total = s->limits().unix_max_connections;
        b.per_address = 0;
        return b;
    };
    o.parent = nullptr;  // never within the network listeners' budget
    o.counters = shared_->listener_counters;
    auto l = Listener::unix_socket(ioc_, path, mode, std::move(o),
                                   session_maker(shared_, std::move(handler)));
    std::lock_guard lock(shared_->mutex);
    shared_->listeners.push_back(l);
}

void HttpServer::drain() {
    shared_->draining.store(true);
    std::lock_guard lock(shared_->mutex);
    for (auto& l : shared_->listeners)
        l->close();
    shared_->listeners.clear();
    for (auto* s : shared_->sessions)
        s->drain();
}

const ListenerCounters& HttpServer::listener_counters() const {
    return *shared_->listener_counters;
}

}  // namespace cb::transport
