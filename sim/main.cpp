// commbroker-cmss: the CMS simulator. See simulator.hpp for what it does and its control API.
#include "sim/simulator.hpp"
#include "transport/tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

namespace {

constexpr const char* kUsage =
    R"(usage: commbroker-cmss --broker-user USER --broker-password PASSWORD [options]
  --listen ADDRESS:PORT     where the IciCms port is served (default 127.0.0.1:8460; port 0: any)
  --system ID               the systemId (default CMS-A)
  --user U --password P     the HTTP Basic account the broker must present (default broker/secret)
  --broker-user U --broker-password P   the account presented to the broker
  --agents a,b,c            the agents that may log on (default: anyone)
  --offer-rate N            offers per second to ready agents (default 0)
  --channels phone,chat,email   what the offers are (default all three)
  --ring-time D             an unanswered offer is abandoned after D (default 15s)
  --talk-time D             the customer ends a conversation after D (default: never)
  --request-timeout D       for events sent to the broker (default 5s)
  --connections N           connections to the broker (default 1: events arrive in order)
  --scenario FILE           a JSON array of steps {"at": "2s", "do": "offer", …}, played once
  --preload FILE            hold the calls of FILE (a JSON array of {"id", "agent", "version"})
                            from the start, connected, without telling the broker
  --tls-certificate FILE --tls-key FILE   serve the IciCms port (and /control) over TLS
  --tls-client-ca FILE      with TLS: the broker must present a client certificate these CAs signed
  --broker-ca FILE          CAs trusted for the broker's https appURL (default: the system's)
  --record-acks             keep the last version of every item the broker answered for, ended
                            ones too, in /control/state ("acked"; for tests: grows with every item)
)";

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
        std::cout << kUsage;
        return 0;
    }
    cb::sim::Options options;
    try {
        options = cb::sim::parse_command_line(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "commbroker-cmss: " << e.what() << "\n" << kUsage;
        return 2;
    }
    // Logs go to stderr: stdout carries only the "listening on" line, which tests read once and
    // then leave alone (a log on a pipe nobody reads would block the simulator).
    spdlog::set_default_logger(spdlog::stderr_color_mt("cmss"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ cmss: %v");
    boost::asio::io_context ioc(1);
    auto sim = std::make_shared<cb::sim::Simulator>(ioc, options);
    cb::transport::HttpServer server(ioc, [] { return cb::transport::HttpLimits{}; });
    boost::asio::ip::tcp::endpoint ep;
    try {
        std::shared_ptr<cb::transport::TlsCredentials> tls;
        if (!options.tls_certificate.empty())
            tls = cb::transport::TlsCredentials::load(
                cb::transport::TlsCredentials::Side::server,
                {options.tls_certificate, options.tls_key, options.client_ca});
        ep = server.listen_tcp(options.listen_address, options.listen_port, sim, tls);
    } catch (const std::exception& e) {
        std::cerr << "commbroker-cmss: cannot listen on " << options.listen_address << ":"
                  << options.listen_port << ": " << e.what() << "\n";
        return 1;
    }
    try {
        sim->start();
    } catch (const std::exception& e) {
        std::cerr << "commbroker-cmss: " << e.what() << "\n";
        return 2;
    }
    // Tests and benchmarks read this line to learn the port: printed once the calls of
    // --preload are held, so that nothing is asked of a simulator still loading.
    std::printf("commbroker-cmss %s listening on %s:%u\n", options.system.c_str(),
                ep.address().to_string().c_str(), ep.port());
    std::fflush(stdout);
    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
        server.drain();
        ioc.stop();
    });
    ioc.run();
    return 0;
}
