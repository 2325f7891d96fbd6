// One connection, whatever it runs on: TCP in clear, TLS over TCP, or the admin Unix socket.
// Sessions (HTTP and WebSocket alike) are written once against it; a deadline, a cancel and a
// close act on the socket underneath, and TLS, where there is some, is transparent to them.
//
// Like the streams it wraps, a Stream is used on its session's strand only. Include it only in
// source files (it brings Beast's and Asio's SSL templates).
#pragma once

#include "transport/tls.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <chrono>
#include <utility>
#include <variant>

namespace cb::transport {

namespace net = boost::asio;
namespace beast = boost::beast;

using TcpStream = beast::tcp_stream;
using UnixStream = beast::basic_stream<net::local::stream_protocol, net::any_io_executor,
                                       beast::unlimited_rate_policy>;
using TlsStream = beast::ssl_stream<TcpStream>;

class Stream {
  public:
    using executor_type = net::any_io_executor;

    /// TCP in clear.
    explicit Stream(TcpStream tcp) : s_(std::in_place_index<0>, std::move(tcp)) {}
    /// TLS over `tcp`, made with `context` (kept for as long as the connection lives).
    Stream(TcpStream tcp, TlsContext context)
        : context_(std::move(context)), s_(std::in_place_index<1>, std::move(tcp), *context_) {}
    /// The admin Unix socket.
    explicit Stream(UnixStream unix) : s_(std::in_place_index<2>, std::move(unix)) {}

    Stream(Stream&&) = default;
    Stream& operator=(Stream&&) = delete;  // as Beast's streams

    executor_type get_executor() noexcept {
        return std::visit([](auto& s) -> executor_type { return s.get_executor(); }, s_);
    }
    bool tls() const { return s_.index() == 1; }
    TlsStream& tls_stream() { return std::get<1>(s_); }

    /// The deadline of the operations started from now on (Beast's timeout: such an operation
    /// fails with beast::error::timeout and the socket is closed); one already in flight keeps
    /// the deadline it started with.
    template <class Duration>
    void expires_after(Duration d) {
        socket_layer([&](auto& s) { s.expires_after(d); });
    }
    void expires_at(std::chrono::steady_clock::time_point t) {
        socket_layer([&](auto& s) { s.expires_at(t); });
    }
    void expires_never() {
        socket_layer([](auto& s) { s.expires_never(); });
    }
    void cancel() {
        socket_layer([](auto& s) { s.cancel(); });
    }
    /// Says no more will be sent (a FIN; under TLS without close_notify), keeps reading.
    void shutdown_send() {
        socket_layer([](auto& s) {
            boost::system::error_code ec;
            s.socket().shutdown(net::socket_base::shutdown_send, ec);
        });
    }
    /// Closes the socket at once.
    void close() {
        socket_layer([](auto& s) { s.close(); });
    }
    /// Ends the connection politely: under TLS a close_notify (and the peer's, within
    /// `deadline`), in clear a FIN; then `done()`, which closes the socket or lets it go.
    template <class Done>
    void async_goodbye(std::chrono::milliseconds deadline, Done done) {
        if (!tls()) {
            shutdown_send();
            return net::post(get_executor(), std::move(done));
        }
        expires_after(deadline);
        tls_stream().async_shutdown(
            [done = std::move(done)](const boost::system::error_code&) mutable { done(); });
    }

    template <class Buffers, class Token>
    auto async_read_some(const Buffers& buffers, Token&& token) {
        return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const Buffers& b) {
                std::visit([&](auto& s) { s.async_read_some(b, std::move(handler)); }, s_);
            },
            token, buffers);
    }
    template <class Buffers, class Token>
    auto async_write_some(const Buffers& buffers, Token&& token) {
        return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const Buffers& b) {
                std::visit([&](auto& s) { s.async_write_some(b, std::move(handler)); }, s_);
            },
            token, buffers);
    }

    /// A WebSocket's close: TLS's close_notify where there is TLS, then the socket's teardown.
    template <class Handler>
    friend void async_teardown(beast::role_type role, Stream& stream, Handler&& handler) {
        std::visit(
            [&](auto& s) {
                using beast::websocket::async_teardown;
                async_teardown(role, s, std::forward<Handler>(handler));
            },
            stream.s_);
    }
    friend void teardown(beast::role_type role, Stream& stream, boost::system::error_code& ec) {
        std::visit(
            [&](auto& s) {
                using beast::websocket::teardown;
                teardown(role, s, ec);
            },
            stream.s_);
    }
    /// What Beast's WebSocket timeouts call to end a connection.
    friend void beast_close_socket(Stream& stream) { stream.close(); }

  private:
    template <class F>
    void socket_layer(F&& f) {
        switch (s_.index()) {
            case 0:
                return f(std::get<0>(s_));
            case 1:
                return f(beast::get_lowest_layer(std::get<1>(s_)));
            default:
                return f(std::get<2>(s_));
        }
    }

    TlsContext context_;  // declared first: outlives the TLS stream made with it
    std::variant<TcpStream, TlsStream, UnixStream> s_;
};

}  // namespace cb::transport
