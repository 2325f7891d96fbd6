#include "recovery/sqlite_journal.hpp"

#include "recovery/journal_sql.hpp"
#include "recovery/stored_format.hpp"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <unordered_map>

namespace cb::recovery {
using channels::Change;
using namespace sql;

namespace {

constexpr auto kCheckpointInterval = std::chrono::milliseconds(200);
constexpr std::size_t kSmallBatch = 8;

}  // namespace

SqliteJournal::SqliteJournal(Options options) : options_(std::move(options)) {}

SqliteJournal::~SqliteJournal() {
    stop();
    stmts_.reset();
    if (db_) sqlite3_close(db_);
}

void SqliteJournal::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw JournalError(options_.path + ": " + msg);
    }
}

sqlite3_stmt* SqliteJournal::prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
        throw JournalError(options_.path + ": " + sqlite3_errmsg(db_));
    return s;
}

void SqliteJournal::start() {
    if (sqlite3_open_v2(options_.path.c_str(), &checkpoint_db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        options_.vfs.empty() ? nullptr : options_.vfs.c_str()) != SQLITE_OK)
        throw JournalError(options_.path + ": cannot open the checkpoint connection: " +
                           sqlite3_errmsg(checkpoint_db_));
    sqlite3_busy_timeout(checkpoint_db_, 1000);
    // A connection learns that the file is in WAL mode when it first reads it; until then a
    // checkpoint on it answers OK and copies nothing.
    if (sqlite3_exec(checkpoint_db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr,
                     nullptr) != SQLITE_OK)
        throw JournalError(options_.path + ": the checkpoint connection cannot read: " +
                           sqlite3_errmsg(checkpoint_db_));
    auto id_of = [](const std::string& name) {
        FileId id;
        struct stat st {};
        if (::stat(name.c_str(), &st) == 0) id = {st.st_dev, st.st_ino, true};
        return id;
    };
    db_id_ = id_of(options_.path);
    wal_id_ = id_of(options_.path + "-wal");
    if (!db_id_.known) throw JournalError(options_.path + ": the journal vanished while opening");
    thread_ = std::thread([this] { run(); });
    checkpointer_ = std::thread([this] { run_checkpoints(); });
}

void SqliteJournal::run_checkpoints() {
    // PASSIVE checkpoints copy what they can without waiting for the writer, so a commit never
    // waits for a checkpoint; the WAL is kept short all the same.
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_checkpoint_.wait_for(lock, kCheckpointInterval);
        if (stopping_) break;
        lock.unlock();
        int wal_frames = 0, copied = 0;
        int rc;
        {
            std::lock_guard passive(checkpoint_mutex_);
            rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &wal_frames, &copied);
        }
        if (rc == SQLITE_OK && copied > 0) {
            std::lock_guard stats(stats_mutex_);
            ++stats_.checkpoints;
        }
        lock.lock();
    }
}

void SqliteJournal::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    wake_checkpoint_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (checkpointer_.joinable()) checkpointer_.join();
    if (checkpoint_db_) {
        sqlite3_close(checkpoint_db_);
        checkpoint_db_ = nullptr;
    }
    // Anything submitted after the thread ended cannot be committed.
    std::deque<Entry> left;
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        left.swap(queue_);
    }
    for (auto& e : left)
        if (e.done) e.done(false);
}

void SqliteJournal::submit(std::vector<Change> changes, Completion done) {
    {
        std::lock_guard lock(mutex_);
        if (!closed_) {
            queue_.push_back(Entry{std::move(changes), std::move(done)});
            done = nullptr;
        }
    }
    if (done) {
        done(false);
        return;
    }
    wake_.notify_one();
}

void SqliteJournal::prune(channels::TimePoint cutoff, std::uint64_t events_below) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(
            Entry{{}, nullptr, to_ms(cutoff), static_cast<std::int64_t>(events_below)});
    }
    wake_.notify_one();
}

