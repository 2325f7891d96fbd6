// The broker: wiring and lifecycle of commbrokerd.
//
// Ownership (docs/concurrency.md):
// - the core strand owns the Registry (with the orphans), the DesktopHub, the heartbeat Monitor
//   (with its one timer), the reconciliations and the `accepting_` flag: every read or change of
//   them runs there (submit(), on_core(), on_core_state(), contact(), reconcile(), recover());
// - the journal has its own thread (recovery/journal.hpp, the SQLite one in sqlite_journal.hpp);
// - HTTP sessions run on their own strands and parse/serialize there;
// - the config is an immutable snapshot swapped as a whole on reload (any thread may read it).
#pragma once

#include "channels/desktop_hub.hpp"
#include "channels/registry.hpp"
#include "cms/links.hpp"
#include "config/config.hpp"
#include "daemon/auth.hpp"
#include "daemon/desktop_server.hpp"
#include "daemon/metrics.hpp"
#include "heartbeat/cms_probes.hpp"
#include "heartbeat/monitor.hpp"
#include "recovery/journal.hpp"
#include "recovery/reconcile.hpp"
#include "transport/http_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cb::daemon {

namespace http = boost::beast::http;

namespace net = boost::asio;

struct BoundListener {
    config::Service service;
    std::string address;
    std::uint16_t port;
    bool tls = false;
};

/// What became of an event handed to submit().
struct SubmitResult {
    std::variant<channels::Outcome, channels::Rejection> result = channels::Outcome::accepted;
    bool unavailable = false;  ///< not applied: journal failed or shutting down
};

struct ReloadResult {
    bool ok = false;
    std::vector<std::string> errors;  ///< when !ok: every error of the new file
    std::vector<std::string> kept;    ///< settings that changed but need a restart
};

class Broker {
  public:
    /// `start_empty`: create an empty journal even where one was kept before (--start-empty).
    explicit Broker(std::shared_ptr<const config::Config> config, bool start_empty = false);
    ~Broker();

    /// Opens the journal, restores the registry and starts the listeners. Throws on failure.
    void start();
    /// Runs the I/O threads until shutdown completes; returns the process exit status.
    int run();
    /// Begins a graceful stop: no new work, finish in-flight requests, commit, exit.
    void shutdown(const std::string& why);
    /// Re-reads the config file. Thread-safe; concurrent reloads run one after the other.
    ReloadResult reload();

    /// Applies an inbound event on the core and calls `done` once it is durable (or refused, or
    /// unavailable), from the core or the journal thread. `received` is when its request
    /// arrived; desktops get the change as soon as it is applied, before it is durable.
    void submit(channels::Event event, std::chrono::steady_clock::time_point received,
                std::function<void(SubmitResult)> done);

    /// Runs `f(registry)` on the core strand.
    template <typename F>
    void on_core(F&& f) {
        boost::asio::post(core_, [this, f = std::forward<F>(f)]() mutable { f(registry_); });
    }

    /// What the core strand owns, for on_core_state().
    struct CoreState {
        channels::Registry& registry;
        channels::DesktopHub& hub;
        heartbeat::Monitor& monitor;
        const recovery::ReconcileBook& reconciles;
        /// What the monitor returned to `f`: carried out once `f` is done.
        std::vector<heartbeat::Action>& actions;
    };
    /// Runs `f(state)` on the core strand, then carries out the heartbeat actions `f` collected,
    /// re-arms the heartbeat timer and journals what the hub recorded.
    template <typename F>
    void on_core_state(F&& f) {
        boost::asio::post(core_, [this, f = std::forward<F>(f)]() mutable {
            std::vector<heartbeat::Action> actions;
            CoreState state{registry_, hub_, monitor_, reconciles_, actions};
            f(state);
            after_core_state(std::move(actions));
        });
    }
    /// The agent's desktop was heard from (any thread): the heartbeat monitor's contact. Queued
    /// with its own time; the core applies the queue kContactBatch after the first contact of a
    /// batch, and at once before it judges a deadline or an offer (apply_contacts()).
    void contact(const std::string& agent, heartbeat::Contact c);
    /// How long contacts gather before the core applies them: one wake-up of the core for all
    /// the heartbeats of that time, not one each. A contact's time is when it came, so the
    /// batch delays only the clearing of a suspicion, never a deadline.
    static constexpr std::chrono::milliseconds kContactBatch{100};
    /// The heartbeat timer's resolution: deadlines (and CMS probes) are judged at most this
    /// late, all that fall in one tick at one wake-up of the core.
    static constexpr std::chrono::milliseconds kHeartbeatTick{100};
    /// The heartbeat profile of an agent under the running config.
    heartbeat::Profile profile_of(const std::string& agent) const;

