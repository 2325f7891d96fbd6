#include "daemon/broker.hpp"

#include "config/password.hpp"
#include "daemon/admin_api.hpp"
#include "daemon/desktop_service.hpp"
#include "daemon/ici_service.hpp"
#include "daemon/logging.hpp"
#include "recovery/sqlite_journal.hpp"
#include "transport/admission.hpp"
#include "transport/tls.hpp"

#include <boost/asio/signal_set.hpp>

#include <sys/resource.h>

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <thread>

namespace cb::daemon {

struct SignalState {
    explicit SignalState(net::io_context& ioc) : set(ioc, SIGTERM, SIGINT, SIGHUP) {}
    net::signal_set set;
};

namespace {

constexpr auto kPruneInterval = std::chrono::minutes(1);
constexpr auto kSweepInterval = std::chrono::milliseconds(500);
constexpr auto kDrainTimeout = std::chrono::seconds(10);

channels::Registry::Limits registry_limits(const config::Config& c) {
    channels::Registry::Limits l;
    l.ended_retention = c.limits.ended_item_retention;
    l.max_chat_postings = c.limits.max_chat_postings;
    return l;
}

channels::HubLimits hub_limits(const config::Config& c) {
    channels::HubLimits l;
    l.queue = c.limits.desktop_queue;
    l.replay = c.limits.replay_events;
    l.slow_timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(c.limits.desktop_slow_timeout);
    return l;
}

/// A session's resume token: 128 random bits in hex.
std::string new_token() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no randomness for a token");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out += kHex[b >> 4];
        out += kHex[b & 15];
    }
    return out;
}

}  // namespace