JournalHealth SqliteJournal::health() const {
    std::lock_guard lock(stats_mutex_);
    return health_;
}

void SqliteJournal::set_health(JournalHealth::State state, std::string reason) {
    JournalHealth now;
    {
        std::lock_guard lock(stats_mutex_);
        bool changed = health_.state != state;
        if (state == JournalHealth::State::ok) {
            health_ = {};
        } else {
            if (health_.state == JournalHealth::State::ok)
                health_.since = std::chrono::steady_clock::now();
            health_.state = state;
            health_.reason = std::move(reason);
            ++health_.attempts;
        }
        healthy_.store(state == JournalHealth::State::ok);
        if (!changed) return;
        now = health_;
    }
    if (options_.on_health) options_.on_health(now);
}

std::optional<std::string> SqliteJournal::file_changed() const {
    for (auto* f : {&db_id_, &wal_id_}) {
        if (!f->known) continue;
        auto name = f == &db_id_ ? options_.path : options_.path + "-wal";
        struct stat st {};
        if (::stat(name.c_str(), &st) != 0)
            return name + " is gone (" + std::strerror(errno) +
                   "): it was deleted or moved while the broker had it open";
        if (st.st_dev != f->dev || st.st_ino != f->ino)
            return name + " is no longer the file the broker opened: it was replaced";
    }
    return std::nullopt;
}

void SqliteJournal::checkpoint_if_over_limit() {
    if (static_cast<std::size_t>(wal_pages_) * page_size_ <= options_.wal_limit_bytes) return;
    // Between two commits nothing else writes: a RESTART checkpoint copies the rest of the WAL
    // into the database and makes the next commit write it again from its start, which the
    // background PASSIVE ones cannot promise under a steady stream of commits. The file keeps
    // its size (journal_size_limit cuts it back to the limit) rather than being truncated to
    // nothing: truncating and growing it again made each of these pauses three times longer
    // (about 15 ms against 5 ms, docs/benchmarks.md).
    // The next commit can only write the WAL from its start if nobody reads it then: the
    // background checkpoints wait from here until that commit is done (run() lets them go).
    std::unique_lock hold(checkpoint_mutex_);
    int frames = 0, copied = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_RESTART, &frames, &copied) ==
        SQLITE_OK) {
        wal_pages_ = 0;
        restart_hold_ = std::move(hold);
        std::lock_guard lock(stats_mutex_);
        ++stats_.forced_checkpoints;
    }
}

std::string SqliteJournal::last_error() const {
    std::lock_guard lock(stats_mutex_);
    return last_error_;
}

JournalStats SqliteJournal::stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