    // ---- recovery (daemon/broker_recovery.cpp) ----

    /// Core: the agent's desktop is back: its orphans are re-adopted (audited, and supervisors
    /// get itemRecovered). After a hello (`logged_on` false) only those at systems where the
    /// agent is not logged off, so that a reload does not undo an operator's or the heartbeat's
    /// logoff; after the desktop logged on again at the CMS (`logged_on` true), all of them.
    void agent_back(const std::string& agent, bool logged_on = false);
    /// Asks the CMSs (all if `system` is empty) for their items and settles the registry and
    /// the orphans with the answers (recovery/reconcile.hpp). `done` runs on the core once every
    /// system asked has answered or failed. Any thread.
    void reconcile(const std::string& system, std::string trigger, std::function<void()> done = {});

    /// An operator's recovery action (PROTOCOL.md section 4).
    struct RecoveryAction {
        enum class Kind { close, assign, release, logoff };
        Kind kind = Kind::close;
        std::string system, id;  ///< the orphan (close, assign, release)
        std::string agent;       ///< assign: who gets it; logoff: who is logged off
        std::string reason;
        bool dry_run = false;
        std::string actor;  ///< who asked, for the audit log
    };
    struct RecoveryOutcome {
        int status = 200;        ///< HTTP status: 200, 404, 409, 503
        std::string error_code;  ///< set when status is not 200
        std::string message;     ///< what was done, would be done, or why not
        std::optional<channels::Item> before, after;
        std::optional<channels::OrphanRecord> orphan;
        std::string cms_request;               ///< the CMS operation sent (or that would be)
        std::vector<std::string> systems;      ///< logoff: where the agent is logged off
        std::vector<channels::Item> orphaned;  ///< logoff: the items it orphans
    };
    /// Carries out (or with dry_run only checks) an operator's action; `done` runs exactly once,
    /// on the core or an I/O thread. Any thread.
    void recover(RecoveryAction action, std::function<void(RecoveryOutcome)> done);

    cms::CmsLinks& cms() { return cms_; }
    LatencyRecorder& desktop_latency() { return desktop_latency_; }
    /// Desktop connections open (any thread).
    std::size_t desktop_connections() const { return desktop_ ? desktop_->connections() : 0; }
    /// Connections open on all TCP listeners together (TLS handshakes in progress included):
    /// what limits maxOpenConnections bounds.
    std::size_t open_connections() const;
    /// Core only: the hub's and the monitor's sizes and counters, counted when asked (a pass
    /// over every session), for status and /metrics, which run on the core.
    struct DesktopStats {
        std::size_t sessions = 0;
        std::size_t connected = 0;
        std::size_t queued = 0;
        channels::HubCounters counters;
        std::size_t watched = 0;   ///< agents the heartbeat monitor watches
        std::size_t suspects = 0;  ///< of which suspect now
        heartbeat::Counters heartbeat;
        std::size_t orphans = 0;
        std::size_t journal_backlog = 0;  ///< hub records not yet handed to the journal
    };
    /// Core only.
    DesktopStats desktop_stats() const;

    std::shared_ptr<const config::Config> config() const;
    net::io_context& io() { return ioc_; }
    CredentialCache& credentials() { return credentials_; }
    ResumeKeys& resume_keys() { return resume_keys_; }
    /// The logon checks of the three doors: a guard and a password verifier each (PBKDF2 runs
    /// there, off the I/O threads), the credential cache shared.
    LogonDoor& ici_door() { return ici_door_; }
    LogonDoor& desktop_door() { return desktop_door_; }
    LogonDoor& admin_door() { return admin_door_; }
    const LogonDoor& ici_door() const { return ici_door_; }
    const LogonDoor& desktop_door() const { return desktop_door_; }
    const LogonDoor& admin_door() const { return admin_door_; }
    /// The desktop listeners' refusals (any thread).
    DesktopServer::Counters desktop_counters() const {
        return desktop_ ? desktop_->counters() : DesktopServer::Counters{};
    }
    SoapMetrics& soap_metrics() { return soap_metrics_; }
    const recovery::Journal& journal() const { return *journal_; }
    const std::vector<BoundListener>& listeners() const { return listeners_; }
    const transport::HttpServer& http() const { return *http_; }
    bool ready() const { return ready_.load() && journal_->healthy() && !stopping_.load(); }
    /// Why the broker is not ready (empty when it is): for /readyz.
    std::string not_ready_reason() const;
    /// Why the broker should be restarted, if it should: the journal is lost, or has failed for
    /// longer than unhealthyAfter. /healthz fails and the watchdog is not fed while it is set.
    std::optional<std::string> unhealthy() const;
    bool stopping() const { return stopping_.load(); }
    std::chrono::seconds uptime() const;
    /// Times a CMS went from available to unavailable since the start.
    std::uint64_t cms_outages() const { return cms_outages_.load(); }
    std::string public_url() const;
    std::chrono::system_clock::time_point now() const { return std::chrono::system_clock::now(); }

