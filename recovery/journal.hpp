// The journal: the durable record of the registry (live items with their chat postings, ended
// items still remembered, agent states, ended subscriptions, orphans), the desktop sessions and
// their replay buffers, and the audit log. The broker, and through it the registry, the desktop
// hub, the heartbeat monitor and the recovery module, use it only through this interface; the
// embedded default is SqliteJournal (recovery/sqlite_journal.hpp), and a shared backend for
// several brokers would be another implementation of it.
//
// Contract, for every implementation:
// - load() runs once, before start(), on the caller's thread.
// - submit() may be called from any thread. Batches are committed in submission order, and each
//   completion runs (on the journal's thread) after its batch is durable (ok = true) or after
//   the attempt failed (ok = false). An empty batch is a barrier: it completes once everything
//   submitted before it is durable.
// - A failed commit is retried: its completions report ok = false at once, but its changes are
//   kept and written, in order, ahead of anything newer, by the first commit that succeeds.
//   healthy() is false from the failure until that commit, so the registry and the journal
//   never disagree once it is healthy. A journal that is lost (its store vanished or was
//   replaced) stays unhealthy and completes everything with ok = false.
// - stop() commits what is queued; later submits complete with ok = false.
// - The journal never calls back into the registry or the hub.
#pragma once

#include "channels/desktop_hub.hpp"
#include "channels/registry.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cb::recovery {

/// The journal cannot be used; what() says why and what to do.
class JournalError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct LoadedState {
    std::vector<channels::Item> live;
    std::vector<channels::EndedItem> ended;
    std::vector<channels::AgentState> agents;
    std::vector<channels::LoadedSession> sessions;
    std::vector<channels::OrphanRecord> orphans;
    std::uint64_t last_event_id = 0;
};

struct JournalStats {
    std::uint64_t commits = 0;
    std::uint64_t changes = 0;
    std::uint64_t failures = 0;
    std::uint64_t commit_micros_total = 0;
    std::uint64_t commit_micros_max = 0;
    // SQLite's write-ahead log (0 for a backend without one)
    std::uint64_t checkpoints = 0;         ///< background checkpoints that copied frames
    std::uint64_t forced_checkpoints = 0;  ///< WAL over its limit: restarted between commits
    std::uint64_t wal_bytes = 0;           ///< the WAL's size after the last commit
};

/// Whether the journal can take commits, and if not since when and why.
struct JournalHealth {
    enum class State {
        ok,        ///< commits succeed
        retrying,  ///< the last commit failed; retried with back-off
        lost,      ///< the store vanished or was replaced: nothing is written any more
    };
    State state = State::ok;
    std::string reason;                           ///< why not ok
    std::chrono::steady_clock::time_point since;  ///< when it stopped being ok
    std::uint64_t attempts = 0;                   ///< failed commits in a row
};
std::string_view to_string(JournalHealth::State s);

/// Which audit records to read (read_audit()).
struct AuditQuery {
    std::optional<channels::TimePoint> since;
    std::string agent;  ///< "" for any
    std::string item;   ///< "" for any
    std::size_t limit = 1000;
};

class Journal {
  public:
    using Completion = std::function<void(bool ok)>;

    virtual ~Journal() = default;

    /// Reads the state to restore; forgets ended items older than `cutoff`.
    virtual LoadedState load(channels::TimePoint cutoff) = 0;
    virtual void start() = 0;
    /// Commits what is queued, then stops. Later submits complete with ok = false.
    virtual void stop() = 0;
    virtual void submit(std::vector<channels::Change> changes, Completion done) = 0;
    /// Forgets ended items that ended before `cutoff`, and desktop events below `events_below`
    /// (no replay buffer holds them any more).
    virtual void prune(channels::TimePoint cutoff, std::uint64_t events_below = 0) = 0;

    virtual bool healthy() const = 0;
    virtual JournalHealth health() const = 0;
    virtual JournalStats stats() const = 0;
    /// Why the last commit failed (empty if none did).
    virtual std::string last_error() const = 0;
    /// Audit records, oldest first; any thread (it blocks for the query). Throws JournalError
    /// if they cannot be read.
    virtual std::vector<channels::AuditStored> read_audit(const AuditQuery& query) const = 0;
    /// Where the journal is (a file path, a database address), for operators.
    virtual std::string location() const = 0;
    virtual std::string_view backend() const = 0;
};

}  // namespace cb::recovery
