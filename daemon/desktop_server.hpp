// The desktop listener: WebSocket on `/desktop` (PROTOCOL.md section 3), in clear (ws) or under
// TLS (wss), JSON text frames. This file is the WebSocket session: the upgrade, reading frames
// and writing them in order with a bounded, counted queue. Connections come from the accept
// loop every listener shares (transport/listener.hpp: connection budget, accept back-off, TLS
// handshake); what the frames mean is the DesktopService's business.
//
// Ownership: each DesktopSession runs on its own strand; it is the channels::DesktopLink of its
// agent's session in the hub, so the core hands it frames (send_event, send_frame, close), which
// it posts to its strand. Writes never wait for the core; reads are answered by the service. A
// desktop that upgrades has helloTimeout to send its first frame, and nothing it sends before
// (a ping) is answered; one that then sends nothing (no frame, ping or pong) for half of
// desktopIdleTimeout gets a ping, and after all of it is closed. The session's strand is the one
// thread of its io_context.
#pragma once

#include "channels/desktop_hub.hpp"
#include "transport/listener.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace cb::daemon {

class DesktopSession;

struct DesktopLimits : transport::ListenerLimits {
    std::size_t max_frame_bytes = 65536;
    std::chrono::milliseconds hello_timeout{5000};       ///< from the upgrade to the first frame
    std::chrono::milliseconds idle_timeout{300000};      ///< no frame, ping or pong: closed
    std::chrono::milliseconds handshake_timeout{10000};  ///< the WebSocket upgrade
    std::chrono::milliseconds close_timeout{5000};       ///< a closing socket that cannot write
};

/// What the desktop protocol does with a connection. Called on the session's strand.
class DesktopService {
  public:
    virtual ~DesktopService() = default;
    virtual void on_text(const std::shared_ptr<DesktopSession>& session, std::string text) = 0;
    /// A binary frame: not part of the protocol.
    virtual void on_binary(const std::shared_ptr<DesktopSession>& session) = 0;
    /// A WebSocket ping (`pong` false) or pong (true): both count as contact.
    virtual void on_ping(const std::shared_ptr<DesktopSession>& session, bool pong) = 0;
    virtual void on_closed(const std::shared_ptr<DesktopSession>& session) = 0;
    /// The session wrote everything it had while the hub was holding events back.
    virtual void on_drained(const std::shared_ptr<DesktopSession>& session) = 0;
    /// An event frame was written: `received` is when its SOAP request arrived.
    virtual void on_event_written(channels::SteadyTime received) = 0;
};

class DesktopSession : public channels::DesktopLink,
                       public std::enable_shared_from_this<DesktopSession> {
  public:
    ~DesktopSession() override;

    void send_events(std::vector<std::pair<std::uint64_t, channels::EventPtr>> events) override;
    void send_frame(std::string frame) override;
    void send_urgent(std::string frame) override;
    void close(channels::ByeReason reason) override;
    std::size_t unwritten() const override { return unwritten_.load(); }

    /// Set once hello succeeded (session strand only).
    const std::string& agent() const { return agent_; }
    void set_agent(std::string agent) { agent_ = std::move(agent); }
    const std::string& peer() const { return peer_; }
    /// The source's key (source_of(): the address, or an IPv6 /64), for the logon guard.
    const std::string& ip() const { return ip_; }
    bool closing() const { return closing_.load(); }
    /// The hello waits for its password check or its turn on the core (session strand only).
    /// Meanwhile the session reads on, to see the desktop go; the first frame to arrive is held
    /// and nothing more is read (TCP holds the rest) until the hello is answered.
    bool hello_pending() const { return hello_pending_; }
    void hold_requests() { hello_pending_ = true; }
    /// The hello is answered (its welcome queued): the held frame is handed to the service, as
    /// if it had just been read, and reading goes on (session strand only). A hello refused
    /// ends with a bye instead, and what was held is dropped with the connection.
    void take_requests();
    /// Queues an answer to the frame being read behind what is queued, with no post: session
    /// strand only (DesktopService::on_text). send_frame() is the same from any thread.
    void reply(std::string frame);
    /// Runs `fn` on the session's strand (any thread); the session lives until it has run.
    void post(std::function<void()> fn);

    struct Impl;
    DesktopSession(std::unique_ptr<Impl> impl, std::string peer, std::string ip);
    /// Reads the upgrade request and accepts the WebSocket (on the session's strand).
    void start();

  private:
    void enqueue(std::string frame, bool urgent);

    std::unique_ptr<Impl> impl_;
    std::string agent_;
    std::string peer_;
    std::string ip_;
    bool hello_pending_ = false;
    std::atomic<std::size_t> unwritten_{0};
    std::atomic<bool> closing_{false};
    friend struct Impl;
};

class DesktopServer {
  public:
    /// `all`: the budget of every TCP listener, which each desktop connection also takes from.
    /// The acceptors run on `ioc`; the connections on `threads` threads of the server's own,
    /// each with an io_context of its own, a connection on one of them from its accept to its
    /// end (round robin). So a storm of desktops does not queue ahead of the SOAP connections'
    /// work, and a heartbeat wakes one thread, not two (an io_context with one thread never
    /// wakes another to wait on epoll in its place). Those threads run `nice` steps below the
    /// process (node desktopNice).
    DesktopServer(boost::asio::io_context& ioc, std::shared_ptr<DesktopService> service,
                  std::function<DesktopLimits()> limits,
                  std::shared_ptr<transport::ConnectionBudget> all = {}, unsigned threads = 1,
                  int nice = 0);
    /// Stops accepting, then stops the server's threads (join()).
    ~DesktopServer();

    /// Starts accepting on a TCP address, under TLS (wss) if `tls` is given.
    boost::asio::ip::tcp::endpoint listen(const std::string& address, std::uint16_t port,
                                          std::shared_ptr<transport::TlsCredentials> tls = {});
    /// Stops accepting: each acceptor is closed on its own strand. Any thread.
    void stop();
    /// Stops the connections' threads and waits for them: whatever a connection still had to
    /// do is dropped. Call once the drain is over (or has given up), not from those threads.
    void join();
    /// The connections' io_contexts: whoever holds this keeps them (not their threads) alive.
    /// A connection's sockets and timers must be gone before its io_context is, so the owner of
    /// everything that may hold a connection keeps this until all of that is destroyed.
    std::shared_ptr<void> contexts() const;
    std::size_t connections() const;
    struct Counters {
        std::uint64_t refused_over_limit = 0;   ///< a listener's budget was full
        std::uint64_t refused_per_address = 0;  ///< the source's share of it was full
        std::uint64_t hello_timeouts = 0;       ///< upgraded, then silent for helloTimeout
        std::uint64_t idle_timeouts = 0;        ///< nothing heard for desktopIdleTimeout
        std::uint64_t tls_failures = 0;         ///< TLS handshakes that failed or timed out
        std::uint64_t tls_rate_limited = 0;     ///< over the source's rate of handshakes
    };
    Counters counters() const;

    struct Shared;

    struct Threads;

  private:
    boost::asio::io_context& ioc_;
    std::shared_ptr<Shared> shared_;
    std::shared_ptr<Threads> threads_;  // the listeners' connection_executor holds it too
};

}  // namespace cb::daemon