  private:
    void apply_config(const config::Config& c);
    void schedule_prune();
    void schedule_watchdog(std::chrono::microseconds interval);
    void wait_for_drain(std::chrono::steady_clock::time_point deadline);
    void handle_signals();
    /// Core: journals what the hub recorded (replay records only `with_replay`: the sweep
    /// timer). Nobody waits for these records, and they come in bursts (a session row for each
    /// of 10,000 hellos, a replay row for each session an event for every agent reached): they
    /// go to the journal in their order, in chunks of kHubChunk changes (or a quarter of what
    /// waits, at most 4 * kHubChunk), the next chunk once the last is committed, so that a
    /// CMS's event waits behind one chunk, not behind the burst.
    void flush_hub(bool with_replay = false);
    /// Core: the next chunk of `hub_backlog_` to the journal, unless one is in flight; `all`:
    /// everything left, at once (the last thing before the journal stops).
    void submit_hub_backlog(bool all = false);
    static constexpr std::size_t kHubChunk = 64;
    void schedule_sweep();
    void system_changed(const std::string& system, bool available);
    void after_core_state(std::vector<heartbeat::Action> actions);
    /// Core: hands the contacts queued so far to the monitor, appending what they cause (a
    /// suspicion cleared) to `actions`.
    void apply_contacts(std::vector<heartbeat::Action>& actions);
    /// Core: carries out what the heartbeat monitor decided.
    void run_heartbeat(std::vector<heartbeat::Action> actions);
    /// Core: sets the heartbeat timer to the next deadline of the monitor or the CMS probes, if
    /// that is earlier than the one it is set to.
    void arm_heartbeat();
    /// Core: sends the probes that are due and reports the systems that stopped answering.
    void run_probes(std::vector<heartbeat::ProbeAction> actions);
    /// Core: gives every restored desktop session, and every agent with live items, a fresh
    /// window from readiness: kRestoredSlice of them per turn of the core, so that a CMS's
    /// events wait behind one slice, not behind all of them.
    void watch_restored_sessions();
    struct RestoredWatch;
    void watch_restored(std::shared_ptr<RestoredWatch> w);
    static constexpr std::size_t kRestoredSlice = 500;
    /// Core: sets the agent's work mode at `system` (the heartbeat's restore), not waited for.
    void set_work_mode(const std::string& agent, const std::string& system,
                       const std::string& mode);
    /// Core: journals an audit record (`actor` "broker" unless given).
    void audit(std::string action, const std::string& agent, const std::string& system,
               const std::string& item, std::string reason, std::string details,
               std::string actor = "broker");
    /// Core: what an applied batch means beyond the registry: an offer to a silent onContact
    /// agent, a subscriptionEnded, an item of an agent the broker does not know or of one who
    /// logged off (orphans, whose changes are added to `changes`).
    void inspect(std::vector<channels::Change>& changes);
    /// Core: makes the agent's live items orphans with `reason` (all of its items, or those at
    /// `system` if given; never the item `skip`): journals them, or adds them to `batch`, tells
    /// supervisors, audits each. Their keys.
    std::vector<std::string> orphan_items(const std::string& agent, const std::string& system,
                                          const std::string& reason, const std::string& actor,
                                          std::vector<channels::Change>* batch = nullptr,
                                          const std::string& skip = {});
    /// Core: makes each of `items` an orphan with `reason` (those that are not yet), as
    /// orphan_items() does; `whose` says whose they were in the log line.
    std::vector<std::string> orphan_each(const std::vector<channels::Item>& items,
                                         const std::string& reason, const std::string& actor,
                                         const std::string& whose,
                                         std::vector<channels::Change>* batch = nullptr);
    /// Core, from the sweep: live items nobody touched for `recovery orphanAfter` become
    /// orphans (`untouched`).
    void orphan_untouched();
    /// Core: the changes made here (reconciliation, operators): routed to desktops, inspected,
    /// journaled. `done(ok)` runs once they are durable.
    void commit_local(std::vector<channels::Change> changes, std::function<void(bool)> done = {});
    /// Core: tells supervisors of `system` about an orphan (itemOrphaned, itemRecovered).
    void announce(const std::string& event, const channels::Item& item,
                  const channels::OrphanRecord& orphan, const std::string& how = {});
    /// Core: settles one system with its getItems answer (or failure). The answer's items are
    /// applied kReconcileSlice at a time, each slice committed on its own, and the next slice
    /// is taken once the journal has committed the last: so a CMS's events wait behind one
    /// slice, on the core and in the journal, not behind the whole reconciliation.
    void finish_reconcile(const std::string& system,
                          std::unordered_map<std::string, std::uint64_t> held,
                          cms::CmsResult result);
    struct ReconcileRun;
    void reconcile_slice(std::shared_ptr<ReconcileRun> run);
    /// Core: the reconciliation of `system` has ended: its waiters are told, another round runs
    /// if one was asked for meanwhile.
    void end_reconcile(const std::string& system);
    static constexpr std::size_t kReconcileSlice = 100;
    /// Core: the orphans of `system` become unknown (its CMS cannot be asked).
    void orphans_unknown(const std::string& system);

