// The broker: wiring and lifecycle of commbrokerd.
//
// Ownership (docs/concurrency.md):
// - the core strand owns the Registry, the DesktopHub, the heartbeat Monitor (with its one timer),
//   the orphan list and the `accepting_` flag: every read or change of them runs there
//   (submit(), on_core(), on_core_state(), contact());
// - the journal has its own thread (recovery/journal.hpp);
// - HTTP sessions run on their own strands and parse/serialize there;
// - the config is an immutable snapshot swapped as a whole on reload (any thread may read it).
#pragma once

#include "channels/desktop_hub.hpp"
#include "channels/registry.hpp"
#include "config/config.hpp"
#include "daemon/auth.hpp"
#include "daemon/cms_links.hpp"
#include "daemon/desktop_server.hpp"
#include "daemon/http_server.hpp"
#include "daemon/metrics.hpp"
#include "heartbeat/cms_probes.hpp"
#include "heartbeat/monitor.hpp"
#include "recovery/journal.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cb::daemon {

struct BoundListener {
    config::Service service;
    std::string address;
    std::uint16_t port;
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
        /// What the monitor returned to `f`: carried out once `f` is done.
        std::vector<heartbeat::Action>& actions;
    };
    /// Runs `f(state)` on the core strand, then carries out the heartbeat actions `f` collected,
    /// re-arms the heartbeat timer and journals what the hub recorded.
    template <typename F>
    void on_core_state(F&& f) {
        boost::asio::post(core_, [this, f = std::forward<F>(f)]() mutable {
            std::vector<heartbeat::Action> actions;
            CoreState state{registry_, hub_, monitor_, actions};
            f(state);
            after_core_state(std::move(actions));
        });
    }
    /// The agent's desktop was heard from (any thread): the heartbeat monitor's contact.
    void contact(const std::string& agent, heartbeat::Contact c);
    /// The heartbeat profile of an agent under the running config.
    heartbeat::Profile profile_of(const std::string& agent) const;

    /// An item whose agent was lost while it was live (DESIGN.md section 7), until it ends.
    struct Orphan {
        std::string reason;
        std::string agent;
        std::chrono::system_clock::time_point at;
    };
    /// The orphans whose items are still live, with their items (core only).
    std::vector<std::pair<channels::Item, Orphan>> orphans() const;

    CmsLinks& cms() { return cms_; }
    LatencyRecorder& desktop_latency() { return desktop_latency_; }
    /// Desktop connections open (any thread).
    std::size_t desktop_connections() const { return desktop_ ? desktop_->connections() : 0; }
    /// The hub's counters and sizes, copied on the core: for status and metrics.
    struct DesktopStats {
        std::size_t sessions = 0;
        std::size_t connected = 0;
        std::size_t queued = 0;
        channels::HubCounters counters;
        std::size_t watched = 0;   ///< agents the heartbeat monitor watches
        std::size_t suspects = 0;  ///< of which suspect now
        heartbeat::Counters heartbeat;
        std::size_t orphans = 0;
    };
    DesktopStats desktop_stats() const;

    std::shared_ptr<const config::Config> config() const;
    net::io_context& io() { return ioc_; }
    CredentialCache& credentials() { return credentials_; }
    /// Password checks that need PBKDF2 run here, off the I/O threads.
    PasswordVerifier& passwords() { return passwords_; }
    ResumeKeys& resume_keys() { return resume_keys_; }
    SoapMetrics& soap_metrics() { return soap_metrics_; }
    const recovery::Journal& journal() const { return *journal_; }
    const std::vector<BoundListener>& listeners() const { return listeners_; }
    const HttpServer& http() const { return *http_; }
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
    /// Journals what the hub recorded; replay records only `with_replay` (the sweep timer).
    void flush_hub(bool with_replay = false);
    void schedule_sweep();
    void system_changed(const std::string& system, bool available);
    void after_core_state(std::vector<heartbeat::Action> actions);
    /// Core: carries out what the heartbeat monitor decided.
    void run_heartbeat(std::vector<heartbeat::Action> actions);
    /// Core: sets the heartbeat timer to the next deadline of the monitor or the CMS probes, if
    /// that is earlier than the one it is set to.
    void arm_heartbeat();
    /// Core: sends the probes that are due and reports the systems that stopped answering.
    void run_probes(std::vector<heartbeat::ProbeAction> actions);
    /// Core: gives every restored desktop session a fresh window (at readiness).
    void watch_restored_sessions();
    /// Core: sets the agent's work mode at `system` (the heartbeat's restore), not waited for.
    void set_work_mode(const std::string& agent, const std::string& system,
                       const std::string& mode);
    /// Core: journals an audit record.
    void audit(std::string action, const std::string& agent, const std::string& system,
               const std::string& item, std::string reason, std::string details);
    /// Core: what an applied batch means beyond the registry: an offer to a silent onContact
    /// agent, a subscriptionEnded, an orphan that ended.
    void inspect(const std::vector<channels::Change>& changes);
    /// Core: orphans whose items are still live (the others are forgotten on the way).
    std::size_t live_orphans();

    net::io_context ioc_;
    net::strand<net::io_context::executor_type> core_;
    mutable std::mutex config_mutex_;
    std::mutex reload_mutex_;  // held for the whole of a reload
    std::shared_ptr<const config::Config> config_;
    channels::Registry registry_;
    channels::DesktopHub hub_;
    CmsLinks cms_;
    std::unique_ptr<DesktopServer> desktop_;
    LatencyRecorder desktop_latency_;
    mutable std::mutex desktop_stats_mutex_;
    DesktopStats desktop_stats_;  // refreshed by the sweep, guarded by desktop_stats_mutex_
    net::steady_timer sweep_timer_;
    heartbeat::Monitor monitor_;                      // core only
    heartbeat::CmsProbes probes_;                     // core only: on the heartbeat timer too
    net::steady_timer heartbeat_timer_;               // core only
    std::optional<heartbeat::Time> heartbeat_armed_;  // core only: when the timer is set to
    std::map<std::string, Orphan> orphans_;           // core only: by system + '\x1f' + item ID
    // core only: agents whose setWorkMode notReady is on its way, with the mode to restore
    // once it is answered (if the agent was heard from meanwhile)
    std::unordered_map<std::string, std::optional<std::string>> mode_in_flight_;
    std::atomic<std::uint64_t> cms_outages_{0};
    std::unique_ptr<recovery::Journal> journal_;
    std::unique_ptr<HttpServer> http_;
    CredentialCache credentials_;
    ResumeKeys resume_keys_;
    PasswordVerifier passwords_;  // uses credentials_
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
};

}  // namespace cb::daemon
