#include "ctl/client.hpp"

#include "config/config.hpp"
#include "config/password.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace cb::ctl {

namespace net = boost::asio;
namespace beast = boost::beast;

std::string resolve_socket(const Options& o) {
    if (!o.socket.empty()) return o.socket;
    if (const char* env = std::getenv("COMMBROKER_SOCKET")) return env;
    std::error_code ec;
    if (o.config_given || std::filesystem::exists(o.config, ec)) {
        auto parsed = cb::config::load_file(o.config);
        if (!parsed.config) {
            std::ostringstream msg;
            msg << "cannot find the admin socket: the config has errors:";
            for (auto& e : parsed.errors)
                msg << "\n  " << e;
            throw Failure(msg.str());
        }
        if (parsed.config->admin_socket.path.empty())
            throw Failure(o.config + " has no <adminSocket>; use --url with --user");
        return parsed.config->admin_socket.path;
    }
    return kDefaultSocket;
}

template <typename Stream>
HttpResult exchange(Stream& stream, http::request<http::string_body>& req) {
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buffer, parser);
    auto res = parser.release();
    return {res.result_int(), res.body()};
}

HttpResult call(const Options& o, http::verb method, const std::string& target,
                const std::string& body) {
    net::io_context ioc;
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::user_agent, "commbrokerctl");
    req.set(http::field::connection, "close");
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
    }
    try {
        if (!o.url.empty()) {
            std::string rest = o.url;
            if (rest.rfind("http://", 0) != 0) throw UsageError("--url must start with http://");
            rest = rest.substr(7);
            auto slash = rest.find('/');
            auto hostport = rest.substr(0, slash);
            auto colon = hostport.rfind(':');
            if (colon == std::string::npos)
                throw UsageError("--url needs a port, e.g. http://127.0.0.1:8452");
            req.set(http::field::host, hostport);
            if (!o.user.empty()) {
                const char* pw = std::getenv("COMMBROKER_PASSWORD");
                req.set(http::field::authorization,
                        "Basic " + cb::config::base64_encode(o.user + ":" + (pw ? pw : "")));
            }
            net::ip::tcp::resolver resolver(ioc);
            net::ip::tcp::socket socket(ioc);
            net::connect(socket,
                         resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
            return exchange(socket, req);
        }
        auto path = resolve_socket(o);
        req.set(http::field::host, "localhost");
        net::local::stream_protocol::socket socket(ioc);
        boost::system::error_code ec;
        socket.connect(net::local::stream_protocol::endpoint(path), ec);
        if (ec) throw Failure("cannot reach the broker at " + path + ": " + ec.message());
        return exchange(socket, req);
    } catch (const boost::system::system_error& e) {
        throw Failure(std::string("cannot reach the broker: ") + e.what());
    }
}

json::value call_json(const Options& o, http::verb method, const std::string& target,
                      const std::string& body) {
    auto r = call(o, method, target, body);
    json::error_code ec;
    auto v = json::parse(r.body, ec);
    if (r.status >= 400) {
        std::string msg = "the broker answered " + std::to_string(r.status);
        if (!ec && v.is_object() && v.as_object().contains("error")) {
            auto& e = v.as_object()["error"].as_object();
            msg += ": " + std::string(e["message"].as_string());
            if (auto* errs = e.if_contains("errors"))
                for (auto& x : errs->as_array())
                    msg += "\n  " + std::string(x.as_string());
        }
        throw Failure(msg);
    }
    if (ec) throw Failure("the broker's answer is not JSON: " + ec.message());
    return v;
}

std::string str(const json::value& v) {
    if (v.is_string()) return std::string(v.get_string());
    if (v.is_null()) return "-";
    return json::serialize(v);
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(header.size());
    for (std::size_t i = 0; i < header.size(); ++i)
        width[i] = header[i].size();
    for (auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
            std::cout << cells[i];
            if (i + 1 < cells.size()) std::cout << std::string(width[i] - cells[i].size() + 2, ' ');
        }
        std::cout << "\n";
    };
    line(header);
    for (auto& r : rows)
        line(r);
}

std::string query_escape(const std::string& s) {
    std::ostringstream out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '@')
            out << c;
        else
            out << '%' << std::uppercase << std::hex << std::setw(2) << std::setfill('0') << int(c);
    }
    return out.str();
}

std::string with_filters(const Options& o, std::string target,
                         const std::map<std::string, std::string>& filters,
                         const std::string& usage) {
    std::string sep = "?";
    for (std::size_t i = 1; i < o.args.size(); ++i) {
        auto it = filters.find(o.args[i]);
        if (it == filters.end() || i + 1 >= o.args.size()) throw UsageError(usage);
        target += sep + it->second + "=" + query_escape(o.args[++i]);
        sep = "&";
    }
    return target;
}

}  // namespace cb::ctl
