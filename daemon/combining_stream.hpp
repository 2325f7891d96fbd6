// A write-combining stream layer for the desktop WebSocket: each write is copied into a buffer
// and completed at once while the buffer holds less than `limit` bytes; the buffer goes out in
// one write while the previous one is in flight. Frames queued back to back therefore leave in
// one system call instead of one each. Past the limit a write completes only when the buffer
// has gone out, so a socket that does not drain still stops its writer.
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
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cb::daemon {

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
  public:
    using executor_type = typename NextLayer::executor_type;

    template <class... Args>
    explicit CombiningStream(Args&&... args) : next_(std::forward<Args>(args)...) {}

    executor_type get_executor() noexcept { return next_.get_executor(); }
    NextLayer& next_layer() noexcept { return next_; }
    const NextLayer& next_layer() const noexcept { return next_; }
    void set_limit(std::size_t limit) { limit_ = limit; }

    template <class MutableBuffers, class Handler>
    void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        next_.async_read_some(buffers, std::forward<Handler>(handler));
    }

    template <class ConstBuffers, class Handler>
    void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        auto n = boost::asio::buffer_size(buffers);
        if (error_) return complete(std::forward<Handler>(handler), error_, 0);
        auto at = pending_.size();
        pending_.resize(at + n);
        boost::asio::buffer_copy(boost::asio::buffer(pending_.data() + at, n), buffers);
        if (pending_.size() < limit_) {
            complete(std::forward<Handler>(handler), {}, n);
        } else {
            // Over the limit: this writer waits until its bytes have gone out.
            waiting_.push_back(detail::make_waiter(
                [h = std::forward<Handler>(handler), n](boost::beast::error_code ec) mutable {
                    h(ec, ec ? 0 : n);
                }));
        }
        flush();
    }

    /// Sends what is buffered, then calls `done` (teardown goes through this).
    template <class Handler>
    void async_drain(Handler&& done) {
        if (pending_.empty() && !flushing_) return complete_drain(std::forward<Handler>(done));
        drained_.push_back(detail::make_waiter(std::forward<Handler>(done)));
        flush();
    }

  private:
    template <class Handler>
    void complete(Handler&& handler, boost::beast::error_code ec, std::size_t n) {
        boost::asio::post(get_executor(),
                          [h = std::forward<Handler>(handler), ec, n]() mutable { h(ec, n); });
    }
    template <class Handler>
    void complete_drain(Handler&& done) {
        boost::asio::post(get_executor(),
                          [h = std::forward<Handler>(done), ec = error_]() mutable { h(ec); });
    }

    void flush() {
        if (flushing_ || pending_.empty()) return;
        flushing_ = true;
        sending_.swap(pending_);
        pending_.clear();
        auto waiting = std::move(waiting_);
        waiting_.clear();
        boost::asio::async_write(
            next_, boost::asio::buffer(sending_),
            [this, waiting = std::move(waiting)](boost::beast::error_code ec, std::size_t) mutable {
                flushing_ = false;
                sending_.clear();
                if (ec && !error_) error_ = ec;
                for (auto& w : waiting)
                    (*w)(ec);
                if (!pending_.empty() && !error_) return flush();
                auto drained = std::move(drained_);
                drained_.clear();
                for (auto& d : drained)
                    (*d)(error_);
                if (error_) {
                    // Nothing more will go out: fail whoever still waits.
                    auto rest = std::move(waiting_);
                    waiting_.clear();
                    for (auto& w : rest)
                        (*w)(error_);
                }
            });
    }

    NextLayer next_;
    std::string pending_;
    std::string sending_;
    std::vector<std::unique_ptr<detail::Waiter>> waiting_;
    std::vector<std::unique_ptr<detail::Waiter>> drained_;
    bool flushing_ = false;
    boost::beast::error_code error_;
    std::size_t limit_ = 64 * 1024;
};

/// WebSocket closing: what is buffered goes out first, then the next layer's teardown.
template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, CombiningStream<NextLayer>& stream,
                    TeardownHandler&& handler) {
    stream.async_drain([&stream, role, h = std::forward<TeardownHandler>(handler)](
                           boost::beast::error_code) mutable {
        using boost::beast::websocket::async_teardown;
        async_teardown(role, stream.next_layer(), std::move(h));
    });
}

template <class NextLayer>
void teardown(boost::beast::role_type role, CombiningStream<NextLayer>& stream,
              boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    teardown(role, stream.next_layer(), ec);
}

}  // namespace cb::daemon
