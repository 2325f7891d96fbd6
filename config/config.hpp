// commbroker configuration: the XML file of PROTOCOL.md section 5.
//
// Contract: parse() reads a whole file and returns either a complete Config (every setting given
// or defaulted, every bound checked, every cross-reference resolved) or the full list of errors,
// each with its line number. A Config is immutable once built; the daemon swaps whole Configs
// on reload and uses reload_diff() to name the settings that cannot change while it runs.
// Nothing here does I/O beyond reading the file (and a CMS passwordFile) named in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cb::config {

using Duration = std::chrono::milliseconds;

enum class Service { ici, desktop, admin };
std::string_view to_string(Service s);

struct Listen {
    Service service = Service::ici;
    std::string address;
    std::uint16_t port = 0;
    std::string tls_certificate;  // PEM chain, leaf first; with tls_key: the listener is TLS
    std::string tls_key;          // the paths are resolved against the config's directory
};

struct Node {
    std::string id = "broker-1";
    std::string public_url;        // appURL given to CMSs; empty: derived from the ici listener
    unsigned threads = 0;          // I/O threads; 0 = one per core
    unsigned desktop_threads = 0;  // the desktop connections' own threads; 0 = as many as threads
    unsigned desktop_nice = 0;     // those threads run this many nice steps below the process
};

struct AdminSocket {
    std::string path;  // empty: no Unix socket
    unsigned mode = 0660;
    unsigned max_connections = 64;  // its own budget, never shared with the network listeners
};

enum class Sync { full, normal };
std::string_view to_string(Sync s);

/// Where the journal is kept: only the embedded SQLite file is built in so far.
enum class JournalBackend { sqlite };

struct Journal {
    JournalBackend backend = JournalBackend::sqlite;
    std::string path;
    Sync sync = Sync::full;
    unsigned max_batch = 1024;                       // changes committed in one transaction at most
    std::size_t wal_limit_bytes = 16 * 1024 * 1024;  // WAL restarted between commits past this
    Duration retry_delay = std::chrono::milliseconds(100);  // first retry of a failed commit
    Duration retry_max_delay = std::chrono::seconds(5);     // retries back off up to this
    Duration unhealthy_after = std::chrono::seconds(30);    // failing this long: /healthz fails
    Duration file_check_interval = std::chrono::milliseconds(250);  // is the file still there?
};

struct Limits {
    std::size_t max_body_bytes = 65536;
    std::size_t max_header_bytes = 8192;
    unsigned max_xml_depth = 32;
    unsigned max_attributes = 64;
    std::size_t max_fault_text_bytes = 1024;  // of a CMS's fault text, passed to desktops and logs
    unsigned max_connections = 20000;         // per listener
    unsigned max_connections_per_address = 1000;  // per listener and source address; 0: no bound
    // all TCP listeners together; 0: the descriptor limit (RLIMIT_NOFILE) less 256 kept for the
    // journal, the CMS links and the rest
    unsigned max_open_connections = 0;
    Duration hello_timeout = std::chrono::seconds(5);  // a desktop's upgrade to its first frame
    Duration desktop_idle_timeout = std::chrono::minutes(5);  // nothing from a desktop: closed
    unsigned hellos_at_once = 16;  // admitted hellos on their way through the core at one time
    Duration tls_handshake_timeout = std::chrono::seconds(10);  // accept to the end of TLS's
    unsigned tls_handshakes_per_source = 200;  // new TLS handshakes a second per source; 0: any
    std::size_t max_frame_bytes = 65536;
    unsigned desktop_queue = 1000;
    unsigned max_chat_postings = 1000;  // a live chat's newest postings kept (memory, journal)
    unsigned replay_events = 10000;
    Duration desktop_slow_timeout = std::chrono::seconds(5);
    Duration http_idle_timeout = std::chrono::seconds(60);
    Duration ended_item_retention = std::chrono::hours(1);
    unsigned password_threads = 1;  // PBKDF2 runs here, never on an I/O thread
    unsigned password_queue = 256;  // logons waiting for those; more are refused at once
};

