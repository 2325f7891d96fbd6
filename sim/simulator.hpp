// commbroker-cmss: a CMS simulator. It serves the IciCms port (PROTOCOL.md section 2), keeps
// agents and items of its own, answers commands by sending the matching events to the broker
// that subscribed (answer → connected, hangup → disconnected, post → chatNewPosting, …), and
// offers calls, chats and e-mails to logged-on agents: by hand (the control API), from a
// scenario file, or at a rate. For tests it can fail requests, stop answering, or drop items.
//
// The control API (JSON over HTTP on the same listener, no authentication: bind it to loopback):
//   GET  /control/state                      agents, items, counters
//   POST /control/offer {channel, agent?, from?}     → {"id": …}
//   POST /control/post  {chat, text}          the customer writes in a chat
//   POST /control/end   {item}                the customer hangs up / leaves / withdraws
//   POST /control/fail  {op, count?, code?}   fail the next `count` requests of `op`
//   POST /control/stall {on}                  stop (or resume) answering requests
//   POST /control/drop  {item}                forget an item without telling the broker
//
// Ownership: everything runs on one thread (one io_context run by one thread).
#pragma once

#include "channels/item.hpp"
#include "transport/http_server.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace cb::sim {

namespace http = boost::beast::http;
namespace net = boost::asio;

struct Options {
    std::string listen_address = "127.0.0.1";
    std::uint16_t listen_port = 8460;
    std::string system = "CMS-A";
    std::string user = "broker";  ///< what the broker presents (HTTP Basic); empty: no check
    std::string password = "secret";
    std::string broker_user;  ///< what the simulator presents to the broker
    std::string broker_password;
    std::vector<std::string> agents;  ///< known agents; empty: any user may log on
    double offer_rate = 0;            ///< offers per second to ready agents; 0: none
    std::vector<std::string> offer_channels{"phone", "chat", "email"};
    std::chrono::milliseconds ring_time{15000};  ///< an unanswered offer is abandoned after it
    std::chrono::milliseconds talk_time{0};      ///< the customer ends after it; 0: never
    std::chrono::milliseconds request_timeout{5000};
    std::string scenario;      ///< a scenario file, played once after the first subscribe
    unsigned connections = 1;  ///< to the broker; more may reorder events
    /// Keeps the last version of every item the broker answered for (tests: what it
    /// acknowledged); grows with every item, so off unless asked for.
    bool record_acks = false;
    std::string preload;          ///< a JSON array of calls held from the start ({"id", "agent"})
    std::string tls_certificate;  ///< with tls_key: the IciCms port (and /control) over TLS
    std::string tls_key;
    std::string broker_ca;  ///< CAs trusted for an https appURL; empty: the system's
    std::string client_ca;  ///< with TLS: the broker must present a certificate these CAs signed
};

/// Reads the command line; throws std::invalid_argument with a message for the user.
Options parse_command_line(int argc, char** argv);

class Simulator : public transport::HttpHandler, public std::enable_shared_from_this<Simulator> {
  public:
    Simulator(boost::asio::io_context& ioc, Options options);
    ~Simulator() override;
    /// Throws std::runtime_error if the --preload file cannot be used.
    void start();
    void handle(transport::Request&& request, const transport::PeerInfo& peer,
                transport::Respond respond) override;

    struct State;

  private:
    boost::asio::io_context& ioc_;
    Options options_;
    std::unique_ptr<State> state_;
};

}  // namespace cb::sim
