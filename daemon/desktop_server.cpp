#include "daemon/desktop_server.hpp"

#include "daemon/logging.hpp"
#include "daemon/thread_priority.hpp"
#include "protocol/desktop_codec.hpp"
#include "transport/admission.hpp"
#include "transport/combining_stream.hpp"
#include "transport/listener.hpp"
#include "transport/stream.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>

namespace cb::daemon {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

struct DesktopServer::Shared {
    std::shared_ptr<DesktopService> service;
    std::function<DesktopLimits()> limits;
    std::atomic<std::size_t> connections{0};
    std::shared_ptr<transport::ListenerCounters> listener_counters =
        std::make_shared<transport::ListenerCounters>();
    std::atomic<std::uint64_t> hello_timeouts{0};
    std::atomic<std::uint64_t> idle_timeouts{0};
    std::shared_ptr<transport::ConnectionBudget> all;  // of every TCP listener; may be null
    std::mutex mutex;
    std::vector<std::shared_ptr<transport::Listener>> listeners;
};

struct DesktopSession::Impl {
    struct Frame {
        std::string text;       // a ready frame, or
        std::uint64_t seq = 0;  // an event, written as event_frame(seq, …)
        channels::EventPtr event;
        bool bye = false;
        bool urgent = false;  // kept when a close drops what is queued
    };

    Impl(transport::Stream stream, std::shared_ptr<DesktopServer::Shared> shared,
         transport::ConnectionBudget::Ticket ticket)
        : ws(std::move(stream)),
          timer(ws.get_executor()),
          hello_timer(ws.get_executor()),
          idle_timer(ws.get_executor()),
          shared(std::move(shared)),
          ticket(std::move(ticket)) {}

    // Frames queued back to back leave in one system call (combining_stream.hpp).
    websocket::stream<transport::CombiningStream<transport::Stream>> ws;
    net::steady_timer timer;
    net::steady_timer hello_timer;  // from the upgrade to the first frame: helloTimeout
    // desktopIdleTimeout after what was last heard. Armed for that moment, and when it comes
    // armed again for the new one if the desktop spoke meanwhile: a frame costs a clock read,
    // not a timer (Beast's own idle timeout re-arms one on every read; it is off).
    net::steady_timer idle_timer;
    std::chrono::steady_clock::time_point last_heard;
    std::chrono::steady_clock::time_point pinged_at;  // the last_heard a ping was sent after
    bool pinging = false;                             // that ping is not done yet
    std::shared_ptr<DesktopServer::Shared> shared;
    transport::ConnectionBudget::Ticket ticket;  // this connection's place in its listener's budget
    beast::flat_buffer buffer;
    http::request<http::string_body> upgrade;
    std::optional<http::request_parser<http::string_body>> parser;
    std::deque<Frame> queue;
    std::string writing_text;
    bool writing = false;
    bool open = false;      // the WebSocket handshake is done
    bool finished = false;  // on_closed has been called
    bool bye_queued = false;
    bool heard = false;  // a frame came: the hello deadline is over
    struct Held {
        bool text = true;
        std::string frame;
    };
    std::optional<Held> held;  // read while the hello was pending (take_requests())
    DesktopSession* self = nullptr;

    std::shared_ptr<DesktopSession> owner() { return self->shared_from_this(); }

    void start() {
        beast::get_lowest_layer(ws).expires_after(shared->limits().handshake_timeout);
        parser.emplace();
        parser->header_limit(8192);
        parser->body_limit(0);
        http::async_read(
            beast::get_lowest_layer(ws), buffer, *parser,
            [o = owner()](beast::error_code ec, std::size_t) { o->impl_->on_upgrade_read(ec); });
    }

    void refuse(http::status status, std::string why) {
        auto res = std::make_shared<http::response<http::string_body>>(status, 11);
        res->set(http::field::content_type, "text/plain; charset=utf-8");
        res->body() = why + "\n";
        res->keep_alive(false);
        res->prepare_payload();
        http::async_write(
            beast::get_lowest_layer(ws), *res, [o = owner(), res](beast::error_code, std::size_t) {
                beast::get_lowest_layer(o->impl_->ws).async_goodbye(std::chrono::seconds(1), [o] {
                    o->impl_->finish();
                });
            });
    }

