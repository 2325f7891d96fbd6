// The desktop hub: the event bus between the registry and agents' desktops (PROTOCOL.md section
// 3, DESIGN.md section 5). It holds one session per agent: its resume token, its sequence
// numbers, its replay buffer (persisted through the journal), the events waiting for its socket,
// and the link to that socket while one is attached.
//
// Flow: as soon as the registry has applied a batch of changes, before the journal commits it,
// route() turns it into desktop events, each rendered
// to JSON once and shared by every session that gets it (the owner, a previous owner, supervisors
// monitoring its scope). A session queues them as pending; pump() hands them to the link a window
// at a time, giving each its `seq` as it leaves (so seq has no gaps), recording it in the replay
// buffer. While a session is over its queue budget, a newer snapshot of an item replaces the
// unsent older one; a session that stays over budget gets `overload`, then `bye tooSlow`.
//
// Ownership: one DesktopHub belongs to the core strand (docs/concurrency.md). No locks, no I/O:
// links are told what to send and never block; what must be persisted is collected and taken
// with take_journal(). Time is passed in.
#pragma once

#include "channels/registry.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cb::channels {

using SteadyTime = std::chrono::steady_clock::time_point;

/// One event as desktops get it: `event` name and `data` (JSON text), shared by every session.
struct DesktopEvent {
    std::uint64_t id = 0;
    std::string name;
    std::string data;
    std::string item_key;   ///< system + item ID for item snapshots (coalescing); "" otherwise
    SteadyTime received{};  ///< when the SOAP request that caused it arrived ({} if unknown)
};
using EventPtr = std::shared_ptr<const DesktopEvent>;

struct ReplayEntry {
    std::uint64_t seq = 0;
    std::uint64_t event_id = 0;
    std::string name;
    std::string data;
};

/// A session as the journal kept it.
struct LoadedSession {
    std::string token;
    std::string agent;
    std::string system;
    std::string scope;
    std::uint64_t seq = 0;
    std::string resume_hash;
    std::vector<ReplayEntry> replay;
};

/// Why the broker ends a desktop connection (`bye` reason).
enum class ByeReason {
    auth_failed,        ///< wrong agent or password
    auth_required,      ///< something other than hello came first
    replaced,           ///< a newer hello for the same agent
    heartbeat_lost,     ///< the desktop fell silent
    shutdown,           ///< the broker is stopping
    too_slow,           ///< the desktop stayed behind its queue budget
    protocol_error,     ///< a frame that is not a JSON object, or a binary frame
    busy,               ///< too many logons waiting for a password check: try again shortly
    too_many_attempts,  ///< failed logons from this address or for this agent: locked a while
};
std::string_view to_string(ByeReason r);

/// The socket side of a session, implemented by the WebSocket session. Called from the core;
/// no call blocks.
class DesktopLink {
  public:
    virtual ~DesktopLink() = default;
    /// Queues event frames (consecutive seqs) behind everything queued before.
    virtual void send_events(std::vector<std::pair<std::uint64_t, EventPtr>> events) = 0;
    /// Queues a frame made elsewhere (welcome, snapshot, result, heartbeat, overload).
    virtual void send_frame(std::string frame) = 0;
    /// Puts a frame ahead of everything queued but not yet being written (overload).
    virtual void send_urgent(std::string frame) = 0;
    /// Queues `bye` with the reason and closes the socket after it (or at once if it is stuck).
    virtual void close(ByeReason reason) = 0;
    /// Frames queued and not yet written. Any thread.
    virtual std::size_t unwritten() const = 0;

    /// Set by the hub while it holds events back for this link: the link tells the core when
    /// it has written what it had.
    std::atomic<bool> hub_waiting{false};
};

struct HubLimits {
    std::size_t queue = 1000;    ///< desktopQueue: frames a session may have waiting
    std::size_t replay = 10000;  ///< replayEvents: events kept for resume per session
    std::size_t window = 64;     ///< frames handed to a link before it has written them
    std::chrono::milliseconds slow_timeout{5000};  ///< over budget this long: bye tooSlow
};

/// What hello got: the caller sends welcome, then the replay, then a snapshot if asked, then
/// calls pump().
struct Attached {
    std::string token;
    bool resumed = false;
    std::uint64_t seq = 0;  ///< the session's last seq (the replay ends with it)
    std::vector<std::pair<std::uint64_t, EventPtr>> replay;
    bool snapshot = false;
    bool resync = false;
    std::shared_ptr<DesktopLink> replaced;  ///< the connection this one replaces
    std::string system;                     ///< where the agent is logged on ("" if not)
};

struct ResumeRequest {
    std::string token;
    std::uint64_t last_seq = 0;
};

/// A session as the heartbeat monitor needs to know it at start-up.
struct SessionInfo {
    std::string agent;
    std::string system;
};

struct HubCounters {
    std::uint64_t events_routed = 0;
    std::uint64_t frames_coalesced = 0;
    std::uint64_t overloads = 0;
    std::uint64_t too_slow = 0;
    std::uint64_t resyncs = 0;
    std::uint64_t resumes = 0;
};

class DesktopHub {
  public:
    using TokenSource = std::function<std::string()>;

    DesktopHub(HubLimits limits, TokenSource tokens);
    void set_limits(HubLimits limits) { limits_ = limits; }

    /// Restores the sessions of the journal (all detached) and who owns which item.
    void restore(std::vector<LoadedSession> sessions, std::uint64_t last_event_id,
                 const std::vector<Item>& live);

