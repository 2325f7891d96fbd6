// commbrokerd: the communication broker daemon.
#include "config/config.hpp"
#include "daemon/broker.hpp"
#include "daemon/logging.hpp"
#include "recovery/journal.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <string>

namespace {

constexpr const char* kDefaultConfig = "/etc/commbroker/commbroker.xml";

void usage(std::ostream& out) {
    out << "usage: commbrokerd [--config FILE] [--check-config] [--start-empty] [--version]\n"
           "  --config FILE    the configuration file (default "
        << kDefaultConfig
        << ")\n"
           "  --check-config   check the configuration, print every error, and exit\n"
           "  --start-empty    create an empty journal even though one was kept before and is\n"
           "                   now missing (everything it held is given up)\n"
           "  --version        print the version and exit\n";
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path = kDefaultConfig;
    bool check_only = false;
    bool start_empty = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config" && i + 1 < argc)
            config_path = argv[++i];
        else if (a.rfind("--config=", 0) == 0)
            config_path = a.substr(9);
        else if (a == "--check-config" || a == "-t")
            check_only = true;
        else if (a == "--start-empty")
            start_empty = true;
        else if (a == "--version") {
            std::cout << "commbrokerd " << COMMBROKER_VERSION << "\n";
            return 0;
        } else if (a == "--help" || a == "-h") {
            usage(std::cout);
            return 0;
        } else {
            std::cerr << "commbrokerd: unknown argument " << a << "\n";
            usage(std::cerr);
            return 2;
        }
    }

    auto parsed = cb::config::load_file(config_path);
    if (!parsed.config) {
        for (auto& e : parsed.errors)
            std::cerr << e << "\n";
        std::cerr << "commbrokerd: " << parsed.errors.size() << " error(s) in " << config_path
                  << "\n";
        return 1;
    }
    if (check_only) {
        std::cout << config_path << ": ok\n";
        return 0;
    }

    cb::daemon::setup_logging(parsed.config->log.target, parsed.config->log.level);
    try {
        cb::daemon::Broker broker(parsed.config, start_empty);
        broker.start();
        return broker.run();
    } catch (const cb::recovery::JournalError& e) {
        spdlog::critical("{}", e.what());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }
}