void SqliteJournal::write(const Change& change) {
    auto step = [&](Stmt& s) {
        int rc = sqlite3_step(s.get());
        sqlite3_reset(s.get());
        sqlite3_clear_bindings(s.get());
        if (rc != SQLITE_DONE) throw JournalError(std::string("write: ") + sqlite3_errmsg(db_));
    };
    std::visit(
        [&](const auto& c) {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, channels::ItemStored>) {
                const auto& item = c.item;
                auto snapshot = stored::encode(item);
                bool ended = channels::is_terminal(item.state);
                auto& s = ended ? *stmts_->end_item : *stmts_->upsert_item;
                bind_text(s.get(), 1, item.system);
                bind_text(s.get(), 2, item.id);
                bind_text(s.get(), 3, channels::to_string(item.channel));
                bind_int(s.get(), 4, static_cast<std::int64_t>(item.version));
                bind_text(s.get(), 5, channels::to_string(item.state));
                if (ended) {
                    bind_int(s.get(), 6, to_ms(c.at));
                    bind_text(s.get(), 7, snapshot);
                } else {
                    bind_text(s.get(), 6, snapshot);
                    bind_int(s.get(), 7, to_ms(item.touched));
                }
                step(s);
                if (ended && item.channel == channels::Channel::chat) {
                    bind_text(stmts_->delete_postings->get(), 1, item.system);
                    bind_text(stmts_->delete_postings->get(), 2, item.id);
                    step(*stmts_->delete_postings);
                }
            } else if constexpr (std::is_same_v<T, channels::PostingStored>) {
                auto& s = *stmts_->insert_posting;
                bind_text(s.get(), 1, c.system);
                bind_text(s.get(), 2, c.posting.chat_session_id);
                bind_text(s.get(), 3, stored::encode(c.posting));
                step(s);
                // The chat keeps its newest maxChatPostings here as in the registry.
                auto& t = *stmts_->trim_postings;
                bind_text(t.get(), 1, c.system);
                bind_text(t.get(), 2, c.posting.chat_session_id);
                bind_int(t.get(), 3, static_cast<std::int64_t>(options_.max_chat_postings));
                step(t);
            } else if constexpr (std::is_same_v<T, channels::AgentStored>) {
                auto& s = *stmts_->upsert_agent;
                bind_text(s.get(), 1, c.agent.system);
                bind_text(s.get(), 2, c.agent.user_id);
                bind_text(s.get(), 3, stored::encode(c.agent));
                step(s);
            } else if constexpr (std::is_same_v<T, channels::SubscriptionStored>) {
                auto& s = *stmts_->upsert_subscription;
                bind_text(s.get(), 1, c.ended.system);
                bind_text(s.get(), 2, c.ended.reason);
                bind_int(s.get(), 3, to_ms(c.at));
                step(s);
            } else if constexpr (std::is_same_v<T, channels::SessionStored>) {
                auto& s = *stmts_->upsert_session;
                bind_text(s.get(), 1, c.token);
                bind_text(s.get(), 2, c.agent);
                bind_text(s.get(), 3, c.system);
                bind_text(s.get(), 4, c.scope);
                bind_int(s.get(), 5, static_cast<std::int64_t>(c.seq));
                bind_text(s.get(), 6, c.resume_hash);
                step(s);
            } else if constexpr (std::is_same_v<T, channels::SessionEnded>) {
                bind_text(stmts_->end_session->get(), 1, c.token);
                step(*stmts_->end_session);
                bind_text(stmts_->end_session_replay->get(), 1, c.token);
                step(*stmts_->end_session_replay);
            } else if constexpr (std::is_same_v<T, channels::DesktopEventStored>) {
                auto& s = *stmts_->insert_event;
                bind_int(s.get(), 1, static_cast<std::int64_t>(c.id));
                bind_text(s.get(), 2, c.name);
                bind_text(s.get(), 3, c.data);
                step(s);
            } else if constexpr (std::is_same_v<T, channels::ReplayStored>) {
                auto& s = *stmts_->insert_replay;
                std::string ids(c.event_ids.size() * 8, '\0');
                for (std::size_t i = 0; i < c.event_ids.size(); ++i)
                    for (int b = 0; b < 8; ++b)
                        ids[i * 8 + b] = static_cast<char>((c.event_ids[i] >> (8 * b)) & 0xff);
                bind_text(s.get(), 1, c.token);
                bind_int(s.get(), 2, static_cast<std::int64_t>(c.first_seq));
                bind_int(s.get(), 3,
                         static_cast<std::int64_t>(c.first_seq + c.event_ids.size() - 1));
                check_bind(s.get(), 4,
                           sqlite3_bind_blob(s.get(), 4, ids.data(), static_cast<int>(ids.size()),
                                             SQLITE_TRANSIENT));
                step(s);
            } else if constexpr (std::is_same_v<T, channels::SubscriptionRenewed>) {
                bind_text(stmts_->delete_subscription->get(), 1, c.system);
                step(*stmts_->delete_subscription);
            } else if constexpr (std::is_same_v<T, channels::AuditStored>) {
                auto& s = *stmts_->insert_audit;
                bind_int(s.get(), 1, to_ms(c.at));
                bind_text(s.get(), 2, c.action);
                bind_text(s.get(), 3, c.agent);
                bind_text(s.get(), 4, c.system);
                bind_text(s.get(), 5, c.item);
                bind_text(s.get(), 6, c.reason);
                bind_text(s.get(), 7, c.details);
                bind_text(s.get(), 8, c.actor);
                step(s);
            } else if constexpr (std::is_same_v<T, channels::OrphanStored>) {
                auto& s = *stmts_->upsert_orphan;
                const auto& o = c.orphan;
                bind_text(s.get(), 1, o.system);
                bind_text(s.get(), 2, o.id);
                bind_text(s.get(), 3, o.reason);
                bind_text(s.get(), 4, o.agent);
                bind_int(s.get(), 5, to_ms(o.at));
                bind_text(s.get(), 6, channels::to_string(o.classification));
                if (o.checked_at) bind_int(s.get(), 7, to_ms(*o.checked_at));
                step(s);
            } else if constexpr (std::is_same_v<T, channels::OrphanCleared>) {
                bind_text(stmts_->delete_orphan->get(), 1, c.system);
                bind_text(stmts_->delete_orphan->get(), 2, c.id);
                step(*stmts_->delete_orphan);
            } else if constexpr (std::is_same_v<T, channels::ItemReleased>) {
                bind_text(stmts_->delete_item->get(), 1, c.system);
                bind_text(stmts_->delete_item->get(), 2, c.id);
                step(*stmts_->delete_item);
                bind_text(stmts_->delete_postings->get(), 1, c.system);
                bind_text(stmts_->delete_postings->get(), 2, c.id);
                step(*stmts_->delete_postings);
            } else {
                static_assert(std::is_same_v<T, channels::ReplayTrimmed>);
                bind_text(stmts_->trim_replay->get(), 1, c.token);
                bind_int(stmts_->trim_replay->get(), 2, static_cast<std::int64_t>(c.up_to));
                step(*stmts_->trim_replay);
                bind_text(stmts_->update_session_seq->get(), 1, c.token);
                bind_int(stmts_->update_session_seq->get(), 2, static_cast<std::int64_t>(c.up_to));
                bind_int(stmts_->update_session_seq->get(), 3, static_cast<std::int64_t>(c.seq));
                step(*stmts_->update_session_seq);
            }
        },
        change);
}

