#include "config/config.hpp"

#include "channels/item.hpp"
#include "config/password.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace cb::config {

std::string_view to_string(Service s) {
    switch (s) {
        case Service::ici:
            return "ici";
        case Service::desktop:
            return "desktop";
        case Service::admin:
            return "admin";
    }
    return "?";
}

std::string_view to_string(Sync s) {
    return s == Sync::full ? "full" : "normal";
}

const Cms* Config::find_cms(std::string_view id) const {
    for (auto& c : cms)
        if (c.id == id) return &c;
    return nullptr;
}
const Cms* Config::find_cms_by_inbound_user(std::string_view user) const {
    for (auto& c : cms)
        if (!c.inbound_user.empty() && c.inbound_user == user) return &c;
    return nullptr;
}
const Operator* Config::find_operator(std::string_view id) const {
    for (auto& o : operators)
        if (o.id == id) return &o;
    return nullptr;
}
const Agent* Config::find_agent(const std::string& id) const {
    auto it = agent_index.find(id);
    return it == agent_index.end() ? nullptr : &agents[it->second];
}
const HeartbeatProfile& Config::profile_of(const Agent& agent) const {
    for (auto& p : heartbeat_profiles)
        if (p.id == agent.heartbeat_profile) return p;
    static const HeartbeatProfile built_in{"default"};
    return built_in;
}
const Listen* Config::find_listen(Service s) const {
    for (auto& l : listens)
        if (l.service == s) return &l;
    return nullptr;
}

std::optional<Duration> parse_duration(std::string_view text) {
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr == text.data()) return std::nullopt;
    std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    std::uint64_t ms_per = 0;
    if (unit == "ms")
        ms_per = 1;
    else if (unit == "s")
        ms_per = 1000;
    else if (unit == "m")
        ms_per = 60'000;
    else if (unit == "h")
        ms_per = 3'600'000;
    else if (unit == "d")
        ms_per = 86'400'000;
    else
        return std::nullopt;
    // Bounded so that the product fits: 2^40 days would not.
    if (n > (std::uint64_t{1} << 40) / ms_per) return std::nullopt;
    return Duration(static_cast<Duration::rep>(n * ms_per));
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    if (ms % 86'400'000 == 0 && ms) return std::to_string(ms / 86'400'000) + "d";
    if (ms % 3'600'000 == 0 && ms) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0 && ms) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

namespace {

/// Maps byte offsets of the document to 1-based line numbers.
class LineIndex {
  public:
    explicit LineIndex(std::string_view text) {
        for (std::size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n') newlines_.push_back(i);
    }
    std::size_t line_of(std::ptrdiff_t offset) const {
        if (offset < 0) return 0;
        return static_cast<std::size_t>(std::lower_bound(newlines_.begin(), newlines_.end(),
                                                         static_cast<std::size_t>(offset)) -
                                        newlines_.begin()) +
               1;
    }

  private:
    std::vector<std::size_t> newlines_;
};

class Errors {
  public:
    Errors(std::string name, const LineIndex& lines) : name_(std::move(name)), lines_(lines) {}
    void at(pugi::xml_node n, const std::string& msg) {
        list_.push_back(name_ + ":" + std::to_string(lines_.line_of(n.offset_debug())) + ": " +
                        msg);
    }
    void at_line(std::size_t line, const std::string& msg) {
        list_.push_back(name_ + ":" + std::to_string(line) + ": " + msg);
    }
    std::vector<std::string>& list() { return list_; }

  private:
    std::string name_;
    const LineIndex& lines_;
    std::vector<std::string> list_;
};

/// Reads the attributes of one element against its table of settings. Every attribute not read
/// by the time check_unknown() runs is reported as unknown: a typo is never silently ignored.
class ElementReader {
  public:
    ElementReader(pugi::xml_node n, Errors& e) : node_(n), errors_(e) {}

    void string(const char* name, std::string& out, bool required = false) {
        auto a = take(name);
        if (!a) {
            if (required) error(std::string("missing attribute ") + name);
            return;
        }
        out = a.value();
        if (required && out.empty()) error(std::string(name) + " must not be empty");
    }