    void on_upgrade_read(beast::error_code ec) {
        if (ec) return finish();
        upgrade = parser->release();
        if (upgrade.target() != "/desktop")
            return refuse(http::status::not_found, "the desktop protocol is at /desktop");
        if (!websocket::is_upgrade(upgrade))
            return refuse(http::status::upgrade_required,
                          "/desktop speaks WebSocket: send an Upgrade request");
        auto limits = shared->limits();
        beast::get_lowest_layer(ws).expires_never();
        auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
        timeouts.handshake_timeout = limits.handshake_timeout;
        timeouts.idle_timeout = websocket::stream_base::none();  // idle_timer instead
        ws.set_option(timeouts);
        ws.read_message_max(limits.max_frame_bytes);
        ws.auto_fragment(false);
        ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
            res.set(http::field::server, "commbrokerd/" COMMBROKER_VERSION);
        }));
        ws.control_callback([this](websocket::frame_type kind, beast::string_view) {
            if (kind == websocket::frame_type::close) return;
            // Nothing is answered before hello: a ping first closes the socket unanswered.
            if (!heard) {
                spdlog::debug("desktop {}: a ping before hello; closed", self->peer());
                return finish();
            }
            last_heard = std::chrono::steady_clock::now();
            shared->service->on_ping(owner(), kind == websocket::frame_type::pong);
        });
        ws.async_accept(upgrade, [o = owner()](beast::error_code ec) {
            auto& m = *o->impl_;
            if (ec) return m.finish();
            m.open = true;
            // The desktop has helloTimeout to say hello; a silent socket is closed then.
            m.hello_timer.expires_after(m.shared->limits().hello_timeout);
            m.hello_timer.async_wait([o](beast::error_code e) {
                auto& m = *o->impl_;
                if (e || m.heard || m.finished) return;
                m.shared->hello_timeouts.fetch_add(1);
                o->close(channels::ByeReason::auth_required);
            });
            m.last_heard = std::chrono::steady_clock::now();
            m.watch_idle(m.last_heard + m.shared->limits().idle_timeout);
            m.read();
        });
    }

    void read() {
        buffer.clear();
        ws.async_read(buffer, [o = owner()](beast::error_code ec, std::size_t) {
            auto& m = *o->impl_;
            if (ec) {
                static LogLimit limit;
                if (std::uint64_t left_out = 0;
                    ec == websocket::error::message_too_big && limit.allow(left_out))
                    spdlog::info("desktop {} {}: frame over maxFrameBytes, closed (1009){}",
                                 o->peer(), o->agent(), left_out_note(left_out));
                return m.finish();
            }
            m.last_heard = std::chrono::steady_clock::now();
            if (!m.heard) {
                m.heard = true;
                m.hello_timer.cancel();
            }
            // Sent before the hello's answer (a desktop need not wait for its welcome): kept
            // for take_requests(), and the next frames stay in the socket until then.
            if (o->hello_pending()) {
                m.held = Held{m.ws.got_text(), beast::buffers_to_string(m.buffer.data())};
                return;
            }
            m.deliver(o, m.ws.got_text(), beast::buffers_to_string(m.buffer.data()));
        });
    }

    /// Closes the connection once nothing has been heard from it for desktopIdleTimeout (as
    /// configured when the timer comes due); looks again at `due`.
    void watch_idle(std::chrono::steady_clock::time_point due) {
        idle_timer.expires_at(due);
        idle_timer.async_wait([o = owner()](beast::error_code ec) {
            auto& m = *o->impl_;
            if (ec || m.finished) return;
            auto timeout = m.shared->limits().idle_timeout;
            auto now = std::chrono::steady_clock::now();
            // Before the first frame the hello timer is in charge; a desktop waiting for its
            // welcome is not idle.
            if (!m.heard || o->hello_pending()) return m.watch_idle(now + timeout);
            // Silent for half the timeout: a ping, which a live desktop answers with a pong
            // (contact, and heard), as a desktop whose heartbeat interval is longer needs.
            if (now < m.last_heard + timeout / 2) return m.watch_idle(m.last_heard + timeout / 2);
            if (now < m.last_heard + timeout) {
                // One ping at a time (Beast holds one waiting behind a write, no more).
                if (!m.pinging && m.pinged_at != m.last_heard && !o->closing() && !m.bye_queued) {
                    m.pinged_at = m.last_heard;
                    m.pinging = true;
                    m.ws.async_ping({}, [o](beast::error_code) { o->impl_->pinging = false; });
                }
                return m.watch_idle(m.last_heard + timeout);
            }
            m.shared->idle_timeouts.fetch_add(1);
            static LogLimit limit;
            if (std::uint64_t left_out = 0; limit.allow(left_out))
                spdlog::info(
                    "desktop {} {}: nothing heard for {} ms (desktopIdleTimeout), closed{}",
                    o->peer(), o->agent(), timeout.count(), left_out_note(left_out));
            m.finish();
        });
    }

    /// A frame read: to the service, then the next read.
    void deliver(const std::shared_ptr<DesktopSession>& o, bool text, std::string frame) {
        if (!text)
            shared->service->on_binary(o);
        else
            shared->service->on_text(o, std::move(frame));
        if (!o->closing()) read();
    }

    void push(Frame f) {
        queue.push_back(std::move(f));
        if (!writing && open) write_next();
    }

    void write_next() {
        if (queue.empty()) {
            writing = false;
            if (self->hub_waiting.load()) shared->service->on_drained(owner());
            return;
        }
        writing = true;
        auto& f = queue.front();
        if (f.event)
            writing_text = protocol::event_frame(f.seq, f.event->name, f.event->data);
        else
            writing_text = std::move(f.text);
        ws.text(true);
        ws.async_write(net::buffer(writing_text), [o = owner()](beast::error_code ec, std::size_t) {
            auto& m = *o->impl_;
            auto f = std::move(m.queue.front());
            m.queue.pop_front();
            o->unwritten_.fetch_sub(1);
            if (ec) return m.finish();
            if (f.event && f.event->received != channels::SteadyTime{})
                m.shared->service->on_event_written(f.event->received);
            if (f.bye) return m.close_now();
            m.write_next();
        });
    }

    void close_now() {
        timer.cancel();
        ws.async_close(websocket::close_code::normal,
                       [o = owner()](beast::error_code) { o->impl_->finish(); });
    }

    void finish() {
        if (finished) return;
        finished = true;
        timer.cancel();
        hello_timer.cancel();
        idle_timer.cancel();
        beast::get_lowest_layer(ws).close();
        self->closing_.store(true);
        shared->connections.fetch_sub(1);
        ticket.reset();
        shared->service->on_closed(owner());
    }
};