bool SqliteJournal::commit(std::vector<Entry>& batch, std::size_t& count) {
    auto simple = [&](Stmt& s) {
        int rc = sqlite3_step(s.get());
        sqlite3_reset(s.get());
        return rc == SQLITE_DONE;
    };
    try {
        if (!simple(*stmts_->begin))
            throw JournalError(std::string("BEGIN: ") + sqlite3_errmsg(db_));
        for (auto& c : retained_)
            write(c);
        count += retained_.size();
        for (auto& e : batch) {
            for (auto& c : e.changes)
                write(c);
            count += e.changes.size();
            if (e.prune_cutoff_ms >= 0) {
                bind_int(stmts_->prune_items->get(), 1, e.prune_cutoff_ms);
                if (!simple(*stmts_->prune_items)) throw JournalError(sqlite3_errmsg(db_));
                bind_int(stmts_->prune_events->get(), 1, e.prune_events_below);
                if (!simple(*stmts_->prune_events)) throw JournalError(sqlite3_errmsg(db_));
            }
        }
        if (!simple(*stmts_->commit))
            throw JournalError(std::string("COMMIT: ") + sqlite3_errmsg(db_));
        return true;
    } catch (const std::exception& e) {
        {
            std::lock_guard lock(stats_mutex_);
            last_error_ = e.what();
        }
        if (!sqlite3_get_autocommit(db_)) simple(*stmts_->rollback);
        return false;
    }
}

