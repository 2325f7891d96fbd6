#include "transport/http_client.hpp"

#include "config/password.hpp"
#include "transport/stream.hpp"
#include "transport/tls.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <deque>
#include <regex>
#include <vector>

namespace cb::transport {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::optional<HttpUrl> HttpUrl::parse(const std::string& url) {
    static const std::regex re(
        R"(^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?(/[^\s#]*)?$)");
    std::smatch m;
    if (!std::regex_match(url, m, re)) return std::nullopt;
    HttpUrl u;
    u.tls = m[1].str() == "https";
    u.host = m[2].str();
    if (u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
    u.port = m[3].matched ? m[3].str() : (u.tls ? "443" : "80");
    u.target = m[4].matched ? m[4].str() : "/";
    return u;
}

namespace {

struct Job {
    std::string body;
    std::string action;
    Clock::time_point deadline;
    HttpClient::Done done;
    bool retried = false;
};

}  // namespace

struct HttpClient::Impl {
    struct Conn {
        explicit Conn(Stream s) : stream(std::move(s)) {}
        Stream stream;
        beast::flat_buffer buffer;
        http::request<http::string_body> request;
        std::optional<http::response_parser<http::string_body>> parser;
        bool used = false;  // has carried a request before: it may have been closed by the peer
    };

    Impl(net::io_context& ioc, HttpClientOptions o)
        : strand(net::make_strand(ioc)),
          resolver(strand),
          wait_timer(strand),
          options(std::move(o)) {
        if (!options.user.empty())
            authorization = "Basic " + config::base64_encode(options.user + ":" + options.password);
        if (options.max_connections == 0) options.max_connections = 1;
        if (options.url.tls && !options.tls)
            options.tls = TlsCredentials::load(TlsCredentials::Side::client, {});
    }

    net::strand<net::io_context::executor_type> strand;
    tcp::resolver resolver;
    /// Armed for the earliest deadline in `waiting` (at `wait_timer_at`) while any job waits.
    net::steady_timer wait_timer;
    Clock::time_point wait_timer_at = Clock::time_point::max();
    HttpClientOptions options;
    std::string authorization;
    std::vector<std::shared_ptr<Conn>> idle;
    std::deque<Job> waiting;  // for a connection, all max_connections being busy
    unsigned busy = 0;
    bool closed = false;
    std::weak_ptr<HttpClient> self;

    void finish(Job& job, HttpReply reply) {
        auto done = std::move(job.done);
        done(std::move(reply));
    }

    static HttpReply failure(std::string why, bool timed_out = false) {
        HttpReply r;
        r.error = std::move(why);
        r.timed_out = timed_out;
        return r;
    }

    /// Starts waiting jobs while connections are free; the rest keep waiting, until their
    /// deadline at most.
    void pump() {
        while (!waiting.empty() && (busy < options.max_connections)) {
            Job job = std::move(waiting.front());
            waiting.pop_front();
            if (Clock::now() >= job.deadline) {
                finish(job, failure("timeout", true));
                continue;
            }
            ++busy;
            if (!idle.empty()) {
                auto c = std::move(idle.back());
                idle.pop_back();
                send(std::move(c), std::move(job));
            } else {
                connect(std::move(job));
            }
        }
        watch_waiting();
    }

    /// Keeps the wait timer on the earliest deadline of the waiting jobs, or idle if none waits.
    /// Its completion holds the client, like every other one here; cancelling it lets go.
    void watch_waiting() {
        auto earliest = Clock::time_point::max();
        for (auto& job : waiting)
            earliest = std::min(earliest, job.deadline);
        if (earliest == wait_timer_at) return;
        wait_timer_at = earliest;
        if (waiting.empty()) {
            wait_timer.cancel();
            return;
        }
        wait_timer.expires_at(earliest);  // cancels the wait for the previous deadline
        wait_timer.async_wait([this, owner = self.lock()](beast::error_code ec) {
            if (ec == net::error::operation_aborted) return;
            wait_timer_at = Clock::time_point::max();
            expire_waiting();
        });
    }

    /// Fails the waiting jobs whose deadline has passed.
    void expire_waiting() {
        auto now = Clock::now();
        std::vector<Job> expired;
        for (auto it = waiting.begin(); it != waiting.end();) {
            if (it->deadline <= now) {
                expired.push_back(std::move(*it));
                it = waiting.erase(it);
            } else {
                ++it;
            }
        }
        for (auto& job : expired)
            finish(job, failure("timeout", true));
        watch_waiting();
    }

    void connect(Job job) {
        auto owner = self.lock();
        resolver.async_resolve(
            options.url.host, options.url.port,
            [this, owner, job = std::move(job)](beast::error_code ec,
                                                tcp::resolver::results_type results) mutable {
                if (ec)
                    return done_with(nullptr, std::move(job), failure("resolve: " + ec.message()));
                auto tcp_stream = std::make_shared<TcpStream>(strand);
                tcp_stream->expires_at(job.deadline);
                tcp_stream->async_connect(
                    results, [this, owner, tcp_stream, job = std::move(job)](
                                 beast::error_code ec, const tcp::endpoint&) mutable {
                        if (ec)
                            return done_with(
                                nullptr, std::move(job),
                                failure(ec == beast::error::timeout ? "timeout"
                                                                    : "connect: " + ec.message(),
                                        ec == beast::error::timeout));
                        beast::error_code ignored;
                        tcp_stream->socket().set_option(tcp::no_delay(true), ignored);
                        if (!options.url.tls)
                            return send(std::make_shared<Conn>(Stream(std::move(*tcp_stream))),
                                        std::move(job));
                        handshake(std::make_shared<Conn>(
                                      Stream(std::move(*tcp_stream), options.tls->current())),
                                  std::move(job));
                    });
            });
    }

