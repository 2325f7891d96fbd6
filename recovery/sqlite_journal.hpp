// The embedded journal (recovery/journal.hpp): everything in one SQLite file in WAL mode
// (schema 5; older schemas are migrated in one transaction when opened). Items, postings and
// agent states are stored in the journal's own format (recovery/stored_format.hpp).
//
// Contract:
// - open() refuses a file that is not a commbroker journal, was written by a newer schema, or
//   fails SQLite's integrity check, with a message that says so; such a file is never written.
// - Batches are committed on the journal's own thread, as many as are waiting in one transaction
//   (group commit, at most max_batch changes); completions run on that thread.
// - A failed commit is retried with back-off (retry_delay doubling up to retry_max_delay).
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
// - on_health runs on the journal thread.
#pragma once

#include "recovery/journal.hpp"

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

inline constexpr int kSchemaVersion = 5;
/// PRAGMA application_id of a commbroker journal ("CBJ1").
inline constexpr std::int32_t kApplicationId = 0x43424a31;

class SqliteJournal final : public Journal {
  public:
    struct Options {
        std::string path;
        bool sync_full = true;
        unsigned max_batch = 1024;
        std::size_t max_chat_postings = 1000;  ///< a chat's newest postings kept, the rest deleted
        std::size_t wal_limit_bytes = 16 * 1024 * 1024;
        std::chrono::milliseconds retry_delay{100};
        std::chrono::milliseconds retry_max_delay{5000};
        std::chrono::milliseconds file_check_interval{250};
        bool start_empty = false;  ///< create an empty journal even where one was before
        std::string vfs;           ///< SQLite VFS; empty for the default (tests inject faults)
        /// Called on the journal thread whenever the health state changes.
        std::function<void(const JournalHealth&)> on_health;
    };

    static std::unique_ptr<SqliteJournal> open(const Options& options);
    ~SqliteJournal() override;

    LoadedState load(channels::TimePoint cutoff) override;
    void start() override;
    void stop() override;
    void submit(std::vector<channels::Change> changes, Completion done) override;
    void prune(channels::TimePoint cutoff, std::uint64_t events_below = 0) override;
    bool healthy() const override { return healthy_.load(); }
    JournalHealth health() const override;
    JournalStats stats() const override;
    std::string last_error() const override;
    /// On a read-only connection of its own, so that it never waits for the journal thread.
    std::vector<channels::AuditStored> read_audit(const AuditQuery& query) const override;
    std::string location() const override { return options_.path; }
    std::string_view backend() const override { return "sqlite"; }

    const std::string& path() const { return options_.path; }
    /// The file whose existence says a journal was created at `path`.
    static std::string marker_path(const std::string& path) { return path + ".created"; }
    bool sync_full() const { return options_.sync_full; }

  private:
    explicit SqliteJournal(Options options);
    static std::unique_ptr<SqliteJournal> open_checked(const Options& options);
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
    // Held by each background checkpoint, and by the journal thread from a forced checkpoint
    // until the commit after it (restart_hold_, journal thread only).
    std::mutex checkpoint_mutex_;
    std::unique_lock<std::mutex> restart_hold_;
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