namespace {

/// The PBKDF2 iterations of the first of `users` (the default if there is none): what checking
/// an unknown user at that door costs.
template <typename User>
unsigned stand_in_iterations(const std::vector<User>& users, std::string User::*hash) {
    for (auto& u : users) {
        const std::string& h = u.*hash;
        // pbkdf2-sha256$ITERATIONS$SALT$HASH, checked by the config
        auto first = h.find('$');
        auto second = h.find('$', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        try {
            return static_cast<unsigned>(std::stoul(h.substr(first + 1, second - first - 1)));
        } catch (const std::exception&) {
            continue;
        }
    }
    return config::kDefaultPbkdf2Iterations;
}

std::function<LogonPolicy()> logon_policy(const Broker* broker) {
    return [broker] {
        auto config = broker->config();  // held: a reload may swap it meanwhile
        auto& g = config->logon_guard;
        LogonPolicy p;
        p.free_failures = g.free_failures;
        p.first_delay = g.first_delay;
        p.max_delay = g.max_delay;
        p.lock_after = g.lock_after;
        p.lock_for = g.lock_for;
        p.forget_after = g.forget_after;
        p.max_checking = g.max_checking;
        return p;
    };
}

/// The I/O threads: `node threads`, else one per core.
unsigned io_threads(const config::Config& c) {
    return c.node.threads ? c.node.threads : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Broker::Broker(std::shared_ptr<const config::Config> config, bool start_empty)
    : ioc_(static_cast<int>(io_threads(*config))),
      core_(net::make_strand(ioc_)),
      config_(std::move(config)),
      registry_(registry_limits(*config_)),
      hub_(hub_limits(*config_), new_token),
      cms_(ioc_),
      sweep_timer_(ioc_),
      contacts_timer_(ioc_),
      heartbeat_timer_(ioc_),
      // room for every configured credential twice over (an old and a new password), so that
      // a credential verified since the start stays known
      credentials_(std::max<std::size_t>(
          4096, 2 * (config_->agents.size() + config_->operators.size() + config_->cms.size()))),
      // A CMS's own account, not failing, is checked on the urgent lane: after a restart its
      // first request does not wait behind a busy machine.
      ici_door_(ioc_, credentials_, "ici", logon_policy(this),
                stand_in_iterations(config_->cms, &config::Cms::inbound_password_hash),
                config_->limits.password_threads, config_->limits.password_queue, true),
      desktop_door_(ioc_, credentials_, "desktop", logon_policy(this),
                    stand_in_iterations(config_->agents, &config::Agent::password_hash),
                    config_->limits.password_threads, config_->limits.password_queue),
      admin_door_(ioc_, credentials_, "admin", logon_policy(this),
                  stand_in_iterations(config_->operators, &config::Operator::password_hash),
                  config_->limits.password_threads, config_->limits.password_queue),
      prune_timer_(ioc_),
      watchdog_timer_(ioc_),
      drain_timer_(ioc_),
      signals_(std::make_unique<SignalState>(ioc_)),
      start_empty_(start_empty) {}

Broker::~Broker() {
    // The desktop connections' threads reach the doors and the core: they stop first.
    if (desktop_) {
        desktop_->stop();
        desktop_->join();
    }
    for (auto* door : {&ici_door_, &desktop_door_, &admin_door_})
        door->stop();
    if (journal_) journal_->stop();
}

std::shared_ptr<const config::Config> Broker::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

std::size_t Broker::open_connections() const {
    return all_connections_ ? all_connections_->open() : 0;
}

std::chrono::seconds Broker::uptime() const {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                            started_);
}

std::string Broker::public_url() const {
    auto c = config();
    if (!c->node.public_url.empty()) return c->node.public_url;
    for (auto& l : listeners_)
        if (l.service == config::Service::ici) {
            std::string host =
                l.address == "0.0.0.0" || l.address == "::" ? "127.0.0.1" : l.address;
            if (host.find(':') != std::string::npos) host = "[" + host + "]";
            return (l.tls ? "https://" : "http://") + host + ":" + std::to_string(l.port) + "/ici";
        }
    return {};
}

namespace {

/// The journal of the configured backend, opened and checked (throws JournalError). SQLite is
/// the one built in; another backend is chosen here by `j.backend`.
std::unique_ptr<recovery::Journal> open_journal(const config::Journal& j,
                                                std::size_t max_chat_postings, bool start_empty) {
    recovery::SqliteJournal::Options jo;
    jo.path = j.path;
    jo.sync_full = j.sync == config::Sync::full;
    jo.max_batch = j.max_batch;
    jo.max_chat_postings = max_chat_postings;
    jo.wal_limit_bytes = j.wal_limit_bytes;
    jo.retry_delay = j.retry_delay;
    jo.retry_max_delay = j.retry_max_delay;
    jo.file_check_interval = j.file_check_interval;
    jo.start_empty = start_empty;
    jo.on_health = [](const recovery::JournalHealth& h) {
        // Logged once per change of state, never once per refused event.
        switch (h.state) {
            case recovery::JournalHealth::State::ok:
                spdlog::warn("journal: commits succeed again; the broker accepts events");
                break;
            case recovery::JournalHealth::State::retrying:
                spdlog::error(
                    "journal: commit failed ({}); events are refused (503) while it is "
                    "retried",
                    h.reason);
                break;
            case recovery::JournalHealth::State::lost:
                spdlog::critical(
                    "journal: {}; nothing more is acknowledged, and /healthz fails "
                    "so that the broker is restarted",
                    h.reason);
                break;
        }
    };
    return recovery::SqliteJournal::open(jo);
}

}  // namespace

namespace {
/// What every TCP listener takes from the config's limits.
transport::ListenerLimits listener_limits(const config::Limits& c) {
    transport::ListenerLimits l;
    l.max_connections = c.max_connections;
    l.max_connections_per_address = c.max_connections_per_address;
    l.tls_handshake_timeout = c.tls_handshake_timeout;
    l.tls_handshakes_per_source = c.tls_handshakes_per_source;
    return l;
}
}  // namespace

void Broker::start() {
    auto c = config();
    journal_ = open_journal(c->journal, c->limits.max_chat_postings, start_empty_);
    auto loaded = journal_->load(now() - c->limits.ended_item_retention);
    spdlog::info("journal {} (sync={}): {} live items, {} ended items remembered, {} agent states",
                 c->journal.path, config::to_string(c->journal.sync), loaded.live.size(),
                 loaded.ended.size(), loaded.agents.size());
    spdlog::info("journal: {} desktop session(s) to resume, {} orphan(s)", loaded.sessions.size(),
                 loaded.orphans.size());
    for (auto& s : loaded.sessions)
        resume_keys_.set(s.agent, s.token, s.resume_hash);
    hub_.restore(std::move(loaded.sessions), loaded.last_event_id, loaded.live);
    registry_.restore(std::move(loaded.live), std::move(loaded.ended), std::move(loaded.agents),
                      std::move(loaded.orphans));
    journal_->start();

    // Every TCP listener's connections together stay under the descriptor limit, less a
    // reserve for the journal, the CMS links and the rest (limits maxOpenConnections).
    unsigned descriptor_room = 1000000;
    if (struct rlimit r{}; ::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
        descriptor_room = r.rlim_cur > 256 + 64
                              ? static_cast<unsigned>(std::min<rlim_t>(r.rlim_cur - 256, 10000000))
                              : 64;
    all_connections_ = transport::ConnectionBudget::create([this, descriptor_room] {
        auto open = config()->limits.max_open_connections;
        return transport::BudgetLimits{open ? open : descriptor_room, 0};
    });
    spdlog::info("connections: at most {} on all TCP listeners together",
                 c->limits.max_open_connections ? c->limits.max_open_connections : descriptor_room);
    http_ = std::make_unique<transport::HttpServer>(
        ioc_,
        [this] {
            auto cfg = config();
            transport::HttpLimits l;
            static_cast<transport::ListenerLimits&>(l) = listener_limits(cfg->limits);
            l.max_body_bytes = cfg->limits.max_body_bytes;
            l.max_header_bytes = cfg->limits.max_header_bytes;
            l.idle_timeout = cfg->limits.http_idle_timeout;
            l.unix_max_connections = cfg->admin_socket.max_connections;
            return l;
        },
        all_connections_);
    auto ici = std::make_shared<IciService>(*this);
    auto admin = std::make_shared<AdminApi>(*this);
    desktop_ = std::make_unique<DesktopServer>(
        ioc_, std::make_shared<DesktopProtocol>(*this),
        [this] {
            auto cfg = config();
            DesktopLimits l;
            static_cast<transport::ListenerLimits&>(l) = listener_limits(cfg->limits);
            l.max_frame_bytes = cfg->limits.max_frame_bytes;
            l.hello_timeout = cfg->limits.hello_timeout;
            l.idle_timeout = cfg->limits.desktop_idle_timeout;
            return l;
        },
        all_connections_, c->node.desktop_threads ? c->node.desktop_threads : io_threads(*c),
        static_cast<int>(c->node.desktop_nice));
    desktop_contexts_ = desktop_->contexts();
    for (auto& l : c->listens) {
        std::string what = std::string(config::to_string(l.service)) + " on " + l.address + ":" +
                           std::to_string(l.port);
        try {
            std::shared_ptr<transport::TlsCredentials> tls;
            if (!l.tls_certificate.empty()) {
                tls = transport::TlsCredentials::load(transport::TlsCredentials::Side::server,
                                                      {l.tls_certificate, l.tls_key, {}});
                tls_.emplace_back(std::string(config::to_string(l.service)) + " listener", tls);
            }
            boost::asio::ip::tcp::endpoint ep;
            if (l.service == config::Service::desktop) {
                ep = desktop_->listen(l.address, l.port, tls);
            } else {
                std::shared_ptr<transport::HttpHandler> handler =
                    l.service == config::Service::ici ? std::shared_ptr<transport::HttpHandler>(ici)
                                                      : admin;
                ep = http_->listen_tcp(l.address, l.port, handler, tls);
            }
            listeners_.push_back(
                {l.service, ep.address().to_string(), ep.port(), static_cast<bool>(tls)});
            spdlog::info("listening: {} on {}:{}{}{}", config::to_string(l.service),
                         ep.address().to_string(), ep.port(),
                         l.service == config::Service::desktop
                             ? (tls ? " (WebSocket /desktop, wss)" : " (WebSocket /desktop)")
                             : (tls ? " (TLS)" : ""),
                         tls ? ", certificate " + tls->summary() : "");
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot listen for " + what + ": " + e.what());
        }
    }
    if (!c->admin_socket.path.empty()) {
        try {
            http_->listen_unix(c->admin_socket.path, c->admin_socket.mode, admin);
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot listen on the admin socket " + c->admin_socket.path +
                                     ": " + e.what());
        }
        spdlog::info("listening: admin on unix:{}", c->admin_socket.path);
    }
    cms_.start(*c, c->node.id, public_url(), [this](const std::string& system) {
        // The stored subscriptionEnded, if any, is over.
        net::post(core_, [this, system] {
            if (auto change = registry_.renew_subscription(system)) {
                journal_->submit({std::move(*change)}, [](bool) {});
                audit("cmsSubscribed", {}, system, {}, "subscribed again", "{}");
            }
        });
    });
    for (auto& [system, tls] : cms_.tls()) {
        tls_.emplace_back("cms " + system, tls);
        auto cert = tls->summary();
        spdlog::info(
            "cms {}: https, {}{}", system,
            tls->files().ca_file.empty() ? "the system's CAs" : "CAs of " + tls->files().ca_file,
            cert.empty() ? "" : ", client certificate " + cert);
    }
    // Every CMS is probed from now on, on the heartbeat timer (heartbeat::CmsProbes).
    net::post(core_, [this, c] {
        auto now = std::chrono::steady_clock::now();
        for (auto& cms : c->cms)
            probes_.watch(cms.id, cms.probe_interval, cms.probe_timeout, now);
        arm_heartbeat();
    });
    handle_signals();
    schedule_prune();
    schedule_sweep();
    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0)
        schedule_watchdog(std::chrono::microseconds(watchdog_usec / 2));
    ready_.store(true);
    // Every desktop session the journal kept gets a fresh heartbeat window from now on, and
    // every CMS is asked for its items.
    net::post(core_, [this] {
        watch_restored_sessions();
        after_core_state({});
    });
    reconcile({}, "startup");
    sd_notify(0, "READY=1\nSTATUS=serving");
    spdlog::info("commbrokerd {} ready: node {}", COMMBROKER_VERSION, c->node.id);
}

int Broker::run() {
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < io_threads(*config()); ++i)
        pool.emplace_back([this] { ioc_.run(); });
    ioc_.run();
    for (auto& t : pool)
        t.join();
    // The drain is over (or has given up): what a desktop connection still had is dropped.
    if (desktop_) desktop_->join();
    return 0;
}

