// Desktop benchmark client: connects N agent desktops and S supervisors (monitoring all) to a
// running commbrokerd, measures the broker's memory per idle session, then sends phoneCallChanged
// events as a CMS at a fixed rate, each for one agent, and checks that every desktop got every
// event meant for it with gap-free seq. The latency from SOAP request received to desktop frame
// written is the broker's own (commbroker_desktop_event_latency_seconds, read by the script);
// this client also reports its own view (request sent to frame read).
//
// usage: desktop_bench --desktop-port P --ici-port Q --broker-pid PID [--agents 10000]
//        [--supervisors 10] [--rate 5000] [--seconds 10] [--connections 32]
#include "bench/bench_events.hpp"
#include "transport/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    unsigned short desktop_port = 0;
    unsigned short ici_port = 0;
    int broker_pid = 0;
    unsigned agents = 10000;
    unsigned supervisors = 10;
    unsigned rate = 5000;
    unsigned seconds = 10;
    unsigned connections = 32;
};

long rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::uint64_t number_after(std::string_view text, std::string_view key) {
    auto at = text.find(key);
    if (at == std::string_view::npos) return 0;
    std::uint64_t v = 0;
    auto begin = text.data() + at + key.size();
    std::from_chars(begin, text.data() + text.size(), v);
    return v;
}

/// Send times of events by their number (the call version encodes it), for the client's view.
struct SendLog {
    std::mutex mutex;
    std::vector<Clock::time_point> sent;
};

struct Stats {
    std::atomic<unsigned> welcomed{0};
    std::atomic<unsigned> failed{0};
    std::atomic<std::uint64_t> events{0};
    std::atomic<std::uint64_t> gaps{0};
    std::mutex latency_mutex;
    std::vector<double> latency_ms;  // client view, sampled
};

class Desktop : public std::enable_shared_from_this<Desktop> {
  public:
    Desktop(net::io_context& ioc, const Options& o, std::string agent, bool supervisor,
            Stats& stats, SendLog& log)
        : ws_(net::make_strand(ioc)),
          o_(o),
          agent_(std::move(agent)),
          supervisor_(supervisor),
          stats_(stats),
          log_(log) {}

    void start() {
        auto ep = tcp::endpoint(net::ip::make_address("127.0.0.1"), o_.desktop_port);
        beast::get_lowest_layer(ws_).async_connect(
            ep, [self = shared_from_this()](beast::error_code ec) {
                if (ec) return self->fail("connect", ec);
                self->ws_.async_handshake("127.0.0.1", "/desktop", [self](beast::error_code ec) {
                    if (ec) return self->fail("handshake", ec);
                    self->send_hello();
                });
            });
    }

    std::uint64_t events() const { return events_; }
    const std::string& agent() const { return agent_; }

  private:
    void fail(const char* what, beast::error_code ec) {
        if (!failed_) {
            failed_ = true;
            stats_.failed.fetch_add(1);
            if (stats_.failed.load() <= 5)
                std::fprintf(stderr, "desktop %s: %s: %s\n", agent_.c_str(), what,
                             ec.message().c_str());
        }
    }

