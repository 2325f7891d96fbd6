// The availability of every CMS (PROTOCOL.md section 5: probeInterval, probeTimeout), on the
// heartbeat monitor's clock: a probe (getSystemInfo) is due every probeInterval, one at a time;
// a system that has not answered for probeTimeout (since its last answer, or since it was first
// watched) is unavailable, however many probes are still on their way; its next answer makes it
// available again.
//
// A pure state machine like the Monitor: time is passed in, nothing here sends a request. The
// broker runs advance() from the same timer as the Monitor's (the earlier of the two
// next_deadline()s), sends the probes it returns and reports each outcome with answered().
//
// Ownership: belongs to the core strand, like the Monitor; no locks.
#pragma once

#include "heartbeat/monitor.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cb::heartbeat {

enum class ProbeActionKind {
    probe,        ///< send getSystemInfo to `system` and report the outcome with answered()
    unavailable,  ///< `system` has not answered for probeTimeout
};

struct ProbeAction {
    ProbeActionKind kind = ProbeActionKind::probe;
    std::string system;
    Time at{};            ///< when it came due
    Time silent_since{};  ///< unavailable: the last answer (or when the watch began)
};

class CmsProbes {
  public:
    using Duration = std::chrono::steady_clock::duration;

    /// Starts watching `system`: the first probe is due at `now`, and its silence counts from
    /// `now`. Watching a system again restarts both.
    void watch(const std::string& system, Duration interval, Duration timeout, Time now);
    void forget(const std::string& system);

    /// Every action due at `now`: probes to send (each marked in flight until answered()), and
    /// systems silent for their timeout that were not unavailable yet.
    std::vector<ProbeAction> advance(Time now);
    /// The probe of `system` came back at `now`, answered (`ok`) or failed. The next probe is due
    /// an interval later. True if the system is available from now on and was not before (never
    /// answered, or unavailable).
    bool answered(const std::string& system, bool ok, Time now);
    /// When advance() next has something to do.
    std::optional<Time> next_deadline() const;

    /// nullopt until the first answer or timeout.
    std::optional<bool> available(const std::string& system) const;

  private:
    struct System {
        Duration interval{};
        Duration timeout{};
        std::optional<bool> available;
        bool in_flight = false;
        Time next_probe{};
        Time silent_since{};
    };
    std::map<std::string, System> systems_;
};

}  // namespace cb::heartbeat
