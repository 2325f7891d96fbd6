// What a heartbeat costs at the least on this machine (bench/heartbeat_bench.sh runs it after
// the broker's figures): the same load as the benchmark's heartbeat phase (N connections, each
// sending a heartbeat-sized message every interval at its own phase, each answered with a
// message of the size of the broker's `heartbeat` answer), served by a bare server of one
// thread that does nothing else, and the CPU time of that thread over a window:
//  - `tcp`: Asio, plain TCP: a read and a write per message (the kernel's and Asio's part);
//  - `websocket`: the same with Beast's WebSocket (text frames, no timeouts, no strand), as the
//    broker's desktop threads use it, without JSON, the heartbeat monitor or anything else.
// The server is a process of its own (a child), as the broker is; the kernel's work for a send
// over loopback (the receiver's TCP processing, waking it) is counted to the process that
// sends, for the bare server as for the broker. The child reports its CPU time (getrusage) on
// SIGUSR1, through a pipe.
//
// usage: heartbeat_floor tcp|websocket [--connections 10000] [--interval-ms 5000]
//        [--cpu-seconds 20]
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

// The sizes of the broker's exchange: the request and its answer, as text.
const std::string kRequest = R"({"type":"heartbeat"})";
const std::string kAnswer = R"({"type":"heartbeat","serverTime":"2026-12-07T06:00:00.000Z"})";

std::atomic<std::uint64_t> answered{0};

struct TcpServerConn : std::enable_shared_from_this<TcpServerConn> {
    explicit TcpServerConn(tcp::socket s) : socket(std::move(s)) {}
    void read() {
        socket.async_read_some(net::buffer(buf),
                               [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                   if (ec) return;
                                   net::async_write(self->socket, net::buffer(kAnswer),
                                                    [self](beast::error_code, std::size_t) {});
                                   self->read();
                               });
    }
    tcp::socket socket;
    char buf[256];
};

struct WsServerConn : std::enable_shared_from_this<WsServerConn> {
    explicit WsServerConn(tcp::socket s) : ws(std::move(s)) {}
    void start() {
        auto t = websocket::stream_base::timeout::suggested(beast::role_type::server);
        t.idle_timeout = websocket::stream_base::none();
        ws.set_option(t);
        ws.async_accept([self = shared_from_this()](beast::error_code ec) {
            if (!ec) self->read();
        });
    }
    void read() {
        buffer.clear();
        ws.async_read(buffer, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            // One answer in flight at most: a connection sends one heartbeat per interval, so a
            // second never comes while the first answer is being written.
            if (!self->writing) {
                self->writing = true;
                self->ws.text(true);
                self->ws.async_write(net::buffer(kAnswer), [self](beast::error_code, std::size_t) {
                    self->writing = false;
                });
            }
            self->read();
        });
    }
    websocket::stream<tcp::socket> ws;
    beast::flat_buffer buffer;
    bool writing = false;
};

void accept(tcp::acceptor& acceptor, bool ws) {
    acceptor.async_accept([&acceptor, ws](beast::error_code ec, tcp::socket s) {
        if (ec) return;
        if (ws)
            std::make_shared<WsServerConn>(std::move(s))->start();
        else
            std::make_shared<TcpServerConn>(std::move(s))->read();
        accept(acceptor, ws);
    });
}

struct Client : std::enable_shared_from_this<Client> {
    Client(net::io_context& ioc, bool ws, std::chrono::milliseconds phase,
           std::chrono::milliseconds interval)
        : ws_mode(ws), socket(ioc), ws(ioc), timer(ioc), phase(phase), interval(interval) {}

    void start(tcp::endpoint ep, std::atomic<unsigned>& ready) {
        auto& s = ws_mode ? beast::get_lowest_layer(ws) : socket;
        s.async_connect(ep, [self = shared_from_this(), &ready](beast::error_code ec) {
            if (ec) return;
            if (!self->ws_mode) {
                ready.fetch_add(1);
                self->read();
                return self->beat(self->phase);
            }
            self->ws.async_handshake("127.0.0.1", "/", [self, &ready](beast::error_code ec) {
                if (ec) return;
                ready.fetch_add(1);
                self->read();
                self->beat(self->phase);
            });
        });
    }
    void read() {
        auto done = [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            answered.fetch_add(1, std::memory_order_relaxed);
            self->read();
        };
        if (ws_mode) {
            buffer.clear();
            ws.async_read(buffer, done);
        } else {
            socket.async_read_some(net::buffer(buf), done);
        }
    }
    void beat(std::chrono::milliseconds after) {
        timer.expires_after(after);
        timer.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec) return;
            if (self->ws_mode) {
                self->ws.text(true);
                self->ws.async_write(net::buffer(kRequest), [](beast::error_code, std::size_t) {});
            } else {
                net::async_write(self->socket, net::buffer(kRequest),
                                 [](beast::error_code, std::size_t) {});
            }
            self->beat(self->interval);
        });
    }
    bool ws_mode;
    tcp::socket socket;
    websocket::stream<tcp::socket> ws;
    net::steady_timer timer;
    beast::flat_buffer buffer;
    char buf[256];
    std::chrono::milliseconds phase, interval;
};