void Broker::handle_signals() {
    signals_->set.async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            auto r = reload();
            if (!r.ok) {
                spdlog::error("reload refused, the running config stays: {} error(s)",
                              r.errors.size());
                for (auto& e : r.errors)
                    spdlog::error("  {}", e);
            }
            return handle_signals();
        }
        shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
        handle_signals();
    });
}

void Broker::submit(channels::Event event, std::chrono::steady_clock::time_point received,
                    std::function<void(SubmitResult)> done) {
    net::post(core_, [this, event = std::move(event), received, done = std::move(done)]() mutable {
        if (!accepting_ || !journal_->healthy())
            return done(SubmitResult{channels::Outcome::accepted, true});
        auto r = registry_.apply(event, now());
        if (auto* rejection = std::get_if<channels::Rejection>(&r.result))
            return done(SubmitResult{*rejection});
        auto outcome = std::get<channels::Outcome>(r.result);
        inflight_.fetch_add(1);
        // A duplicate or stale event submits nothing: it waits as a barrier until what it
        // matched is durable, so no answer ever claims more than the journal holds.
        // Desktops get the change as soon as it is applied, in the order of application; the
        // CMS is answered only once it is durable. A desktop that saw a change the process then
        // lost resumes after the restart with a resync snapshot (docs/protocol-notes.md).
        if (!r.changes.empty()) {
            // Always: the hub keeps who owns which item even while no desktop is connected.
            hub_.route(r.changes, received, std::chrono::steady_clock::now());
            if (hub_.sessions() > 0) flush_hub();
        }
        inspect(r.changes);  // may add orphans to the batch
        journal_->submit(std::move(r.changes), [this, outcome, done = std::move(done)](bool ok) {
            done(ok ? SubmitResult{outcome} : SubmitResult{outcome, true});
            inflight_.fetch_sub(1);
        });
    });
}