    // The desktop connections' io_contexts (DesktopServer::contexts()), declared before ioc_ so
    // that they are destroyed after it and after everything that may hold a desktop session
    // (handlers queued in ioc_, the hub, the CMS links): a session's sockets and timers must
    // not outlive the io_context they belong to.
    std::shared_ptr<void> desktop_contexts_;
    net::io_context ioc_;
    net::strand<net::io_context::executor_type> core_;
    mutable std::mutex config_mutex_;
    std::mutex reload_mutex_;  // held for the whole of a reload
    std::shared_ptr<const config::Config> config_;
    channels::Registry registry_;
    channels::DesktopHub hub_;
    cms::CmsLinks cms_;
    // The TLS of every listener and CMS link, by name for the log: their files are read again
    // on every reload, all or none.
    std::vector<std::pair<std::string, std::shared_ptr<transport::TlsCredentials>>> tls_;
    std::unique_ptr<DesktopServer> desktop_;
    LatencyRecorder desktop_latency_;
    net::steady_timer sweep_timer_;
    heartbeat::Monitor monitor_;  // core only
    // Contacts on their way to the monitor (contact()): the first of a batch sets
    // contacts_timer_ (core only), whose completion applies all that came meanwhile.
    std::mutex contacts_mutex_;
    std::vector<std::pair<std::string, heartbeat::Contact>> contacts_;
    bool contacts_due_ = false;  // under contacts_mutex_: the batch's timer is set or on its way
    net::steady_timer contacts_timer_;
    heartbeat::CmsProbes probes_;        // core only: on the heartbeat timer too
    net::steady_timer heartbeat_timer_;  // core only
    std::deque<channels::Change>
        hub_backlog_;                   // core only: flush_hub()'s records not yet submitted
    bool hub_chunk_in_flight_ = false;  // core only: a chunk of them is in the journal
    std::optional<heartbeat::Time> heartbeat_armed_;  // core only: when the timer is set to
    recovery::ReconcileBook reconciles_;              // core only
    // core only: reconciliations asked for while one of the same system was running, and who
    // waits for each system's to finish
    std::map<std::string, bool> reconcile_again_;
    std::map<std::string, std::vector<std::function<void()>>> reconcile_waiters_;
    // core only: agents an operator is logging off (→ who): a loggedOff the CMS reports
    // meanwhile orphans their items as the operator's logoff, not as the agent's own
    std::map<std::string, std::string> operator_logoffs_;
    // core only: agents whose setWorkMode notReady is on its way, with the mode to restore
    // once it is answered (if the agent was heard from meanwhile)
    std::unordered_map<std::string, std::optional<std::string>> mode_in_flight_;
    std::atomic<std::uint64_t> cms_outages_{0};
    std::unique_ptr<recovery::Journal> journal_;
    std::shared_ptr<transport::ConnectionBudget>
        all_connections_;  // of every TCP listener together
    std::unique_ptr<transport::HttpServer> http_;
    CredentialCache credentials_;
    ResumeKeys resume_keys_;
    LogonDoor ici_door_;  // these use credentials_; each has its own password verifier
    LogonDoor desktop_door_;
    LogonDoor admin_door_;
    SoapMetrics soap_metrics_;
    std::vector<BoundListener> listeners_;
    net::steady_timer prune_timer_;
    net::steady_timer watchdog_timer_;
    net::steady_timer drain_timer_;
    std::unique_ptr<struct SignalState> signals_;
    std::atomic<bool> ready_{false};
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> inflight_{0};
    bool accepting_ = true;          // core only
    bool watchdog_starved_ = false;  // core only
    bool start_empty_ = false;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_untouched_check_{};  // core only
};

}  // namespace cb::daemon
