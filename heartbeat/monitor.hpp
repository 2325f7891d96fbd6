// The heartbeat monitor (PROTOCOL.md sections 3 and 5, DESIGN.md section 6): for every agent with
// a desktop session or a logon, when its desktop was last heard from, and what follows from its
// silence under its heartbeat profile.
//
//   watchdog:  active --(silent > lag)--> suspect --(silent > lag + grace)--> lost
//              any contact while suspect clears it (and restores the work mode the broker
//              changed); lost is final: the agent is logged off and forgotten.
//   onContact: no logoff by timer. When an inbound item is offered to an agent silent for longer
//              than lag, the offer is rejected and the agent logged off. A detached session silent
//              for lag + grace is only expired (the agent stays known while it is logged on).
//
// A pure state machine: time is passed in, nothing here does I/O or knows the registry, the hub
// or the CMS. It returns Actions; the broker carries them out. One deadline heap serves every
// agent: at most one entry per agent is queued at a time, and a contact only moves a number (the
// entry, when it comes due, is put back at the agent's new deadline), so a heartbeat costs a
// hash lookup, not a heap operation.
//
// Ownership: one Monitor belongs to the core strand (docs/concurrency.md); no locks.
#pragma once

#include "channels/item.hpp"
#include "config/config.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cb::heartbeat {

using Time = std::chrono::steady_clock::time_point;
using Profile = config::HeartbeatProfile;

enum class Liveness { active, suspect, lost };
std::string_view to_string(Liveness l);

/// What was heard from a desktop, or why a window was opened without it.
enum class ContactKind {
    hello,      ///< a hello (a logon to the broker or a resume)
    heartbeat,  ///< a heartbeat frame
    ping,       ///< a WebSocket ping
    pong,       ///< a WebSocket pong
    request,    ///< any other desktop request
    restart,    ///< no contact: the window every agent gets when the broker becomes ready
};
std::string_view to_string(ContactKind k);

struct Contact {
    Time at{};
    ContactKind kind = ContactKind::hello;
    std::string peer;  ///< the desktop's address ("" for restart)
};

enum class ActionKind {
    suspect,   ///< silent over lag (watchdog): tell supervisors; set notReady if set_not_ready
    cleared,   ///< heard from while suspect: restore `restore_mode` if not empty
    lost,      ///< silent over lag + grace (watchdog): log off at `system` (if any), end the
               ///< session with bye heartbeatLost, orphan the agent's live items
    expired,   ///< onContact: a detached session silent over lag + grace: end it, no logoff
    rejected,  ///< onContact: `item` offered to a silent agent: reject it, log the agent off
};
std::string_view to_string(ActionKind k);

struct Action {
    ActionKind kind = ActionKind::suspect;
    std::string agent;
    std::string system;   ///< where the agent is logged on ("" if nowhere)
    std::string profile;  ///< the profile that decided
    Contact last_contact;
    Time at{};                   ///< when the action came due (or the offer arrived)
    bool set_not_ready = false;  ///< suspect: the profile's suspectAction is notReady
    std::string restore_mode;    ///< cleared: the work mode to set again ("" for none)
    std::string item;            ///< rejected: the item offered
    channels::Channel channel = channels::Channel::phone;  ///< rejected: its channel
};

/// What the monitor knows of one agent, for status and the admin API.
struct AgentView {
    std::string agent;
    std::string system;
    std::string profile;
    config::HeartbeatMode mode = config::HeartbeatMode::watchdog;
    Liveness state = Liveness::active;
    Contact last_contact;
    bool attached = false;
};

struct Counters {
    std::uint64_t suspects = 0;
    std::uint64_t cleared = 0;
    std::uint64_t lost = 0;
    std::uint64_t expired = 0;
    std::uint64_t rejected = 0;
};

class Monitor {
  public:
    /// Starts (or renews) the watch of an agent: at its hello, or at start-up for every desktop
    /// session the journal kept (then `contact.kind` is restart: a fresh window). A renewal
    /// keeps the suspicion and the work mode to restore; the contact clears them as any would.
    std::vector<Action> watch(const std::string& agent, const std::string& system,
                              const Profile& profile, Contact contact);
    /// The agent's desktop was heard from. Returns `cleared` if it was suspect.
    std::vector<Action> contact(const std::string& agent, Contact contact);
    /// The agent's desktop socket is open (true) or gone (false).
    void set_attached(const std::string& agent, bool attached);
    /// The agent logged on at `system` ("" when it logged off).
    void set_system(const std::string& agent, const std::string& system);
    /// The profile to use from the agent's next contact on (a reload). Never acts by itself.
    void set_profile(const std::string& agent, const Profile& profile);
    /// The broker set the agent notReady for a suspect action; `mode` is what it was before.
    void note_replaced_mode(const std::string& agent, std::string mode);
    /// Stops watching (the session ended and the agent is not logged on, or it was removed).
    void forget(const std::string& agent);

    /// Every action due at `now`, in deadline order.
    std::vector<Action> advance(Time now);
    /// An inbound item is offered to `agent`: in onContact mode, a `rejected` action if the agent
    /// has been silent for longer than its lag.
    std::optional<Action> offered(const std::string& agent, const std::string& item,
                                  channels::Channel channel, Time now);
    /// When advance() next has something to do.
    std::optional<Time> next_deadline();

    std::optional<AgentView> view(const std::string& agent) const;
    bool watching(const std::string& agent) const { return agents_.count(agent) > 0; }
    std::vector<AgentView> views() const;
    std::size_t size() const { return agents_.size(); }
    std::size_t suspects() const;
    const Counters& counters() const { return counters_; }

  private:
    struct Record {
        std::string system;
        Profile profile;
        std::optional<Profile> next_profile;
        Contact last;
        Liveness state = Liveness::active;
        bool attached = false;
        bool session = true;         // the hub holds a session for the agent
        std::string replaced_mode;   // the work mode before the broker set notReady
        std::uint64_t gen = 0;       // tells this record's heap entries from a forgotten one's
        std::optional<Time> queued;  // the time of this record's heap entry, if one is queued
    };
    struct Entry {
        Time at;
        std::uint64_t gen;
        std::string agent;
        bool operator>(const Entry& o) const { return at > o.at; }
    };

    /// When the record's next transition is due; nullopt if none can come from silence.
    static std::optional<Time> deadline(const Record& r);
    void schedule(const std::string& agent, Record& r);
    Action make(ActionKind kind, const std::string& agent, const Record& r, Time at) const;

    std::unordered_map<std::string, Record> agents_;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
    std::uint64_t next_gen_ = 1;
    Counters counters_;
};

}  // namespace cb::heartbeat
