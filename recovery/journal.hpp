// The journal: the durable record of the registry (live items with their chat postings, ended
// items still remembered, agent states, ended subscriptions) in one SQLite file in WAL mode.
//
// Contract:
// - open() refuses a file that is not a commbroker journal, was written by a newer schema, or
//   fails SQLite's integrity check, with a message that says so; such a file is never written.
// - load() runs once, before start(), on the caller's thread.
// - submit() may be called from any thread. Batches are committed in submission order on the
//   journal's own thread, as many as are waiting in one transaction (group commit, at most
//   max_batch changes), and each completion runs on that thread after the commit (ok = true) or
//   after it failed (ok = false). An empty batch is a barrier: it completes once everything
//   submitted before it is durable. After a failed commit the journal stays failed: every later
//   batch completes with ok = false and healthy() is false.
// - The journal never calls back into the registry.
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
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace cb::recovery {

/// The journal file cannot be used; what() says why and what to do.
class JournalError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr int kSchemaVersion = 2;
/// PRAGMA application_id of a commbroker journal ("CBJ1").
inline constexpr std::int32_t kApplicationId = 0x43424a31;

struct LoadedState {
    std::vector<channels::Item> live;
    std::vector<channels::EndedItem> ended;
    std::vector<channels::AgentState> agents;
    std::vector<channels::LoadedSession> sessions;
    std::uint64_t last_event_id = 0;
};

struct JournalStats {
    std::uint64_t commits = 0;
    std::uint64_t changes = 0;
    std::uint64_t failures = 0;
    std::uint64_t commit_micros_total = 0;
    std::uint64_t commit_micros_max = 0;
};

class Journal {
  public:
    struct Options {
        std::string path;
        bool sync_full = true;
        unsigned max_batch = 1024;
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
    const std::string& path() const { return options_.path; }
    bool sync_full() const { return options_.sync_full; }
    JournalStats stats() const;
    /// Why the last commit failed (empty if none did).
    std::string last_error() const;

  private:
    explicit Journal(Options options);
    struct Entry {
        std::vector<channels::Change> changes;
        Completion done;
        std::int64_t prune_cutoff_ms = -1;
        std::int64_t prune_events_below = 0;
    };
    void run();
    void run_checkpoints();
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

    mutable std::mutex stats_mutex_;
    JournalStats stats_;
    std::string last_error_;  // guarded by stats_mutex_
};

}  // namespace cb::recovery
