// The command line of commbroker-cmss.
#include "config/config.hpp"
#include "sim/simulator.hpp"

#include <sstream>
#include <stdexcept>

namespace cb::sim {
namespace ch = cb::channels;

namespace {

std::chrono::milliseconds duration_arg(const std::string& flag, const std::string& v) {
    auto d = config::parse_duration(v);
    if (!d) throw std::invalid_argument(flag + ": not a duration: " + v + " (e.g. 500ms, 5s)");
    return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string part;
    while (std::getline(in, part, ','))
        if (!part.empty()) out.push_back(part);
    return out;
}

}  // namespace

Options parse_command_line(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            return argv[++i];
        };
        if (a == "--listen") {
            auto v = value();
            auto colon = v.rfind(':');
            if (colon == std::string::npos) throw std::invalid_argument("--listen ADDRESS:PORT");
            o.listen_address = v.substr(0, colon);
            try {
                int port = std::stoi(v.substr(colon + 1));
                if (port < 0 || port > 65535) throw std::out_of_range("port");
                o.listen_port = static_cast<std::uint16_t>(port);
            } catch (const std::exception&) {
                throw std::invalid_argument("--listen: bad port in " + v);
            }
        } else if (a == "--system") {
            o.system = value();
        } else if (a == "--user") {
            o.user = value();
        } else if (a == "--password") {
            o.password = value();
        } else if (a == "--broker-user") {
            o.broker_user = value();
        } else if (a == "--broker-password") {
            o.broker_password = value();
        } else if (a == "--agents") {
            o.agents = split(value());
        } else if (a == "--offer-rate") {
            auto v = value();
            try {
                o.offer_rate = std::stod(v);
            } catch (const std::exception&) {
                throw std::invalid_argument("--offer-rate: not a number: " + v);
            }
            if (o.offer_rate < 0 || o.offer_rate > 100000)
                throw std::invalid_argument("--offer-rate: between 0 and 100000 per second");
        } else if (a == "--channels") {
            o.offer_channels = split(value());
            for (auto& c : o.offer_channels)
                if (!ch::channel_from_string(c))
                    throw std::invalid_argument("--channels: not a channel: " + c);
        } else if (a == "--ring-time") {
            o.ring_time = duration_arg(a, value());
        } else if (a == "--talk-time") {
            o.talk_time = duration_arg(a, value());
        } else if (a == "--request-timeout") {
            o.request_timeout = duration_arg(a, value());
        } else if (a == "--scenario") {
            o.scenario = value();
        } else if (a == "--preload") {
            o.preload = value();
        } else if (a == "--tls-certificate") {
            o.tls_certificate = value();
        } else if (a == "--tls-key") {
            o.tls_key = value();
        } else if (a == "--broker-ca") {
            o.broker_ca = value();
        } else if (a == "--tls-client-ca") {
            o.client_ca = value();
        } else if (a == "--record-acks") {
            o.record_acks = true;
        } else if (a == "--connections") {
            o.connections = static_cast<unsigned>(std::max(1, std::atoi(value().c_str())));
        } else {
            throw std::invalid_argument("unknown option " + a);
        }
    }
    if (o.broker_user.empty())
        throw std::invalid_argument("--broker-user and --broker-password are required");
    if (o.tls_certificate.empty() != o.tls_key.empty())
        throw std::invalid_argument("--tls-certificate and --tls-key go together");
    if (!o.client_ca.empty() && o.tls_certificate.empty())
        throw std::invalid_argument("--tls-client-ca needs --tls-certificate and --tls-key");
    return o;
}

}  // namespace cb::sim