DesktopSession::DesktopSession(std::unique_ptr<Impl> impl, std::string peer, std::string ip)
    : impl_(std::move(impl)), peer_(std::move(peer)), ip_(std::move(ip)) {
    impl_->self = this;
}

void DesktopSession::start() {
    net::post(impl_->ws.get_executor(), [o = shared_from_this()] { o->impl_->start(); });
}

void DesktopSession::post(std::function<void()> fn) {
    net::post(impl_->ws.get_executor(), [o = shared_from_this(), fn = std::move(fn)] { fn(); });
}
DesktopSession::~DesktopSession() = default;

void DesktopSession::send_events(std::vector<std::pair<std::uint64_t, channels::EventPtr>> events) {
    unwritten_.fetch_add(events.size());
    net::post(impl_->ws.get_executor(), [o = shared_from_this(), events = std::move(events)] {
        auto& m = *o->impl_;
        if (m.finished) return (void)o->unwritten_.fetch_sub(events.size());
        for (auto& [seq, e] : events) {
            Impl::Frame f;
            f.seq = seq;
            f.event = e;
            m.queue.push_back(std::move(f));
        }
        if (!m.writing && m.open) m.write_next();
    });
}

void DesktopSession::take_requests() {
    hello_pending_ = false;
    auto& m = *impl_;
    m.last_heard = std::chrono::steady_clock::now();  // idle from the welcome on, not the hello
    if (!m.held || m.finished || closing()) return;
    auto held = std::move(*m.held);
    m.held.reset();
    m.deliver(shared_from_this(), held.text, std::move(held.frame));
}

void DesktopSession::send_frame(std::string frame) {
    enqueue(std::move(frame), false);
}

void DesktopSession::send_urgent(std::string frame) {
    enqueue(std::move(frame), true);
}

void DesktopSession::reply(std::string frame) {
    auto& m = *impl_;
    if (m.finished || m.bye_queued) return;
    unwritten_.fetch_add(1);
    Impl::Frame f;
    f.text = std::move(frame);
    m.push(std::move(f));
}

void DesktopSession::enqueue(std::string frame, bool urgent) {
    unwritten_.fetch_add(1);
    net::post(impl_->ws.get_executor(), [o = shared_from_this(), frame = std::move(frame), urgent] {
        auto& m = *o->impl_;
        if (m.finished || m.bye_queued) return (void)o->unwritten_.fetch_sub(1);
        Impl::Frame f;
        f.text = frame;
        f.urgent = urgent;
        // An urgent frame goes ahead of everything but the frame being written.
        auto at = urgent ? m.queue.begin() + (m.writing ? 1 : 0) : m.queue.end();
        m.queue.insert(at, std::move(f));
        if (!m.writing && m.open) m.write_next();
    });
}