    template <typename T>
    void number(const char* name, T& out, std::uint64_t min, std::uint64_t max, int base = 10) {
        auto a = take(name);
        if (!a) return;
        std::string_view v = a.value();
        std::uint64_t n = 0;
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n, base);
        if (ec != std::errc{} || ptr != v.data() + v.size() || v.empty()) {
            error(std::string(name) + "=\"" + std::string(v) + "\" is not a whole number");
            return;
        }
        if (n < min || n > max) {
            error(std::string(name) + "=" + std::string(v) + " is out of range " +
                  std::to_string(min) + ".." + std::to_string(max));
            return;
        }
        out = static_cast<T>(n);
    }

    void duration(const char* name, Duration& out, Duration min, Duration max) {
        auto a = take(name);
        if (!a) return;
        auto d = parse_duration(a.value());
        if (!d) {
            error(std::string(name) + "=\"" + a.value() +
                  "\" is not a duration (250ms, 5s, 2m, 1h, 7d)");
            return;
        }
        if (*d < min || *d > max) {
            error(std::string(name) + "=" + a.value() + " is out of range " + format_duration(min) +
                  ".." + format_duration(max));
            return;
        }
        out = *d;
    }

    template <typename E>
    void choice(const char* name, E& out, std::initializer_list<std::pair<const char*, E>> values) {
        auto a = take(name);
        if (!a) return;
        std::string allowed;
        for (auto& [text, value] : values) {
            if (a.value() == std::string_view(text)) {
                out = value;
                return;
            }
            allowed += allowed.empty() ? text : std::string(" | ") + text;
        }
        error(std::string(name) + "=\"" + a.value() + "\" must be one of " + allowed);
    }

    void boolean(const char* name, bool& out) {
        choice(name, out, {{"true", true}, {"false", false}});
    }

    void check_unknown() {
        for (auto a : node_.attributes())
            if (!taken_.count(a.name()))
                error(std::string("unknown attribute ") + a.name() + " on <" + node_.name() + ">");
    }

    void error(const std::string& msg) { errors_.at(node_, msg); }

  private:
    pugi::xml_attribute take(const char* name) {
        taken_.insert(name);
        return node_.attribute(name);
    }