double seconds_of(const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

void report_cpu(net::signal_set& signals, int out) {
    signals.async_wait([&signals, out](beast::error_code ec, int) {
        if (ec) return;
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        double cpu = seconds_of(u.ru_utime) + seconds_of(u.ru_stime);
        if (::write(out, &cpu, sizeof cpu) != sizeof cpu) std::_Exit(1);
        report_cpu(signals, out);
    });
}

/// The server, in the child: tells the parent its port, then serves until killed.
[[noreturn]] void serve(bool ws, int out) {
    net::io_context ioc(1);
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    acceptor.listen(4096);
    unsigned short port = acceptor.local_endpoint().port();
    if (::write(out, &port, sizeof port) != sizeof port) std::_Exit(1);
    accept(acceptor, ws);
    net::signal_set signals(ioc, SIGUSR1);
    report_cpu(signals, out);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
    ioc.run();
    std::_Exit(0);
}

/// The server's CPU time so far: asked for by signal, read from the pipe.
double server_cpu(pid_t server, int in) {
    ::kill(server, SIGUSR1);
    double cpu = 0;
    if (::read(in, &cpu, sizeof cpu) != sizeof cpu) return -1;
    return cpu;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || (std::strcmp(argv[1], "tcp") != 0 && std::strcmp(argv[1], "websocket") != 0)) {
        std::fprintf(stderr,
                     "usage: heartbeat_floor tcp|websocket [--connections N] [--interval-ms MS] "
                     "[--cpu-seconds S]\n");
        return 2;
    }
    bool ws = std::strcmp(argv[1], "websocket") == 0;
    unsigned connections = 10000, interval_ms = 5000, cpu_seconds = 20;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        unsigned v = static_cast<unsigned>(std::stoul(argv[i + 1]));
        if (a == "--connections")
            connections = v;
        else if (a == "--interval-ms")
            interval_ms = v;
        else if (a == "--cpu-seconds")
            cpu_seconds = v;
        else
            return std::fprintf(stderr, "unknown option %s\n", a.c_str()), 2;
    }
    rlimit nofile{};
    getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < connections + 64)
        return std::fprintf(stderr, "open file limit %lu is too low\n",
                            static_cast<unsigned long>(nofile.rlim_cur)),
               1;

    // SIGUSR1 is blocked before the fork, so that the child cannot die of one that comes
    // before its signal_set is in place.
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return std::perror("pipe"), 1;
    pid_t server = ::fork();
    if (server < 0) return std::perror("fork"), 1;
    if (server == 0) {
        ::close(pipe_fds[0]);
        serve(ws, pipe_fds[1]);
    }
    ::close(pipe_fds[1]);
    unsigned short port = 0;
    if (::read(pipe_fds[0], &port, sizeof port) != sizeof port)
        return std::fprintf(stderr, "the server did not start\n"), 1;
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    struct Reap {
        pid_t pid;
        ~Reap() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } reap{server};

    net::io_context client_ioc(1);
    auto client_work = net::make_work_guard(client_ioc);
    std::atomic<unsigned> ready{0};
    std::mt19937 rng(42);
    std::uniform_int_distribution<unsigned> phase(0, interval_ms - 1);
    std::vector<std::shared_ptr<Client>> clients;
    for (unsigned i = 0; i < connections; ++i)
        clients.push_back(std::make_shared<Client>(client_ioc, ws,
                                                   std::chrono::milliseconds(phase(rng)),
                                                   std::chrono::milliseconds(interval_ms)));
    // Connected a few hundred at a time, as the acceptor's backlog allows.
    std::thread client([&] { client_ioc.run(); });
    for (unsigned i = 0; i < connections; ++i) {
        net::post(client_ioc, [c = clients[i], ep, &ready] { c->start(ep, ready); });
        while (i >= ready.load() + 500)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ready.load() < connections && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (ready.load() < connections)
        return std::fprintf(stderr, "only %u of %u connected\n", ready.load(), connections), 1;

    // One whole interval first, so that every connection is in its rhythm.
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms + 500));
    auto a0 = answered.load();
    double c0 = server_cpu(server, pipe_fds[0]);
    auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(cpu_seconds));
    double c1 = server_cpu(server, pipe_fds[0]);
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto a1 = answered.load();
    double rate = (a1 - a0) / seconds;
    double cpu = (c1 - c0) / seconds * 100;
    std::printf(
        "%s floor: %u connections, %.0f answered heartbeats/s: server CPU %.2f %% of "
        "one core (%.1f us a heartbeat)\n",
        ws ? "websocket" : "tcp", connections, rate, cpu,
        rate > 0 ? (c1 - c0) / (a1 - a0) * 1e6 : 0.0);
    std::fflush(stdout);
    client_ioc.stop();
    client.join();
    return 0;
}