ReloadResult Broker::reload() {
    // SIGHUP and the admin API may reload at once: one at a time, so that the config stored
    // last is also the one whose limits were applied last.
    std::lock_guard serial(reload_mutex_);
    auto running = config();
    auto parsed = config::load_file(running->source);
    ReloadResult r;
    if (!parsed.config) {
        r.errors = std::move(parsed.errors);
        return r;
    }
    // Certificates and keys are read again, all of them before any is put to use: a file that
    // does not load refuses the whole reload, and every connection keeps what it has.
    std::vector<transport::TlsContext> renewed;
    for (auto& [name, tls] : tls_) {
        try {
            renewed.push_back(tls->prepare());
        } catch (const std::exception& e) {
            r.errors.push_back(name + ": " + e.what());
        }
    }
    if (!r.errors.empty()) return r;
    for (std::size_t i = 0; i < tls_.size(); ++i) {
        tls_[i].second->install(std::move(renewed[i]));
        spdlog::info("reload: {} TLS from now on: {}", tls_[i].first, tls_[i].second->summary());
    }
    r.ok = true;
    r.kept = config::reload_diff(*running, *parsed.config);
    // Settings that need a restart keep their running values.
    auto next = std::make_shared<config::Config>(*parsed.config);
    next->listens = running->listens;
    next->admin_socket = running->admin_socket;
    next->journal = running->journal;
    next->node.id = running->node.id;
    next->node.threads = running->node.threads;
    next->limits.max_chat_postings = running->limits.max_chat_postings;  // the journal's too
    next->log.target = running->log.target;
    // Inbound accounts of a CMS may change live; its outbound link keeps running as it is.
    for (auto& m : next->cms)
        for (auto& r : running->cms)
            if (r.id == m.id) {
                m.url = r.url;
                m.user = r.user;
                m.password = r.password;
                m.connections = r.connections;
                m.max_response_bytes = r.max_response_bytes;
                m.probe_interval = r.probe_interval;
                m.probe_timeout = r.probe_timeout;
                m.request_timeout = r.request_timeout;
            }
    // A resume key stands in for the password it was issued under: a changed or removed
    // password ends it (in memory at once, in the journal through the hub).
    std::vector<std::string> changed_passwords;
    for (auto& a : running->agents) {
        auto* now_a = next->find_agent(a.id);
        if (!now_a || now_a->password_hash != a.password_hash) {
            resume_keys_.forget(a.id);
            changed_passwords.push_back(a.id);
        }
    }
    if (!changed_passwords.empty())
        on_core_state([changed_passwords](CoreState& core) {
            for (auto& agent : changed_passwords)
                core.hub.forget_resume_key(agent);
        });
    apply_config(*next);
    {
        std::lock_guard lock(config_mutex_);
        config_ = std::move(next);
    }
    spdlog::info("config reloaded from {}", running->source);
    for (auto& k : r.kept)
        spdlog::warn("reload: {} changed but needs a restart; the running value stays", k);
    return r;
}