void SqliteJournal::run() {
    using Clock = std::chrono::steady_clock;
    // However the thread ends, the background checkpoints are not left waiting.
    struct Release {
        std::unique_lock<std::mutex>& hold;
        ~Release() {
            if (hold.owns_lock()) hold.unlock();
        }
    } release{restart_hold_};
    std::vector<Entry> batch;
    auto delay = options_.retry_delay;
    Clock::time_point retry_at{};  // while retrying: not before then
    auto next_check = Clock::now() + options_.file_check_interval;
    while (true) {
        bool final_round = false;
        {
            std::unique_lock lock(mutex_);
            while (true) {
                auto now = Clock::now();
                if (now >= next_check) {
                    next_check = now + options_.file_check_interval;
                    if (healthy_.load() || !retained_.empty() || !queue_.empty()) {
                        lock.unlock();
                        if (auto why = file_changed()) set_health(JournalHealth::State::lost, *why);
                        lock.lock();
                    }
                }
                if (stopping_) {
                    final_round = true;
                    break;
                }
                bool work = !queue_.empty() || !retained_.empty();
                if (work && now >= retry_at) break;
                wake_.wait_until(lock, work ? std::min(retry_at, next_check) : next_check);
            }
            if (final_round && queue_.empty() && retained_.empty()) return;
            if (queue_.size() < kSmallBatch && !final_round && healthy_.load()) {
                // Every commit writes whole pages to the WAL: give threads that are about to
                // submit one chance to join this transaction before it starts.
                lock.unlock();
                std::this_thread::yield();
                lock.lock();
            }
            std::size_t changes = 0;
            while (!queue_.empty() && (batch.empty() || changes + queue_.front().changes.size() <=
                                                            options_.max_batch)) {
                changes += queue_.front().changes.size();
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }

        bool lost = health().state == JournalHealth::State::lost;
        bool ok = false;
        std::size_t count = 0;
        auto started = Clock::now();
        if (!lost) {
            ok = commit(batch, count);
            if (ok) {
                // A commit into a file that is no longer at the path is read by nobody.
                if (auto why = file_changed()) {
                    ok = false;
                    lost = true;
                    set_health(JournalHealth::State::lost, *why);
                }
            }
        }
        auto micros = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
        if (ok) {
            retained_.clear();
            delay = options_.retry_delay;
            retry_at = {};
            set_health(JournalHealth::State::ok, {});
        } else if (lost) {
            retained_.clear();  // nothing will be written any more
        } else {
            // Keep what failed, in order, for the next attempt; its senders hear no at once.
            for (auto& e : batch)
                for (auto& c : e.changes)
                    retained_.push_back(std::move(c));
            set_health(JournalHealth::State::retrying, last_error());
            retry_at = Clock::now() + delay;
            delay = std::min(delay * 2, options_.retry_max_delay);
        }
        {
            std::lock_guard lock(stats_mutex_);
            if (ok) {
                ++stats_.commits;
                stats_.changes += count;
                stats_.commit_micros_total += micros;
                stats_.commit_micros_max = std::max(stats_.commit_micros_max, micros);
                stats_.wal_bytes = static_cast<std::uint64_t>(wal_pages_) * page_size_;
            } else {
                ++stats_.failures;
            }
        }
        for (auto& e : batch)
            if (e.done) e.done(ok);
        batch.clear();
        // The commit after a forced checkpoint has restarted the WAL (or failed): the background
        // checkpoints may read it again.
        if (restart_hold_.owns_lock()) restart_hold_.unlock();
        if (ok) checkpoint_if_over_limit();
        if (final_round && !ok) {
            // Stopping: one last attempt was made; what it could not write is reported and the
            // thread ends (none of it was acknowledged).
            std::deque<Entry> left;
            {
                std::lock_guard lock(mutex_);
                left.swap(queue_);
            }
            for (auto& e : left)
                if (e.done) e.done(false);
            {
                std::lock_guard lock(stats_mutex_);
                if (!retained_.empty())
                    last_error_ = std::to_string(retained_.size()) +
                                  " change(s) never reached the journal: " + last_error_;
            }
            retained_.clear();
            return;
        }
    }
}

}  // namespace cb::recovery
