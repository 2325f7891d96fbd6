// The journal: the durable record of the registry (live items with their chat postings, ended
// items still remembered, agent states, ended subscriptions, orphans), the desktop sessions and
// their replay buffers, and the audit log, in one SQLite file in WAL mode (schema 4; older
// schemas are migrated in one transaction when opened).
//
// Contract:
// - open() refuses a file that is not a commbroker journal, was written by a newer schema, or
//   fails SQLite's integrity check, with a message that says so; such a file is never written.
// - load() runs once, before start(), on the caller's thread.
// - submit() may be called from any thread. Batches are committed in submission order on the
//   journal's own thread, as many as are waiting in one transaction (group commit, at most
//   max_batch changes), and each completion runs on that thread after the commit (ok = true) or
//   after it failed (ok = false). An empty batch is a barrier: it completes once everything
//   submitted before it is durable.
// - A failed commit is retried with back-off (retry_delay doubling up to retry_max_delay): its
//   completions report ok = false at once, but its changes are kept and written, in order, ahead
//   of anything newer, by the first commit that succeeds. healthy() is false from the failure
//   until that commit; the registry and the file therefore never disagree once it is healthy.
// - The journal knows its file: after every commit and every file_check_interval it checks that
//   the path (and its -wal) is still the file it opened. A file deleted, moved or replaced makes
//   the journal lost for good: nothing more is written, every batch completes with ok = false,
//   and the commit that noticed it is not acknowledged either.
// - The WAL stays bounded: a second connection copies it into the database (PASSIVE, every
//   200 ms, never blocking a commit), and once it holds more than wal_limit_bytes the journal
//   thread checkpoints it between two commits so that the next commit writes it from its start;
//   journal_size_limit keeps the file itself at about wal_limit_bytes.
// - open() refuses to create a journal where one was before (the `<path>.created` marker exists)
//   unless start_empty is set: a vanished journal is never silently replaced by an empty one.
// - The journal never calls back into the registry; on_health runs on the journal thread.
#pragma once

#include "channels/desktop_hub.hpp"
#include "channels/registry.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace cb::recovery {

/// The journal file cannot be used; what() says why and what to do.
class JournalError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr int kSchemaVersion = 4;
/// PRAGMA application_id of a commbroker journal ("CBJ1").
inline constexpr std::int32_t kApplicationId = 0x43424a31;

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
    std::uint64_t checkpoints = 0;         ///< background checkpoints that copied frames
    std::uint64_t forced_checkpoints = 0;  ///< WAL over its limit: restarted between commits
    std::uint64_t wal_bytes = 0;           ///< the WAL's size after the last commit
};

/// Whether the journal can take commits, and if not since when and why.
struct JournalHealth {
    enum class State {
        ok,        ///< commits succeed
        retrying,  ///< the last commit failed; retried with back-off
        lost,      ///< the file was deleted, moved or replaced: nothing is written any more
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

/// Reads audit records, oldest first, on a read-only connection of its own (any thread; it
/// blocks for the query). Throws JournalError if the file cannot be read.
std::vector<channels::AuditStored> read_audit(const std::string& path, const AuditQuery& query);

class Journal {
  public:
    struct Options {
        std::string path;
        bool sync_full = true;
        unsigned max_batch = 1024;
        std::size_t wal_limit_bytes = 16 * 1024 * 1024;
        std::chrono::milliseconds retry_delay{100};
        std::chrono::milliseconds retry_max_delay{5000};
        std::chrono::milliseconds file_check_interval{250};
        bool start_empty = false;  ///< create an empty journal even where one was before
        std::string vfs;           ///< SQLite VFS; empty for the default (tests inject faults)
        /// Called on the journal thread whenever the health state changes.
        std::function<void(const JournalHealth&)> on_health;
    };
    using Completion = std::function<void(bool ok)>;

    static std::unique_ptr<Journal> open(const Options& options);
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    /// Reads the state to restore; drops ended items older than `cutoff` from the file.
    LoadedState load(channels::TimePoint cutoff);

    void start();
    /// Commits what is queued, then stops the thread. Later submits complete with ok = false.
    void stop();

    void submit(std::vector<channels::Change> changes, Completion done);
    /// Forgets ended items that ended before `cutoff`, and desktop events below `events_below`
    /// (no replay buffer holds them any more).
    void prune(channels::TimePoint cutoff, std::uint64_t events_below = 0);

    bool healthy() const { return healthy_.load(); }
    JournalHealth health() const;
    const std::string& path() const { return options_.path; }
    /// The file whose existence says a journal was created at `path`.
    static std::string marker_path(const std::string& path) { return path + ".created"; }
    bool sync_full() const { return options_.sync_full; }
    JournalStats stats() const;
    /// Why the last commit failed (empty if none did).
    std::string last_error() const;

  private:
    explicit Journal(Options options);
    static std::unique_ptr<Journal> open_checked(const Options& options);
    struct Entry {
        std::vector<channels::Change> changes;
        Completion done;
        std::int64_t prune_cutoff_ms = -1;
        std::int64_t prune_events_below = 0;
    };
    struct FileId {
        unsigned long long dev = 0, ino = 0;
        bool known = false;
    };
    void run();
    void run_checkpoints();
    /// One transaction: the kept changes of failed commits, then `batch`. False if it failed.
    bool commit(std::vector<Entry>& batch, std::size_t& count);
    void set_health(JournalHealth::State state, std::string reason);
    /// Why the file is no longer the one opened, if it is not.
    std::optional<std::string> file_changed() const;
    void checkpoint_if_over_limit();
    void write(const channels::Change& c);
    void exec(const char* sql);
    sqlite3_stmt* prepare(const char* sql);

    Options options_;
    sqlite3* db_ = nullptr;
    struct Statements;
    std::unique_ptr<Statements> stmts_;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Entry> queue_;
    bool stopping_ = false;
    bool closed_ = false;  // stopped: submits fail at once
    std::thread thread_;
    sqlite3* checkpoint_db_ = nullptr;
    std::thread checkpointer_;
    std::condition_variable wake_checkpoint_;
    std::atomic<bool> healthy_{true};

    // Journal thread only.
    std::vector<channels::Change> retained_;  // of failed commits, written first by the next
    FileId db_id_, wal_id_;
    int wal_pages_ = 0;  // from the WAL hook after each commit
    std::size_t page_size_ = 4096;

    mutable std::mutex stats_mutex_;
    JournalStats stats_;      // guarded by stats_mutex_
    JournalHealth health_;    // guarded by stats_mutex_
    std::string last_error_;  // guarded by stats_mutex_
};

}  // namespace cb::recovery