void Broker::apply_config(const config::Config& c) {
    set_log_level(c.log.level);
    cms_.set_reply_limits(c.limits);
    auto limits = registry_limits(c);
    auto desktop = hub_limits(c);
    // Profiles changed by a reload apply from each agent's next contact; they act on no one.
    std::vector<std::pair<std::string, heartbeat::Profile>> profiles;
    for (auto& a : c.agents)
        profiles.emplace_back(a.id, c.profile_of(a));
    net::post(core_, [this, limits, desktop, profiles = std::move(profiles)] {
        registry_.set_limits(limits);
        hub_.set_limits(desktop);
        for (auto& [agent, profile] : profiles)
            monitor_.set_profile(agent, profile);
    });
}

void Broker::schedule_sweep() {
    sweep_timer_.expires_after(kSweepInterval);
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_.load()) return;
        net::post(core_, [this] {
            hub_.sweep(std::chrono::steady_clock::now());
            orphan_untouched();
            flush_hub(true);
        });
        schedule_sweep();
    });
}

Broker::DesktopStats Broker::desktop_stats() const {
    return DesktopStats{hub_.sessions(),     hub_.connected(),         hub_.queued(),
                        hub_.counters(),     monitor_.size(),          monitor_.suspects(),
                        monitor_.counters(), registry_.orphan_count(), hub_backlog_.size()};
}

void Broker::system_changed(const std::string& system, bool available) {
    if (!available) cms_outages_.fetch_add(1);
    net::post(core_, [this, system, available] {
        hub_.route_system_state(system, available, std::chrono::steady_clock::now());
        audit(available ? "cmsAvailable" : "cmsUnavailable", {}, system, {},
              available ? "answered a probe" : "no answer for longer than probeTimeout", "{}");
        // Its orphans cannot be checked while it is away, and are checked again when it is back.
        if (!available) orphans_unknown(system);
        flush_hub();
    });
    if (!available) return;
    if (!stopping_.load()) reconcile(system, "available");
    // Agents configured with autoLogon are logged on whenever their system comes (back) up.
    for (auto& a : config()->agents) {
        if (!a.auto_logon || a.cms != system) continue;
        protocol::CmsRequest r;
        r.op = protocol::CmsOp::logon;
        r.user_id = a.id;
        r.channels = {"phone", "chat", "email"};
        cms_.request(system, std::move(r), [this, agent = a.id, system](cms::CmsResult result) {
            if (auto* f = std::get_if<protocol::CmsFault>(&result)) {
                spdlog::warn("autoLogon of {} at {} failed: {}: {}", agent, system, f->code,
                             f->message);
                return;
            }
            spdlog::info("autoLogon: {} logged on at {}", agent, system);
            on_core_state([agent, system](CoreState& core) {
                if (!core.hub.system_of(agent).empty()) return;
                core.hub.set_system(agent, system);
                core.monitor.set_system(agent, system);
            });
        });
    }
}