    pugi::xml_node node_;
    Errors& errors_;
    std::set<std::string> taken_;
};

constexpr Duration kMs{1};
constexpr Duration kDay = std::chrono::hours(24);

/// A file the config names: relative to the config's directory; an error unless it can be read.
std::string readable_file(ElementReader& r, const char* attribute, const std::string& value,
                          const std::string& base_dir) {
    if (value.empty()) return value;
    std::string path = value[0] == '/' ? value : base_dir + "/" + value;
    if (!std::ifstream(path)) r.error(std::string(attribute) + " " + path + " cannot be read");
    return path;
}

void read_listen(pugi::xml_node n, Errors& e, Config& c, const std::string& base_dir) {
    ElementReader r(n, e);
    Listen l;
    bool has_service = static_cast<bool>(n.attribute("service"));
    r.choice("service", l.service,
             {{"ici", Service::ici}, {"desktop", Service::desktop}, {"admin", Service::admin}});
    if (!has_service) r.error("missing attribute service");
    r.string("address", l.address, true);
    r.number("port", l.port, 0, 65535);
    if (!n.attribute("port")) r.error("missing attribute port");
    r.string("tlsCertificate", l.tls_certificate);
    r.string("tlsKey", l.tls_key);
    if (l.tls_certificate.empty() != l.tls_key.empty())
        r.error("tlsCertificate and tlsKey go together");
    l.tls_certificate = readable_file(r, "tlsCertificate", l.tls_certificate, base_dir);
    l.tls_key = readable_file(r, "tlsKey", l.tls_key, base_dir);
    r.check_unknown();
    for (auto& other : c.listens)
        if (other.service == l.service)
            r.error("a second <listen service=\"" + std::string(to_string(l.service)) + "\">");
    c.listens.push_back(l);
}

void read_cms(pugi::xml_node n, Errors& e, Config& c, const std::string& base_dir) {
    ElementReader r(n, e);
    Cms m;
    r.string("id", m.id, true);
    if (!m.id.empty() && !channels::valid_item_id(m.id))
        r.error("id \"" + m.id + "\" must be 1-128 of [A-Za-z0-9._:@-]");
    r.string("url", m.url, true);
    bool https = m.url.rfind("https://", 0) == 0;
    if (!m.url.empty() && m.url.rfind("http://", 0) != 0 && !https)
        r.error("url must start with http:// or https://");
    r.string("tlsCaFile", m.tls_ca_file);
    r.string("tlsCertificate", m.tls_certificate);
    r.string("tlsKey", m.tls_key);
    if (m.tls_certificate.empty() != m.tls_key.empty())
        r.error("tlsCertificate and tlsKey go together");
    if (!https && !(m.tls_ca_file.empty() && m.tls_certificate.empty()))
        r.error("tlsCaFile, tlsCertificate and tlsKey need an https:// url");
    m.tls_ca_file = readable_file(r, "tlsCaFile", m.tls_ca_file, base_dir);
    m.tls_certificate = readable_file(r, "tlsCertificate", m.tls_certificate, base_dir);
    m.tls_key = readable_file(r, "tlsKey", m.tls_key, base_dir);
    r.string("user", m.user);
    r.string("password", m.password);
    std::string password_file;
    r.string("passwordFile", password_file);
    if (!password_file.empty()) {
        if (!m.password.empty()) r.error("password and passwordFile exclude each other");
        std::string path = password_file[0] == '/' ? password_file : base_dir + "/" + password_file;
        std::ifstream in(path);
        if (!in)
            r.error("passwordFile " + path + " cannot be read");
        else {
            std::getline(in, m.password);
        }
    }
    r.string("inboundUser", m.inbound_user);
    r.string("inboundPasswordHash", m.inbound_password_hash);
    if (m.inbound_user.empty() != m.inbound_password_hash.empty())
        r.error("inboundUser and inboundPasswordHash go together");
    if (!m.inbound_password_hash.empty())
        if (auto why = check_password_hash(m.inbound_password_hash))
            r.error("inboundPasswordHash: " + *why);
    r.duration("probeInterval", m.probe_interval, 100 * kMs, kDay);
    r.duration("probeTimeout", m.probe_timeout, 100 * kMs, kDay);
    r.duration("requestTimeout", m.request_timeout, 10 * kMs, std::chrono::minutes(10));
    r.number("connections", m.connections, 1, 64);
    r.number("maxResponseBytes", m.max_response_bytes, 64 * 1024, 4ull * 1024 * 1024 * 1024);
    r.number("maxQueuedRequests", m.max_queued_requests, 1, 1000000);
    r.check_unknown();
    for (auto& other : c.cms) {
        if (other.id == m.id) r.error("a second <cms id=\"" + m.id + "\">");
        if (!m.inbound_user.empty() && other.inbound_user == m.inbound_user)
            r.error("inboundUser \"" + m.inbound_user + "\" is already used by <cms id=\"" +
                    other.id + "\">");
    }
    c.cms.push_back(std::move(m));
}

void read_agent(pugi::xml_node n, Errors& e, Config& c) {
    ElementReader r(n, e);
    Agent a;
    r.string("id", a.id, true);
    if (!a.id.empty() && !channels::valid_item_id(a.id))
        r.error("id \"" + a.id + "\" must be 1-128 of [A-Za-z0-9._:@-]");
    r.string("passwordHash", a.password_hash, true);
    if (!a.password_hash.empty())
        if (auto why = check_password_hash(a.password_hash)) r.error("passwordHash: " + *why);
    r.choice("role", a.role, {{"agent", Role::agent}, {"supervisor", Role::supervisor}});
    r.string("cms", a.cms);
    r.string("heartbeatProfile", a.heartbeat_profile);
    r.boolean("autoLogon", a.auto_logon);
    r.check_unknown();
    if (!c.agent_index.emplace(a.id, c.agents.size()).second)
        r.error("a second <agent id=\"" + a.id + "\">");
    else
        c.agents.push_back(std::move(a));
}

}  // namespace

