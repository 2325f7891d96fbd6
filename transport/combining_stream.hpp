// A write-combining stream layer for the desktop WebSocket: each write is copied into a buffer
// and completed at once while the buffer holds less than `limit` bytes; the buffer goes out in
// one write while the previous one is in flight. Frames queued back to back therefore leave in
// one system call instead of one each. Past the limit a write completes only when the buffer
// has gone out, so a socket that does not drain still stops its writer.
//
// Lifetime: everything the in-flight write touches (the next layer, both buffers, the waiting
// completions) lives in a block shared by the stream and that write's completion, as Beast's
// tcp_stream keeps its own state. A write completes with no waiter at all (its frames were
// completed when they were buffered), so the session that owns the stream may be gone by the
// time it does; the completion then finds only the shared block, and frees it.
//
// Reads pass through. Used only on a session's strand: no locks. Include it only where the
// WebSocket stream is defined (it is a template over Beast types).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cb::transport {

namespace detail {
/// A move-only completion waiting for a flush (Beast's handlers cannot be copied).
struct Waiter {
    virtual ~Waiter() = default;
    virtual void operator()(boost::beast::error_code ec) = 0;
};
template <class F>
struct WaiterOf : Waiter {
    explicit WaiterOf(F f) : f(std::move(f)) {}
    void operator()(boost::beast::error_code ec) override { f(ec); }
    F f;
};
template <class F>
std::unique_ptr<Waiter> make_waiter(F&& f) {
    return std::make_unique<WaiterOf<std::decay_t<F>>>(std::forward<F>(f));
}
}  // namespace detail

template <class NextLayer>
class CombiningStream {
    struct State {
        template <class... Args>
        explicit State(Args&&... args) : next(std::forward<Args>(args)...) {}
        NextLayer next;
        std::string pending;
        std::string sending;
        std::vector<std::unique_ptr<detail::Waiter>> waiting;
        std::vector<std::unique_ptr<detail::Waiter>> drained;
        bool flushing = false;
        boost::beast::error_code error;
        std::size_t limit = 64 * 1024;
    };

  public:
    using executor_type = typename NextLayer::executor_type;

    template <class... Args>
    explicit CombiningStream(Args&&... args)
        : s_(std::make_shared<State>(std::forward<Args>(args)...)) {}

    executor_type get_executor() noexcept { return s_->next.get_executor(); }
    NextLayer& next_layer() noexcept { return s_->next; }
    const NextLayer& next_layer() const noexcept { return s_->next; }
    void set_limit(std::size_t limit) { s_->limit = limit; }

    template <class MutableBuffers, class Handler>
    void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        s_->next.async_read_some(buffers, std::forward<Handler>(handler));
    }

    template <class ConstBuffers, class Handler>
    void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        auto& s = *s_;
        auto n = boost::asio::buffer_size(buffers);
        if (s.error) return complete(std::forward<Handler>(handler), s.error, 0);
        auto at = s.pending.size();
        s.pending.resize(at + n);
        boost::asio::buffer_copy(boost::asio::buffer(s.pending.data() + at, n), buffers);
        if (s.pending.size() < s.limit) {
            complete(std::forward<Handler>(handler), {}, n);
        } else {
            // Over the limit: this writer waits until its bytes have gone out.
            s.waiting.push_back(detail::make_waiter(
                [h = std::forward<Handler>(handler), n](boost::beast::error_code ec) mutable {
                    h(ec, ec ? 0 : n);
                }));
        }
        flush(s_);
    }

    /// Sends what is buffered, then closes the next layer as a WebSocket teardown does; `done`
    /// gets the teardown's result.
    template <class Handler>
    void async_teardown_after_drain(boost::beast::role_type role, Handler&& done) {
        auto then = [s = s_, role,
                     h = std::forward<Handler>(done)](boost::beast::error_code) mutable {
            using boost::beast::websocket::async_teardown;
            async_teardown(role, s->next, std::move(h));
        };
        if (s_->pending.empty() && !s_->flushing) {
            boost::asio::post(get_executor(), [then = std::move(then)]() mutable {
                then(boost::beast::error_code{});
            });
            return;
        }
        s_->drained.push_back(detail::make_waiter(std::move(then)));
        flush(s_);
    }

  private:
    template <class Handler>
    void complete(Handler&& handler, boost::beast::error_code ec, std::size_t n) {
        boost::asio::post(get_executor(),
                          [h = std::forward<Handler>(handler), ec, n]() mutable { h(ec, n); });
    }

    /// Starts a write of what is pending unless one is in flight. The completion holds the
    /// shared block, never the stream: the stream may be destroyed before it runs.
    static void flush(const std::shared_ptr<State>& state) {
        auto& s = *state;
        if (s.flushing || s.pending.empty()) return;
        s.flushing = true;
        s.sending.swap(s.pending);
        s.pending.clear();
        auto waiting = std::move(s.waiting);
        s.waiting.clear();
        boost::asio::async_write(s.next, boost::asio::buffer(s.sending),
                                 [state, waiting = std::move(waiting)](boost::beast::error_code ec,
                                                                       std::size_t) mutable {
                                     auto& s = *state;
                                     s.flushing = false;
                                     s.sending.clear();
                                     if (ec && !s.error) s.error = ec;
                                     for (auto& w : waiting)
                                         (*w)(ec);
                                     if (!s.pending.empty() && !s.error) return flush(state);
                                     auto drained = std::move(s.drained);
                                     s.drained.clear();
                                     for (auto& d : drained)
                                         (*d)(s.error);
                                     if (s.error) {
                                         // Nothing more will go out: fail whoever still waits.
                                         auto rest = std::move(s.waiting);
                                         s.waiting.clear();
                                         for (auto& w : rest)
                                             (*w)(s.error);
                                     }
                                 });
    }

    std::shared_ptr<State> s_;
};

/// WebSocket closing: what is buffered goes out first, then the next layer's teardown.
template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, CombiningStream<NextLayer>& stream,
                    TeardownHandler&& handler) {
    stream.async_teardown_after_drain(role, std::forward<TeardownHandler>(handler));
}

template <class NextLayer>
void teardown(boost::beast::role_type role, CombiningStream<NextLayer>& stream,
              boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    teardown(role, stream.next_layer(), ec);
}

}  // namespace cb::transport
