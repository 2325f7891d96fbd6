// The registry: every live item of every CMS, keyed by (system, item ID), with the agent states
// the CMSs report. It applies inbound events by the rules of PROTOCOL.md section 1 and says what
// changed, so that the caller can make the change durable before answering.
//
// Ownership: one Registry belongs to the core strand (docs/concurrency.md); it has no locks and
// must only be called from there. It never blocks and does no I/O. Time is passed in.
#pragma once

#include "channels/item.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

namespace cb::channels {

using TimePoint = std::chrono::system_clock::time_point;

/// How an event was taken.
enum class Outcome {
    accepted,   ///< applied; the change must be made durable before the sender is answered
    duplicate,  ///< the same version (or the same posting, agent state) is already held
    stale,      ///< an older version than the one held
    count,      ///< not an outcome: how many there are. A new one goes above.
};
inline constexpr std::size_t kOutcomeCount = static_cast<std::size_t>(Outcome::count);
std::string_view to_string(Outcome o);

/// Why an event was refused. Nothing changed.
struct Rejection {
    enum class Code {
        invalid_field,       ///< a field breaks a rule, or an item ID changes channel
        invalid_transition,  ///< the state move is not allowed, or the item has ended
    };
    Code code;
    FieldError error;
};

/// A change to persist, as produced by an accepted event.
struct ItemStored {
    Item item;  ///< the new snapshot; if its state is terminal the item has ended
    TimePoint at;
};
struct PostingStored {
    std::string system;
    ChatPosting posting;
};
struct AgentStored {
    AgentState agent;
};
struct SubscriptionStored {
    SubscriptionEnded ended;
    TimePoint at;
};
/// Desktop sessions and their replay buffers (channels/desktop_hub.hpp), kept so that a desktop
/// can resume after a restart.
struct SessionStored {
    std::string token;
    std::string agent;
    std::string system;  ///< where the agent is logged on ("" if not)
    std::string scope;   ///< monitor scope of a supervisor ("" if none)
    std::uint64_t seq = 0;
    std::string resume_hash;  ///< hash of the resume key of the session's last welcome
};
struct SessionEnded {
    std::string token;
};
struct DesktopEventStored {
    std::uint64_t id;
    std::string name;
    std::string data;
};
/// Events a session sent with consecutive seqs from first_seq on.
struct ReplayStored {
    std::string token;
    std::uint64_t first_seq;
    std::vector<std::uint64_t> event_ids;
};
struct ReplayTrimmed {
    std::string token;
    std::uint64_t up_to;  ///< replay entries with seq <= up_to are gone
    std::uint64_t seq;    ///< the session's last seq, kept when the buffer is empty
};
/// The CMS accepted a new subscription: its stored subscriptionEnded is cleared.
struct SubscriptionRenewed {
    std::string system;
};
/// How reconciliation last found an orphan at its CMS (PROTOCOL.md section 4).
enum class Classification {
    unchecked,  ///< not asked yet
    alive,      ///< the CMS still has it; the registry holds the CMS's snapshot
    gone,       ///< the CMS no longer has it (the item is then closed here)
    unknown,    ///< the CMS could not be asked; asked again when it is available
};
std::string_view to_string(Classification c);
std::optional<Classification> classification_from_string(std::string_view s);

/// A live item whose agent was lost (DESIGN.md section 7), and why. Kept with the registry and
/// in the journal until the item ends, is re-adopted, assigned or released.
struct OrphanRecord {
    std::string system;
    std::string id;
    std::string reason;  ///< heartbeatLost, brokerRestart, agentLoggedOff, operatorLogoff, ...
    std::string agent;   ///< the agent it was orphaned from ("" if the item had none)
    TimePoint at;
    Classification classification = Classification::unchecked;
    std::optional<TimePoint> checked_at;  ///< when it was last classified
    bool operator==(const OrphanRecord&) const = default;
};
/// An item became an orphan, or its classification changed.
struct OrphanStored {
    OrphanRecord orphan;
};
/// An item is no longer an orphan (it ended, was re-adopted, assigned or released).
struct OrphanCleared {
    std::string system;
    std::string id;
};
/// An operator released a live item: forgotten here, without a trace that it ended (the CMS may
/// report it again, and it is then taken as new).
struct ItemReleased {
    std::string system;
    std::string id;
};

/// One automatic or operator action, with its reason and evidence (the audit log).
struct AuditStored {
    TimePoint at;
    std::string action;  ///< heartbeatSuspect, heartbeatCleared, heartbeatLogoff, ...
    std::string agent;   ///< "" if none
    std::string system;  ///< "" if none
    std::string item;    ///< "" if none
    std::string reason;
    std::string details;  ///< a JSON object: the evidence (last contact, profile, address, ...)
    std::string actor;    ///< who: "broker" for automatic actions, "operator NAME", "admin socket"
};
using Change =
    std::variant<ItemStored, PostingStored, AgentStored, SubscriptionStored, SessionStored,
                 SessionEnded, DesktopEventStored, ReplayStored, ReplayTrimmed, SubscriptionRenewed,
                 AuditStored, OrphanStored, OrphanCleared, ItemReleased>;

struct ApplyResult {
    std::variant<Outcome, Rejection> result;
    std::vector<Change> changes;  ///< empty unless accepted

    bool accepted() const {
        auto* o = std::get_if<Outcome>(&result);
        return o && *o == Outcome::accepted;
    }
};

/// An ended item remembered so that late snapshots of it are recognised.
struct EndedItem {
    std::string system;
    std::string id;
    Channel channel;
    std::uint64_t version;
    TimePoint ended_at;
};

struct ItemFilter {
    std::string system;
    std::string agent;
    std::optional<Channel> channel;
    std::optional<State> state;
};

struct SystemSubscription {
    bool ended = false;
    std::string reason;
    TimePoint at{};
};

class Registry {
  public:
    struct Limits {
        std::chrono::milliseconds ended_retention = std::chrono::hours(1);
        std::size_t max_chat_postings = 1000;
    };