    void send_hello() {
        out_ = R"({"type":"hello","agent":")" + agent_ + R"(","password":"bench"})";
        ws_.async_write(net::buffer(out_),
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->fail("hello", ec);
                            self->read();
                        });
    }

    void read() {
        buffer_.clear();
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->fail("read", ec);
            self->on_frame(beast::buffers_to_string(self->buffer_.data()));
            self->read();
        });
    }

    void on_frame(const std::string& f) {
        if (f.find(R"("type":"event")") != std::string::npos) {
            auto seq = number_after(f, R"("seq":)");
            if (seq != last_seq_ + 1) stats_.gaps.fetch_add(1);
            last_seq_ = seq;
            ++events_;
            stats_.events.fetch_add(1);
            // A sample of the client's view: the event number rides in the call's version.
            auto n = number_after(f, R"("version":)");
            if (!supervisor_ && n % 16 == 0) {
                Clock::time_point sent;
                {
                    std::lock_guard lock(log_.mutex);
                    if (n < log_.sent.size()) sent = log_.sent[n];
                }
                if (sent != Clock::time_point{}) {
                    std::lock_guard lock(stats_.latency_mutex);
                    stats_.latency_ms.push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
                }
            }
            if (events_ % 64 == 0) ack(seq);
        } else if (f.find(R"("type":"welcome")") != std::string::npos) {
            last_seq_ = number_after(f, R"("seq":)");
            stats_.welcomed.fetch_add(1);
            if (supervisor_) {
                out2_ = R"({"type":"monitor","scope":"all","id":1})";
                ws_.async_write(net::buffer(out2_),
                                [self = shared_from_this()](beast::error_code, std::size_t) {});
            }
        }
    }

    void ack(std::uint64_t seq) {
        if (acking_) return;  // one write at a time; the next ack covers this one
        acking_ = true;
        out2_ = R"({"type":"ack","seq":)" + std::to_string(seq) + "}";
        ws_.async_write(
            net::buffer(out2_),
            [self = shared_from_this()](beast::error_code, std::size_t) { self->acking_ = false; });
    }

    websocket::stream<beast::tcp_stream> ws_;
    const Options& o_;
    std::string agent_;
    bool supervisor_;
    Stats& stats_;
    SendLog& log_;
    beast::flat_buffer buffer_;
    std::string out_, out2_;
    std::uint64_t last_seq_ = 0;
    std::uint64_t events_ = 0;
    bool failed_ = false;
    bool acking_ = false;
};