void DesktopSession::close(channels::ByeReason reason) {
    if (closing_.exchange(true)) return;
    unwritten_.fetch_add(1);
    net::post(impl_->ws.get_executor(), [o = shared_from_this(), reason] {
        auto& m = *o->impl_;
        if (m.finished) return (void)o->unwritten_.fetch_sub(1);
        // A socket that cannot take the bye in time is closed without it.
        m.timer.expires_after(m.shared->limits().close_timeout);
        m.timer.async_wait([o](const boost::system::error_code& ec) {
            if (!ec) o->impl_->finish();
        });
        Impl::Frame f;
        f.text = protocol::bye_frame(channels::to_string(reason));
        f.bye = true;
        if (!m.open) {
            o->unwritten_.fetch_sub(1);
            return m.finish();
        }
        // Nothing queued behind the frame being written goes out any more but urgent frames
        // (overload): the bye is next.
        std::deque<Impl::Frame> kept;
        for (std::size_t i = 0; i < m.queue.size(); ++i) {
            if ((i == 0 && m.writing) || m.queue[i].urgent)
                kept.push_back(std::move(m.queue[i]));
            else
                o->unwritten_.fetch_sub(1);
        }
        m.queue.swap(kept);
        m.bye_queued = true;
        m.push(std::move(f));
    });
}

struct DesktopServer::Threads {
    Threads(unsigned n, int nice_steps) {
        for (unsigned i = 0; i < std::max(1u, n); ++i) {
            // One thread each: the io_context never wakes another thread to take over its epoll
            // wait (other threads still post to it, under its lock).
            auto& c = contexts.emplace_back(std::make_unique<net::io_context>(1));
            guards.push_back(net::make_work_guard(*c));
        }
        for (auto& c : contexts)
            threads.emplace_back([&ctx = *c, nice_steps] {
                // node desktopNice steps below the process (Linux sets the nice value per
                // thread): on a saturated machine the vendors' requests, whose answers wait for
                // the journal, then go first, and 10,000 desktops reconnecting at once take the
                // CPU they leave.
                lower_this_thread(nice_steps);
                ctx.run();
            });
    }
    ~Threads() { join(); }

    /// The next context in turn, for a new connection. Its one thread is the connection's
    /// strand: no strand of Asio's is needed, nor its lock and queue on every handler.
    net::any_io_executor pick() {
        auto i = next.fetch_add(1, std::memory_order_relaxed) % contexts.size();
        return contexts[i]->get_executor();
    }

    void join() {
        for (auto& c : contexts)
            c->stop();
        for (auto& t : threads)
            if (t.joinable()) t.join();
    }

    std::vector<std::unique_ptr<net::io_context>> contexts;
    std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
    std::vector<std::thread> threads;
    std::atomic<unsigned> next{0};
};

DesktopServer::DesktopServer(net::io_context& ioc, std::shared_ptr<DesktopService> service,
                             std::function<DesktopLimits()> limits,
                             std::shared_ptr<transport::ConnectionBudget> all, unsigned threads,
                             int nice)
    : ioc_(ioc),
      shared_(std::make_shared<Shared>()),
      threads_(std::make_shared<Threads>(threads, nice)) {
    shared_->all = std::move(all);
    shared_->service = std::move(service);
    shared_->limits = std::move(limits);
}

DesktopServer::~DesktopServer() {
    stop();
    join();
}

void DesktopServer::join() {
    threads_->join();
}

std::shared_ptr<void> DesktopServer::contexts() const {
    return threads_;
}

tcp::endpoint DesktopServer::listen(const std::string& address, std::uint16_t port,
                                    std::shared_ptr<transport::TlsCredentials> tls) {
    auto o = transport::owned_listener_options(
        "desktop listener " + address + ":" + std::to_string(port), shared_, shared_->all,
        std::move(tls), shared_->listener_counters);
    o.connection_executor = [threads = threads_] { return threads->pick(); };
    auto l = transport::Listener::tcp(
        ioc_, address, port, std::move(o),
        [shared = shared_](transport::Stream&& stream, transport::PeerInfo peer,
                           transport::ConnectionBudget::Ticket ticket) {
            shared->connections.fetch_add(1);
            auto impl = std::make_unique<DesktopSession::Impl>(std::move(stream), shared,
                                                               std::move(ticket));
            // The peer as logs show it: the whole address; `ip`, its source key, may be a /64.
            std::make_shared<DesktopSession>(std::move(impl), std::move(peer.address),
                                             std::move(peer.ip))
                ->start();
        });
    std::lock_guard lock(shared_->mutex);
    shared_->listeners.push_back(l);
    return l->endpoint();
}

void DesktopServer::stop() {
    std::lock_guard lock(shared_->mutex);
    for (auto& l : shared_->listeners)
        l->close();
    shared_->listeners.clear();
}

std::size_t DesktopServer::connections() const {
    return shared_->connections.load();
}

DesktopServer::Counters DesktopServer::counters() const {
    auto& l = *shared_->listener_counters;
    return {l.refused_over_limit.load(),    l.refused_per_address.load(),
            shared_->hello_timeouts.load(), shared_->idle_timeouts.load(),
            l.tls_failures.load(),          l.tls_rate_limited.load()};
}

}  // namespace cb::daemon