ParseResult parse(std::string_view xml, const std::string& name) {
    ParseResult result;
    LineIndex lines(xml);
    Errors errors(name, lines);
    pugi::xml_document doc;
    auto pr = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default | pugi::parse_doctype);
    if (!pr) {
        errors.at_line(lines.line_of(pr.offset),
                       std::string("not well-formed XML: ") + pr.description());
        result.errors = std::move(errors.list());
        return result;
    }
    auto root = doc.document_element();
    if (std::string_view(root.name()) != "commbroker") {
        errors.at(root, "the root element must be <commbroker>");
        result.errors = std::move(errors.list());
        return result;
    }
    for (auto n : doc.children())
        if (n.type() == pugi::node_doctype) errors.at(root, "a DOCTYPE is not allowed");

    auto c = std::make_shared<Config>();
    c->source = name;
    std::string base_dir = ".";
    if (auto slash = name.rfind('/'); slash != std::string::npos) base_dir = name.substr(0, slash);

    std::map<std::string, int> singles;
    bool has_journal = false;
    std::vector<std::pair<pugi::xml_node, std::string>> agent_nodes;
    std::vector<pugi::xml_node> profile_nodes;

    for (auto n : root.children()) {
        if (n.type() == pugi::node_pcdata &&
            std::string_view(n.value()).find_first_not_of(" \t\r\n") != std::string_view::npos) {
            errors.at(n, "unexpected text inside <commbroker>");
            continue;
        }
        if (n.type() != pugi::node_element) continue;
        std::string tag = n.name();
        if (n.first_child() && n.first_child().type() == pugi::node_element)
            errors.at(n, "<" + tag + "> takes no child elements");
        static const std::set<std::string> kSingle = {"node",   "adminSocket", "journal",
                                                      "limits", "logonGuard",  "recovery",
                                                      "trace",  "statistics",  "log"};
        if (kSingle.count(tag) && singles[tag]++) {
            errors.at(n, "a second <" + tag + ">");
            continue;
        }
        ElementReader r(n, errors);
        if (tag == "node") {
            r.string("id", c->node.id, true);
            if (!c->node.id.empty() && !channels::valid_item_id(c->node.id))
                r.error("id must be 1-128 of [A-Za-z0-9._:@-]");
            r.string("publicUrl", c->node.public_url);
            r.number("threads", c->node.threads, 0, 256);
            r.number("desktopThreads", c->node.desktop_threads, 0, 256);
            r.number("desktopNice", c->node.desktop_nice, 0, 19);
            r.check_unknown();
        } else if (tag == "listen") {
            read_listen(n, errors, *c, base_dir);
        } else if (tag == "adminSocket") {
            r.string("path", c->admin_socket.path, true);
            r.number("mode", c->admin_socket.mode, 0, 0777, 8);
            r.number("maxConnections", c->admin_socket.max_connections, 1, 10000);
            // Whoever may connect may log agents off and close calls: never every user.
            if (c->admin_socket.mode & 0007)
                r.error(
                    "mode gives every user of the machine the admin API; use 0600 (the "
                    "broker's user) or 0660 (and its group)");
            else if ((c->admin_socket.mode & 0600) != 0600)
                r.error("mode must let the broker's own user read and write (0600 or 0660)");
            r.check_unknown();
        } else if (tag == "journal") {
            has_journal = true;
            r.choice("backend", c->journal.backend, {{"sqlite", JournalBackend::sqlite}});
            r.string("path", c->journal.path, true);
            r.choice("sync", c->journal.sync, {{"full", Sync::full}, {"normal", Sync::normal}});
            r.number("maxBatch", c->journal.max_batch, 1, 100000);
            r.number("walLimitBytes", c->journal.wal_limit_bytes, 65536,
                     std::uint64_t{1024} * 1024 * 1024);
            r.duration("retryDelay", c->journal.retry_delay, Duration(10), Duration(10000));
            r.duration("retryMaxDelay", c->journal.retry_max_delay, Duration(100),
                       Duration(300000));
            r.duration("unhealthyAfter", c->journal.unhealthy_after, Duration(1000),
                       Duration(3600000));
            r.duration("fileCheckInterval", c->journal.file_check_interval, Duration(50),
                       Duration(1000));
            r.check_unknown();
        } else if (tag == "logonGuard") {
            auto& g = c->logon_guard;
            r.number("freeFailures", g.free_failures, 0, 1000);
            r.duration("firstDelay", g.first_delay, 10 * kMs, std::chrono::minutes(1));
            r.duration("maxDelay", g.max_delay, 10 * kMs, std::chrono::minutes(5));
            r.number("lockAfter", g.lock_after, 1, 100000);
            r.duration("lockFor", g.lock_for, Duration(1000), kDay);
            r.duration("forgetAfter", g.forget_after, Duration(1000), kDay);
            r.number("maxChecking", g.max_checking, 1, 100000);
            r.check_unknown();
            if (g.max_delay < g.first_delay) r.error("maxDelay must be at least firstDelay");
        } else if (tag == "recovery") {
            r.duration("orphanAfter", c->recovery.orphan_after, Duration(0), 365 * kDay);
            if (c->recovery.orphan_after > Duration(0) &&
                c->recovery.orphan_after < std::chrono::seconds(1))
                r.error("orphanAfter must be 0 (never) or at least 1s");
            r.check_unknown();
        } else if (tag == "limits") {
            auto& l = c->limits;
            r.number("maxBodyBytes", l.max_body_bytes, 1024, 16 * 1024 * 1024);
            r.number("maxHeaderBytes", l.max_header_bytes, 1024, 1024 * 1024);
            r.number("maxXmlDepth", l.max_xml_depth, 4, 1000);
            r.number("maxAttributes", l.max_attributes, 1, 10000);
            r.number("maxFaultTextBytes", l.max_fault_text_bytes, 64, 65536);
            r.number("maxConnections", l.max_connections, 1, 1000000);
            r.number("maxConnectionsPerAddress", l.max_connections_per_address, 0, 1000000);
            r.number("maxOpenConnections", l.max_open_connections, 0, 10000000);
            r.duration("helloTimeout", l.hello_timeout, 100 * kMs, std::chrono::minutes(5));
            r.number("hellosAtOnce", l.hellos_at_once, 1, 100000);
            r.duration("desktopIdleTimeout", l.desktop_idle_timeout, std::chrono::seconds(1), kDay);
            r.duration("tlsHandshakeTimeout", l.tls_handshake_timeout, 100 * kMs,
                       std::chrono::minutes(5));
            r.number("tlsHandshakesPerSource", l.tls_handshakes_per_source, 0, 1000000);
            r.number("maxFrameBytes", l.max_frame_bytes, 1024, 16 * 1024 * 1024);
            r.number("desktopQueue", l.desktop_queue, 1, 1000000);
            r.number("maxChatPostings", l.max_chat_postings, 1, 100000);
            r.number("replayEvents", l.replay_events, 0, 10000000);
            r.duration("desktopSlowTimeout", l.desktop_slow_timeout, 100 * kMs,
                       std::chrono::minutes(10));
            r.duration("httpIdleTimeout", l.http_idle_timeout, 100 * kMs, kDay);
            r.duration("endedItemRetention", l.ended_item_retention, Duration(0), 30 * kDay);
            r.number("passwordThreads", l.password_threads, 1, 64);
            r.number("passwordQueue", l.password_queue, 1, 1000000);
            r.check_unknown();
        } else if (tag == "heartbeatProfile") {
            HeartbeatProfile p;
            r.string("id", p.id, true);
            r.choice(
                "mode", p.mode,
                {{"watchdog", HeartbeatMode::watchdog}, {"onContact", HeartbeatMode::on_contact}});
            r.duration("interval", p.interval, 100 * kMs, kDay);
            r.duration("lag", p.lag, 100 * kMs, kDay);
            r.duration("grace", p.grace, Duration(0), kDay);
            r.choice("suspectAction", p.suspect_action,
                     {{"notReady", SuspectAction::not_ready}, {"none", SuspectAction::none}});
            r.check_unknown();
            if (p.lag < p.interval) r.error("lag must be at least interval");
            for (auto& other : c->heartbeat_profiles)
                if (other.id == p.id) r.error("a second <heartbeatProfile id=\"" + p.id + "\">");
            c->heartbeat_profiles.push_back(p);
            profile_nodes.push_back(n);
        } else if (tag == "cms") {
            read_cms(n, errors, *c, base_dir);
        } else if (tag == "agent") {
            read_agent(n, errors, *c);
            agent_nodes.emplace_back(n, c->agents.back().id);
        } else if (tag == "operator") {
            Operator o;
            r.string("id", o.id, true);
            r.string("passwordHash", o.password_hash, true);
            if (!o.password_hash.empty())
                if (auto why = check_password_hash(o.password_hash))
                    r.error("passwordHash: " + *why);
            r.check_unknown();
            for (auto& other : c->operators)
                if (other.id == o.id) r.error("a second <operator id=\"" + o.id + "\">");
            c->operators.push_back(o);
        } else if (tag == "trace") {
            r.number("defaultLevel", c->trace.default_level, 0, 3);
            r.duration("retention", c->trace.retention, std::chrono::minutes(1), 365 * kDay);
            r.number("maxEntries", c->trace.max_entries, 1000, 1'000'000'000);
            r.check_unknown();
        } else if (tag == "statistics") {
            r.string("exportDirectory", c->statistics.export_directory);
            r.string("exportTime", c->statistics.export_time);
            auto& t = c->statistics.export_time;
            if (t.size() != 5 || t[2] != ':' || !std::isdigit(static_cast<unsigned char>(t[0])) ||
                !std::isdigit(static_cast<unsigned char>(t[1])) ||
                !std::isdigit(static_cast<unsigned char>(t[3])) ||
                !std::isdigit(static_cast<unsigned char>(t[4])) || std::stoi(t.substr(0, 2)) > 23 ||
                std::stoi(t.substr(3, 2)) > 59)
                r.error("exportTime=\"" + t + "\" must be HH:MM");
            r.check_unknown();
        } else if (tag == "log") {
            r.choice("level", c->log.level,
                     {{"trace", std::string("trace")},
                      {"debug", std::string("debug")},
                      {"info", std::string("info")},
                      {"warn", std::string("warn")},
                      {"error", std::string("error")}});
            r.choice("target", c->log.target,
                     {{"stderr", LogTarget::stderr_}, {"journald", LogTarget::journald}});
            r.check_unknown();
        } else {
            errors.at(n, "unknown element <" + tag + ">");
        }
    }

    if (!has_journal) errors.at(root, "missing <journal path=\"…\"/>");
    if (c->listens.empty()) errors.at(root, "at least one <listen> is required");
    if (c->heartbeat_profiles.empty() ||
        std::none_of(c->heartbeat_profiles.begin(), c->heartbeat_profiles.end(),
                     [](auto& p) { return p.id == "default"; })) {
        HeartbeatProfile p;
        p.id = "default";
        c->heartbeat_profiles.push_back(p);
    }
    for (auto& [node, id] : agent_nodes) {
        auto it = std::find_if(c->agents.begin(), c->agents.end(),
                               [&id = id](auto& a) { return a.id == id; });
        if (it == c->agents.end()) continue;
        if (!it->cms.empty() && !c->find_cms(it->cms))
            errors.at(node, "agent " + id + ": no <cms id=\"" + it->cms + "\">");
        if (std::none_of(c->heartbeat_profiles.begin(), c->heartbeat_profiles.end(),
                         [&](auto& p) { return p.id == it->heartbeat_profile; }))
            errors.at(node, "agent " + id + ": no <heartbeatProfile id=\"" + it->heartbeat_profile +
                                "\">");
    }

    result.errors = std::move(errors.list());
    if (result.errors.empty()) result.config = std::move(c);
    return result;
}