void Broker::schedule_prune() {
    prune_timer_.expires_after(kPruneInterval);
    prune_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_.load()) return;
        auto retention = config()->limits.ended_item_retention;
        net::post(core_, [this, retention] {
            auto t = now();
            registry_.prune(t);
            journal_->prune(t - retention, hub_.oldest_held_event());
        });
        schedule_prune();
    });
}

void Broker::schedule_watchdog(std::chrono::microseconds interval) {
    watchdog_timer_.expires_after(interval);
    watchdog_timer_.async_wait([this, interval](const boost::system::error_code& ec) {
        if (ec) return;
        // The ping goes through the core: a wedged core stops the pings and systemd restarts us.
        // So does a journal that is lost or has failed for longer than unhealthyAfter.
        net::post(core_, [this] {
            auto why = unhealthy();
            if (!why) {
                watchdog_starved_ = false;
                sd_notify(0, "WATCHDOG=1");
            } else if (!watchdog_starved_) {
                watchdog_starved_ = true;
                spdlog::critical("not feeding the systemd watchdog: {}", *why);
            }
        });
        schedule_watchdog(interval);
    });
}

void Broker::shutdown(const std::string& why) {
    if (stopping_.exchange(true)) return;
    spdlog::info("stopping ({}): draining connections and committing the journal", why);
    sd_notify(0, "STOPPING=1");
    prune_timer_.cancel();
    watchdog_timer_.cancel();
    sweep_timer_.cancel();
    net::post(core_, [this] {
        heartbeat_timer_.cancel();
        contacts_timer_.cancel();
    });
    if (desktop_) desktop_->stop();
    cms_.stop();
    if (http_) http_->drain();
    // The drain starts on the core once the byes are queued and the hub's records submitted, so
    // that its first look cannot find everything idle before they exist.
    net::post(core_, [this] {
        accepting_ = false;
        hub_.close_all(channels::ByeReason::shutdown);
        flush_hub(true);
        wait_for_drain(std::chrono::steady_clock::now() + kDrainTimeout);
    });
}

std::optional<std::string> Broker::unhealthy() const {
    auto h = journal_->health();
    using State = recovery::JournalHealth::State;
    if (h.state == State::lost) return "journal lost: " + h.reason;
    auto limit = config()->journal.unhealthy_after;
    if (h.state == State::retrying && std::chrono::steady_clock::now() - h.since >= limit)
        return "journal failing for longer than " + config::format_duration(limit) + ": " +
               h.reason;
    return std::nullopt;
}

std::string Broker::not_ready_reason() const {
    if (stopping_.load()) return "stopping";
    if (!ready_.load()) return "starting";
    auto h = journal_->health();
    if (h.state != recovery::JournalHealth::State::ok)
        return "journal " + std::string(recovery::to_string(h.state)) + ": " + h.reason;
    return {};
}

void Broker::wait_for_drain(std::chrono::steady_clock::time_point deadline) {
    bool idle = (!http_ || http_->connections() == 0) && inflight_.load() == 0 &&
                desktop_connections() == 0;
    if (idle || std::chrono::steady_clock::now() >= deadline) {
        if (!idle)
            spdlog::warn("stopping with {} connection(s) and {} event(s) still in flight",
                         http_->connections(), inflight_.load());
        // Last, on the core: what the closed sessions recorded goes to the journal, which then
        // commits everything queued before its thread ends.
        net::post(core_, [this] {
            flush_hub(true);
            submit_hub_backlog(true);
            journal_->stop();
            signals_->set.cancel();
            spdlog::info("stopped");
            ioc_.stop();
        });
        return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait(
        [this, deadline](const boost::system::error_code&) { wait_for_drain(deadline); });
}

}  // namespace cb::daemon