    /// TLS with the server's name (SNI) and its certificate checked against it.
    void handshake(std::shared_ptr<Conn> c, Job job) {
        auto owner = self.lock();
        auto& tls = c->stream.tls_stream();
        beast::error_code not_an_address;  // SNI carries names only
        net::ip::make_address(options.url.host, not_an_address);
        if (not_an_address &&
            !SSL_set_tlsext_host_name(tls.native_handle(), options.url.host.c_str()))
            return done_with(nullptr, std::move(job), failure("tls: cannot set the server name"));
        tls.set_verify_callback(net::ssl::host_name_verification(options.url.host));
        tls.async_handshake(net::ssl::stream_base::client, [this, owner, c, job = std::move(job)](
                                                               beast::error_code ec) mutable {
            if (ec) {
                bool timeout = ec == beast::error::timeout;
                return done_with(nullptr, std::move(job),
                                 failure(timeout ? "timeout" : "tls: " + ec.message(), timeout));
            }
            send(c, std::move(job));
        });
    }

    void send(std::shared_ptr<Conn> c, Job job) {
        auto owner = self.lock();
        auto& req = c->request;
        req = {};
        req.method(http::verb::post);
        req.target(options.url.target);
        req.version(11);
        req.set(http::field::host, options.url.host + ":" + options.url.port);
        req.set(http::field::content_type, "text/xml; charset=utf-8");
        req.set("SOAPAction", "\"" + job.action + "\"");
        if (!authorization.empty()) req.set(http::field::authorization, authorization);
        req.keep_alive(true);
        req.body() = job.body;
        req.prepare_payload();
        c->stream.expires_at(job.deadline);
        http::async_write(
            c->stream, req,
            [this, owner, c, job = std::move(job)](beast::error_code ec, std::size_t) mutable {
                if (ec) return failed_io(c, std::move(job), ec);
                c->parser.emplace();
                c->parser->body_limit(options.max_response_bytes);
                c->buffer.clear();
                http::async_read(c->stream, c->buffer, *c->parser,
                                 [this, owner, c, job = std::move(job)](beast::error_code ec,
                                                                        std::size_t) mutable {
                                     if (ec) return failed_io(c, std::move(job), ec);
                                     auto res = c->parser->release();
                                     HttpReply reply;
                                     reply.ok = true;
                                     reply.status = res.result_int();
                                     reply.body = std::move(res.body());
                                     c->used = true;
                                     done_with(res.keep_alive() ? c : nullptr, std::move(job),
                                               std::move(reply));
                                 });
            });
    }

    /// A reused connection the peer had closed fails before any byte of a reply: the request
    /// was not taken, so it goes once more on a fresh connection.
    void failed_io(std::shared_ptr<Conn> c, Job job, beast::error_code ec) {
        bool stale = c->used && !job.retried &&
                     (ec == http::error::end_of_stream || ec == net::error::eof ||
                      ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                      ec == net::ssl::error::stream_truncated) &&
                     Clock::now() < job.deadline;
        if (stale) {
            job.retried = true;
            return connect(std::move(job));
        }
        bool timeout = ec == beast::error::timeout;
        done_with(nullptr, std::move(job), failure(timeout ? "timeout" : ec.message(), timeout));
    }

    void done_with(std::shared_ptr<Conn> keep, Job job, HttpReply reply) {
        --busy;
        if (keep && !closed) {
            keep->stream.expires_never();
            idle.push_back(std::move(keep));
        }
        finish(job, std::move(reply));
        pump();
    }
};

std::shared_ptr<HttpClient> HttpClient::create(net::io_context& ioc, HttpClientOptions options) {
    auto c = std::shared_ptr<HttpClient>(
        new HttpClient(std::make_unique<Impl>(ioc, std::move(options))));
    c->impl_->self = c;
    return c;
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

void HttpClient::post(std::string body, std::string action, std::chrono::milliseconds timeout,
                      Done done) {
    net::post(impl_->strand, [self = shared_from_this(),
                              job = Job{std::move(body), std::move(action), Clock::now() + timeout,
                                        std::move(done)}]() mutable {
        auto& m = *self->impl_;
        if (m.closed) return m.finish(job, Impl::failure("closed"));
        if (m.waiting.size() >= m.options.max_waiting)
            return m.finish(job, Impl::failure("busy: " + std::to_string(m.waiting.size()) +
                                               " requests already wait for a connection"));
        m.waiting.push_back(std::move(job));
        m.pump();
    });
}

void HttpClient::close() {
    net::post(impl_->strand, [self = shared_from_this()] {
        auto& m = *self->impl_;
        m.closed = true;
        for (auto& c : m.idle)
            c->stream.close();
        m.idle.clear();
        while (!m.waiting.empty()) {
            auto job = std::move(m.waiting.front());
            m.waiting.pop_front();
            m.finish(job, Impl::failure("closed"));
        }
        m.watch_waiting();
    });
}

}  // namespace cb::transport