ParseResult load_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {nullptr, {path + ": cannot be read"}};
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path);
}

std::vector<std::string> reload_diff(const Config& a, const Config& b) {
    std::vector<std::string> kept;
    auto listen_key = [](const Config& c) {
        std::vector<std::string> v;
        for (auto& l : c.listens)
            v.push_back(std::string(to_string(l.service)) + "@" + l.address + ":" +
                        std::to_string(l.port) + "|" + l.tls_certificate + "|" + l.tls_key);
        std::sort(v.begin(), v.end());
        return v;
    };
    // The certificate files of a TLS listener are read again on every reload; their paths,
    // like the addresses, are kept until a restart.
    if (listen_key(a) != listen_key(b)) kept.push_back("listen");
    if (a.admin_socket.path != b.admin_socket.path || a.admin_socket.mode != b.admin_socket.mode ||
        a.admin_socket.max_connections != b.admin_socket.max_connections)
        kept.push_back("adminSocket");
    if (a.journal.backend != b.journal.backend) kept.push_back("journal.backend");
    if (a.journal.path != b.journal.path) kept.push_back("journal.path");
    if (a.journal.sync != b.journal.sync) kept.push_back("journal.sync");
    if (a.journal.max_batch != b.journal.max_batch) kept.push_back("journal.maxBatch");
    if (a.journal.wal_limit_bytes != b.journal.wal_limit_bytes)
        kept.push_back("journal.walLimitBytes");
    if (a.journal.retry_delay != b.journal.retry_delay ||
        a.journal.retry_max_delay != b.journal.retry_max_delay)
        kept.push_back("journal.retryDelay");
    if (a.journal.unhealthy_after != b.journal.unhealthy_after)
        kept.push_back("journal.unhealthyAfter");
    if (a.journal.file_check_interval != b.journal.file_check_interval)
        kept.push_back("journal.fileCheckInterval");
    if (a.node.id != b.node.id) kept.push_back("node.id");
    if (a.node.threads != b.node.threads) kept.push_back("node.threads");
    if (a.node.desktop_threads != b.node.desktop_threads) kept.push_back("node.desktopThreads");
    if (a.node.desktop_nice != b.node.desktop_nice) kept.push_back("node.desktopNice");
    if (a.limits.max_chat_postings != b.limits.max_chat_postings)
        kept.push_back("limits.maxChatPostings");
    if (a.limits.password_threads != b.limits.password_threads)
        kept.push_back("limits.passwordThreads");
    if (a.limits.password_queue != b.limits.password_queue) kept.push_back("limits.passwordQueue");
    if (a.log.target != b.log.target) kept.push_back("log.target");
    // The links to the CMSs (URL, credentials, pool, probe timing) are made at start.
    auto cms_key = [](const Config& c) {
        std::vector<std::string> v;
        for (auto& m : c.cms)
            v.push_back(
                m.id + "|" + m.url + "|" + m.user + "|" + m.password + "|" + m.tls_ca_file + "|" +
                m.tls_certificate + "|" + m.tls_key + "|" + std::to_string(m.connections) + "|" +
                format_duration(m.probe_interval) + "|" + format_duration(m.probe_timeout) + "|" +
                format_duration(m.request_timeout) + "|" + std::to_string(m.max_response_bytes) +
                "|" + std::to_string(m.max_queued_requests));
        std::sort(v.begin(), v.end());
        return v;
    };
    if (cms_key(a) != cms_key(b))
        kept.push_back(
            "cms (url, user, password, TLS files, connections, timing, maxResponseBytes, "
            "maxQueuedRequests)");
    return kept;
}

}  // namespace cb::config