    explicit Registry(Limits limits) : limits_(limits) {}

    void set_limits(Limits limits) { limits_ = limits; }

    /// Checks an event against the held state and applies it if it is accepted.
    ApplyResult apply(const Event& event, TimePoint now);

    /// Restores the state loaded from the journal (before any event is applied). Orphans of
    /// items that are not live are dropped.
    void restore(std::vector<Item> live, std::vector<EndedItem> ended,
                 std::vector<AgentState> agents, std::vector<OrphanRecord> orphans = {});

    // ---- orphans (an item that ends stops being one: apply() then adds an OrphanCleared) ----

    /// Makes the live item an orphan with `reason`, orphaned from its current agent. Nothing if
    /// the item is not live or already an orphan.
    std::optional<Change> orphan(const std::string& system, const std::string& id,
                                 std::string reason, TimePoint now);
    /// The item is no longer an orphan. Nothing if it was not one.
    std::optional<Change> clear_orphan(const std::string& system, const std::string& id);
    /// Sets an orphan's classification. Nothing if it is not an orphan or nothing changed
    /// (the time of the check is then not journalled either).
    std::optional<Change> classify(const std::string& system, const std::string& id,
                                   Classification c, TimePoint now);
    const OrphanRecord* find_orphan(const std::string& system, const std::string& id) const;
    /// Why `agent` is gone at `system`, if it is: the reason of one of its orphans there that
    /// was orphaned from it for its absence (any reason but untouched and unknownAgent), unless
    /// the CMS has reported the agent logged on since that orphan was made.
    std::optional<std::string> absence(const std::string& agent, const std::string& system) const;
    /// Every orphan, by system and ID; or those of one system.
    std::vector<OrphanRecord> orphans(const std::string& system = {}) const;
    std::size_t orphan_count() const { return orphans_.size(); }

    // ---- changes made here, not reported by a CMS (reconciliation, operators) ----

    /// Ends a live item here with its channel's terminal state (disconnected, ended, closed),
    /// keeping its version, because its CMS no longer has it. The changes, empty if not live.
    /// The CMS's word still wins: a later snapshot of it that ends it is a duplicate (its end is
    /// held), one that does not brings it back as a new item.
    std::vector<Change> end_locally(const std::string& system, const std::string& id,
                                    TimePoint now);
    /// Gives a live item to `agent` (same version): the changes, empty if not live.
    std::vector<Change> reassign(const std::string& system, const std::string& id,
                                 const std::string& agent, TimePoint now);
    /// Forgets a live item without remembering it as ended. The changes, empty if not live.
    std::vector<Change> release(const std::string& system, const std::string& id);
    /// Every agent that owns live items, with the system of one of them.
    std::vector<std::pair<std::string, std::string>> owners() const;
    /// The live items, not orphans yet, that nobody has touched (no change taken, no operator's
    /// assign) since `before`: (system, ID) pairs. A pass over every live item.
    std::vector<std::pair<std::string, std::string>> untouched(TimePoint before) const;
    /// The live items' versions of one system (what a reconciliation compares against later).
    std::unordered_map<std::string, std::uint64_t> versions(const std::string& system) const;

    /// Forgets ended items older than the retention.
    void prune(TimePoint now);

    const Item* find(const std::string& system, const std::string& id) const;
    const AgentState* find_agent(const std::string& system, const std::string& user) const;
    std::vector<Item> items(const ItemFilter& filter) const;
    std::vector<AgentState> agents() const;
    std::size_t item_count() const { return live_.size(); }
    std::size_t ended_count() const { return ended_.size(); }
    std::size_t agent_count() const { return agents_.size(); }
    const std::unordered_map<std::string, SystemSubscription>& subscriptions() const {
        return subscriptions_;
    }
    /// The system subscribed again: forgets its subscriptionEnded. The change to journal, if
    /// there was one to forget.
    std::optional<Change> renew_subscription(const std::string& system);

  private:
    struct Ended {
        Channel channel;
        std::uint64_t version;
        TimePoint ended_at;
        bool here = false;  // closed by end_locally(), not by the CMS (kept in memory only)
    };

    ApplyResult apply_item(const Item& item, TimePoint now);
    ApplyResult apply_posting(const PostingEvent& p);
    ApplyResult apply_agent(const AgentState& a, TimePoint now);
    ApplyResult apply_subscription(const SubscriptionEnded& s, TimePoint now);

    static std::string key(const std::string& system, const std::string& id) {
        std::string k;
        k.reserve(system.size() + id.size() + 1);
        k.append(system).push_back('\x1f');
        k.append(id);
        return k;
    }

    /// Keeps by_agent_ in step when the live item `k` goes from `before`'s agent to `after`'s.
    void reindex(const std::string& k, const Item* before, const Item* after);

    Limits limits_;
    std::unordered_map<std::string, Item> live_;
    // agent ID → keys of its live items: a desktop's snapshot and a lost agent's orphans are
    // found without a pass over every item.
    std::unordered_map<std::string, std::unordered_set<std::string>> by_agent_;
    std::unordered_map<std::string, Ended> ended_;
    std::unordered_map<std::string, AgentState> agents_;
    // when the CMS last reported each agent in a logged-on state (memory only)
    std::unordered_map<std::string, TimePoint> logged_on_at_;
    std::unordered_map<std::string, SystemSubscription> subscriptions_;
    std::unordered_map<std::string, OrphanRecord> orphans_;  // by key(), live items only
};

}  // namespace cb::channels