using cb::bench::agent_name;

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        unsigned v = static_cast<unsigned>(std::stoul(argv[i + 1]));
        if (a == "--desktop-port")
            o.desktop_port = static_cast<unsigned short>(v);
        else if (a == "--ici-port")
            o.ici_port = static_cast<unsigned short>(v);
        else if (a == "--broker-pid")
            o.broker_pid = static_cast<int>(v);
        else if (a == "--agents")
            o.agents = v;
        else if (a == "--supervisors")
            o.supervisors = v;
        else if (a == "--rate")
            o.rate = v;
        else if (a == "--seconds")
            o.seconds = v;
        else if (a == "--connections")
            o.connections = v;
        else {
            std::cerr << "unknown option " << a << "\n";
            return 2;
        }
    }
    net::io_context ioc;
    Stats stats;
    SendLog log;
    std::vector<std::shared_ptr<Desktop>> desktops, supervisors;
    long rss_before = rss_kib(o.broker_pid);
    for (unsigned i = 0; i < o.agents; ++i)
        desktops.push_back(std::make_shared<Desktop>(ioc, o, agent_name(i), false, stats, log));
    for (unsigned i = 0; i < o.supervisors; ++i)
        supervisors.push_back(
            std::make_shared<Desktop>(ioc, o, "sup" + std::to_string(i), true, stats, log));
    std::vector<std::thread> threads;
    auto guard = net::make_work_guard(ioc);
    threads.emplace_back([&] { ioc.run(); });
    // Connect in waves so that the listen backlog is never the limit.
    auto started = Clock::now();
    unsigned total = o.agents + o.supervisors;
    for (unsigned i = 0; i < total; ++i) {
        (i < o.agents ? desktops[i] : supervisors[i - o.agents])->start();
        if (i % 200 == 199)
            while (stats.welcomed.load() + stats.failed.load() + 400 < i)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    while (stats.welcomed.load() + stats.failed.load() < total &&
           Clock::now() - started < std::chrono::minutes(5))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto connect_s = std::chrono::duration<double>(Clock::now() - started).count();
    std::this_thread::sleep_for(std::chrono::seconds(2));  // idle: let the broker settle
    long rss_idle = rss_kib(o.broker_pid);
    std::printf("desktops connected: %u of %u in %.1f s (%u failed)\n", stats.welcomed.load(),
                total, connect_s, stats.failed.load());
    std::printf("broker RSS: %ld KiB before, %ld KiB with %u idle sessions: %.1f KiB per session\n",
                rss_before, rss_idle, total,
                static_cast<double>(rss_idle - rss_before) / static_cast<double>(total));

    // The load: `rate` events per second, each a snapshot of one agent's call.
    cb::transport::HttpClientOptions ho;
    ho.url =
        *cb::transport::HttpUrl::parse("http://127.0.0.1:" + std::to_string(o.ici_port) + "/ici");
    ho.user = "cms-a";
    ho.password = "bench";
    ho.max_connections = o.connections;
    auto client = cb::transport::HttpClient::create(ioc, ho);
    std::uint64_t planned = static_cast<std::uint64_t>(o.rate) * o.seconds;
    log.sent.resize(planned + 1);
    std::atomic<std::uint64_t> acked{0}, refused{0};
    net::steady_timer tick(ioc);
    std::uint64_t sent = 0;
    auto load_started = Clock::now();
    std::function<void()> pace = [&] {
        auto due = static_cast<std::uint64_t>(
            std::chrono::duration<double>(Clock::now() - load_started).count() * o.rate);
        while (sent < due && sent < planned) {
            ++sent;
            auto body = cb::bench::call_event(sent, o.agents, "bench-");
            {
                std::lock_guard lock(log.mutex);
                log.sent[sent] = Clock::now();
            }
            client->post(
                std::move(body), "", std::chrono::seconds(10), [&](cb::transport::HttpReply r) {
                    if (r.ok && r.status == 200)
                        acked.fetch_add(1);
                    else if (refused.fetch_add(1) < 3)
                        std::fprintf(
                            stderr, "SOAP refused: %s\n",
                            r.ok ? ("HTTP " + std::to_string(r.status)).c_str() : r.error.c_str());
                });
        }
        if (sent >= planned) return;
        tick.expires_after(std::chrono::milliseconds(1));
        tick.async_wait([&](beast::error_code) { pace(); });
    };
    net::post(ioc, pace);
    auto deadline = Clock::now() + std::chrono::seconds(o.seconds + 30);
    std::uint64_t expected = planned * (1 + o.supervisors);
    while ((acked.load() + refused.load() < planned || stats.events.load() < expected) &&
           Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto load_s = std::chrono::duration<double>(Clock::now() - load_started).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));

    std::uint64_t missing = 0, short_desktops = 0;
    for (unsigned i = 0; i < o.agents; ++i) {
        // Event n (1..planned) went to agent n % agents.
        std::uint64_t want =
            i == 0 ? planned / o.agents : (planned >= i ? (planned - i) / o.agents + 1 : 0);
        if (desktops[i]->events() < want) {
            missing += want - desktops[i]->events();
            ++short_desktops;
        }
    }
    for (auto& s : supervisors)
        if (s->events() < planned) {
            missing += planned - s->events();
            ++short_desktops;
        }
    std::printf("events: %llu sent in %.1f s (%.0f/s), %llu acknowledged, %llu refused\n",
                static_cast<unsigned long long>(planned), load_s,
                static_cast<double>(planned) / load_s,
                static_cast<unsigned long long>(acked.load()),
                static_cast<unsigned long long>(refused.load()));
    std::printf(
        "desktop frames: %llu received of %llu expected; %llu missing on %llu desktops; "
        "%llu seq gaps\n",
        static_cast<unsigned long long>(stats.events.load()),
        static_cast<unsigned long long>(expected), static_cast<unsigned long long>(missing),
        static_cast<unsigned long long>(short_desktops),
        static_cast<unsigned long long>(stats.gaps.load()));
    {
        std::lock_guard lock(stats.latency_mutex);
        std::printf(
            "client view, request sent to frame read (sampled %zu): p50 %.2f ms, p99 %.2f "
            "ms, max %.2f ms\n",
            stats.latency_ms.size(), percentile(stats.latency_ms, 0.5),
            percentile(stats.latency_ms, 0.99), percentile(stats.latency_ms, 1.0));
    }
    std::fflush(stdout);
    std::_Exit(missing == 0 && stats.gaps.load() == 0 ? 0 : 1);
}