/// How failed logons are answered, at each door (ici, desktop, admin) on its own.
struct LogonGuard {
    unsigned free_failures = 3;                             // per source address or user: at once
    Duration first_delay = std::chrono::milliseconds(250);  // then held, doubling each time
    Duration max_delay = std::chrono::seconds(4);
    unsigned lock_after = 10;                          // failures that lock the address or user
    Duration lock_for = std::chrono::minutes(1);       // refused unchecked meanwhile
    Duration forget_after = std::chrono::minutes(10);  // quiet this long: starts afresh
    unsigned max_checking = 32;  // checks in flight per user, and per address once it has failed
};

struct Recovery {
    // a live item that nobody touches this long (no change from its CMS, no operator's assign)
    // becomes an orphan with the reason `untouched`; 0: never
    Duration orphan_after = std::chrono::hours(8);
};

enum class HeartbeatMode { watchdog, on_contact };
enum class SuspectAction { not_ready, none };

struct HeartbeatProfile {
    std::string id;
    HeartbeatMode mode = HeartbeatMode::watchdog;
    Duration interval = std::chrono::seconds(5);
    Duration lag = std::chrono::seconds(15);
    Duration grace = std::chrono::seconds(30);
    SuspectAction suspect_action = SuspectAction::not_ready;
};

struct Cms {
    std::string id;
    std::string url;
    std::string user;
    std::string password;  // from the attribute or read from passwordFile
    std::string inbound_user;
    std::string inbound_password_hash;
    // for an https:// url: the CAs trusted for the CMS (empty: the system's store) and the
    // broker's client certificate and key (optional)
    std::string tls_ca_file;
    std::string tls_certificate;
    std::string tls_key;
    Duration probe_interval = std::chrono::seconds(5);
    Duration probe_timeout = std::chrono::seconds(15);
    Duration request_timeout = std::chrono::seconds(5);
    unsigned connections = 4;  // the pool of HTTP connections to this CMS
    // the largest response taken from this CMS (a getItems answer lists every live item)
    std::size_t max_response_bytes = 64 * 1024 * 1024;
    // requests waiting for one of those connections; more are refused at once
    unsigned max_queued_requests = 1000;
};

enum class Role { agent, supervisor };

struct Agent {
    std::string id;
    std::string password_hash;
    Role role = Role::agent;
    std::string cms;
    std::string heartbeat_profile = "default";
    bool auto_logon = false;
};

struct Operator {
    std::string id;
    std::string password_hash;
};

struct Trace {
    unsigned default_level = 0;
    Duration retention = std::chrono::hours(24 * 7);
    std::uint64_t max_entries = 1000000;
};

struct Statistics {
    std::string export_directory;
    std::string export_time = "00:05";
};

enum class LogTarget { stderr_, journald };

struct Log {
    std::string level = "info";
    LogTarget target = LogTarget::stderr_;
};

struct Config {
    std::string source;  // the file it was read from
    Node node;
    std::vector<Listen> listens;
    AdminSocket admin_socket;
    Journal journal;
    Limits limits;
    LogonGuard logon_guard;
    Recovery recovery;
    std::vector<HeartbeatProfile> heartbeat_profiles;
    std::vector<Cms> cms;
    std::vector<Agent> agents;
    std::unordered_map<std::string, std::size_t> agent_index;  // id → position in agents
    std::vector<Operator> operators;
    Trace trace;
    Statistics statistics;
    Log log;

    const Cms* find_cms(std::string_view id) const;
    const Cms* find_cms_by_inbound_user(std::string_view user) const;
    const Operator* find_operator(std::string_view id) const;
    const Agent* find_agent(const std::string& id) const;
    /// The agent's heartbeat profile (the built-in default if the config has none by that name).
    const HeartbeatProfile& profile_of(const Agent& agent) const;
    const Listen* find_listen(Service s) const;
};

struct ParseResult {
    std::shared_ptr<const Config> config;  // null when errors is not empty
    std::vector<std::string> errors;       // "FILE:LINE: message", all of them
};

/// Reads and checks a config file.
ParseResult load_file(const std::string& path);
/// Checks a config held in memory; `name` stands for the file in messages.
ParseResult parse(std::string_view xml, const std::string& name);

/// Parses "250ms", "5s", "2m", "1h", "7d".
std::optional<Duration> parse_duration(std::string_view text);
std::string format_duration(Duration d);

/// The settings that differ between two configs but cannot change while the daemon runs
/// (listeners, admin socket, journal, node, threads): one human-readable name each.
std::vector<std::string> reload_diff(const Config& running, const Config& next);

}  // namespace cb::config