    /// A desktop said hello (credentials already checked). `system` is where the agent is to
    /// be logged on by default.
    /// `resume_hash` is the hash of the resume key this welcome gives the desktop: it replaces
    /// the session's previous one (journalled with the session).
    Attached attach(const std::string& agent, const std::optional<ResumeRequest>& resume,
                    std::shared_ptr<DesktopLink> link, const std::string& system,
                    std::string resume_hash = {});

    /// The link's socket is gone; the session waits for a resume (until the heartbeat monitor
    /// ends it with end_session()). False if `link` was not the session's link (replaced).
    bool detach(const std::string& agent, const DesktopLink* link);

    /// Routes the changes of one applied batch (not yet durable: desktops see a change before its
    /// commit; docs/protocol-notes.md says what a desktop sees after a crash).
    void route(const std::vector<Change>& changes, SteadyTime received, SteadyTime now);
    /// systemStateChanged to the agents logged on at `system` and to supervisors in scope.
    void route_system_state(const std::string& system, bool available, SteadyTime now);

    /// An event `name` with `data` (a JSON object) to the supervisors whose scope covers
    /// `system` (agentHeartbeat: an agent became suspect, was heard from again, or was lost).
    void route_supervisors(const std::string& name, const std::string& system, std::string data,
                           SteadyTime now);

    /// Hands pending events to the agent's link as far as its window allows.
    void pump(const std::string& agent, SteadyTime now);
    /// The desktop has everything up to `seq`: trims its replay buffer.
    void ack(const std::string& agent, std::uint64_t seq);
    /// A supervisor's monitor scope ("all" or "system:ID"; "" to stop).
    void monitor(const std::string& agent, const std::string& scope);
    /// The agent logged on (or off: "") at a system.
    void set_system(const std::string& agent, const std::string& system);
    std::string system_of(const std::string& agent) const;

    /// Ends the links that stayed over their queue budget for longer than slow_timeout.
    void sweep(SteadyTime now);
    /// Ends the agent's session: its link (if any) gets `bye` with `reason`, and the session
    /// and its replay buffer are forgotten. False if the agent had none.
    bool end_session(const std::string& agent, ByeReason reason);
    /// Every session's agent and system (start-up: the heartbeat monitor's fresh windows).
    std::vector<SessionInfo> session_infos() const;
    /// Closes every link with `reason` (shutdown).
    void close_all(ByeReason reason);

    /// What must be made durable since the last call. Replay records are collected per session
    /// and only taken with `with_replay` (a timer does so), so that a supervisor's thousands of
    /// events a second become a few rows; a session's buffer is taken early when it has many.
    std::vector<Change> take_journal(bool with_replay = false);
    /// The lowest event ID a replay buffer still refers to.
    std::uint64_t oldest_held_event() const;

    std::size_t sessions() const { return sessions_.size(); }
    std::size_t connected() const;
    bool has_session(const std::string& agent) const { return sessions_.count(agent) > 0; }
    /// True if the agent's session has a link (a desktop connected).
    bool attached(const std::string& agent) const;
    /// The agent's resume key stops working (its password changed): the session's hash is
    /// cleared, in the journal too.
    void forget_resume_key(const std::string& agent);
    /// True if the agent's session is the one with this token.
    bool holds(const std::string& agent, const std::string& token) const;
    std::size_t queued() const;
    const HubCounters& counters() const { return counters_; }

  private:
    struct Session {
        std::string token;
        std::string agent;
        std::string system;
        std::string scope;
        std::uint64_t seq = 0;
        std::string resume_hash;
        std::deque<std::pair<std::uint64_t, EventPtr>> ring;
        std::deque<EventPtr> pending;
        std::shared_ptr<DesktopLink> link;
        bool restored = false;     // loaded from the journal: unsent events may have been lost
        bool lost_events = false;  // pending overflowed while detached
        std::optional<SteadyTime> over_since;
        std::uint64_t trimmed_unsaved = 0;
        std::uint64_t unsaved_first = 0;  // seq of unsaved_ids.front()
        std::vector<std::uint64_t> unsaved_ids;
    };

    void deliver(Session& s, const EventPtr& e, SteadyTime now);
    /// Ends a link that fell too far behind: `bye tooSlow`, and the session waits for a resume.
    void cut_off(Session& s);
    void trim(Session& s, std::uint64_t up_to, bool save_now);
    void stored(const Session& s);
    void save_replay(Session& s);
    EventPtr make_event(std::string name, std::string data, std::string key, SteadyTime received);
    Session* find(const std::string& agent);
    void set_monitor(const std::string& agent, bool on);
    /// Sets or clears the session's over_since, keeping over_ (sessions over budget) true.
    void set_over(Session& s, std::optional<SteadyTime> since);

    HubLimits limits_;
    TokenSource tokens_;
    std::unordered_map<std::string, Session> sessions_;    // by agent
    std::unordered_map<std::string, std::string> owners_;  // item key → agent
    std::vector<std::string> monitors_;                    // agents with a monitor scope
    std::vector<std::string> unsaved_;                     // agents with unsaved replay records
    std::uint64_t last_event_id_ = 0;
    std::size_t over_ = 0;  // sessions with over_since set: the sweep looks only if any
    std::vector<Change> journal_;
    HubCounters counters_;
};

}  // namespace cb::channels
