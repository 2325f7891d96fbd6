#include "recovery/journal.hpp"

#include "channels/item_json.hpp"

#include <sqlite3.h>
#include <boost/json.hpp>

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
namespace json = boost::json;
using channels::Change;

namespace {

constexpr auto kCheckpointInterval = std::chrono::milliseconds(200);
constexpr std::size_t kSmallBatch = 8;

std::int64_t to_ms(channels::TimePoint t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
channels::TimePoint from_ms(std::int64_t ms) {
    return channels::TimePoint(std::chrono::milliseconds(ms));
}

const char* kSchema = R"sql(
CREATE TABLE items(
  seq      INTEGER PRIMARY KEY,
  system   TEXT NOT NULL,
  id       TEXT NOT NULL,
  channel  TEXT NOT NULL,
  version  INTEGER NOT NULL,       -- the unsigned version, stored as its 64-bit pattern
  state    TEXT NOT NULL,
  ended_at INTEGER,                -- ms since the epoch; NULL while the item is live
  snapshot TEXT NOT NULL);         -- the item as JSON, without its postings
CREATE UNIQUE INDEX items_by_key ON items(system, id);
CREATE TABLE postings(
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  system  TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  posting TEXT NOT NULL);
CREATE INDEX postings_by_chat ON postings(system, chat_id);
CREATE TABLE agents(
  system  TEXT NOT NULL,
  user_id TEXT NOT NULL,
  state   TEXT NOT NULL,
  PRIMARY KEY(system, user_id)) WITHOUT ROWID;
CREATE TABLE subscriptions(
  system   TEXT PRIMARY KEY,
  reason   TEXT NOT NULL,
  ended_at INTEGER NOT NULL);
)sql";

// Schema 2: desktop sessions and their replay buffers. A replay entry refers to an event stored
// once, however many sessions got it.
const char* kSchemaDesktops = R"sql(
CREATE TABLE desktop_sessions(
  token   TEXT PRIMARY KEY,
  agent   TEXT NOT NULL,
  system  TEXT NOT NULL,
  scope   TEXT NOT NULL,
  seq     INTEGER NOT NULL,            -- the last seq sent
  trimmed INTEGER NOT NULL DEFAULT 0); -- replay entries up to this seq are gone
CREATE TABLE desktop_events(
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  data TEXT NOT NULL);
CREATE TABLE desktop_replay(           -- a run of events sent with consecutive seqs
  token     TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq  INTEGER NOT NULL,
  event_ids BLOB NOT NULL,               -- 8 bytes (little-endian) per event
  PRIMARY KEY(token, first_seq)) WITHOUT ROWID;
)sql";

// Schema 3: the audit log: every automatic action (heartbeat, CMS availability) and, later,
// every operator action, with its reason and evidence; and the hash of each desktop session's
// resume key.
const char* kSchemaAudit = R"sql(
CREATE TABLE audit(
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,          -- ms since the epoch
  action  TEXT NOT NULL,
  agent   TEXT NOT NULL,
  system  TEXT NOT NULL,
  item    TEXT NOT NULL,
  reason  TEXT NOT NULL,
  details TEXT NOT NULL);            -- a JSON object: the evidence
CREATE INDEX audit_by_time ON audit(at);
ALTER TABLE desktop_sessions ADD COLUMN resume_hash TEXT NOT NULL DEFAULT '';
)sql";

class Stmt {
  public:
    explicit Stmt(sqlite3_stmt* s) : s_(s) {}
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt(const Stmt&) = delete;
    sqlite3_stmt* get() const { return s_; }

  private:
    sqlite3_stmt* s_;
};

void check_bind(sqlite3_stmt* s, int i, int rc) {
    if (rc != SQLITE_OK)
        throw JournalError("cannot bind parameter " + std::to_string(i) + ": " +
                           sqlite3_errmsg(sqlite3_db_handle(s)));
}
void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
    check_bind(s, i,
               sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}
void bind_int(sqlite3_stmt* s, int i, std::int64_t v) {
    check_bind(s, i, sqlite3_bind_int64(s, i, v));
}

/// Writes the marker that says a journal was created at this path, durably (file and folder).
void write_marker(const std::string& marker) {
    std::time_t t = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    std::string text = std::string("created ") + when + "\n";
    int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0) ::close(fd);
    if (!ok)
        throw JournalError(marker + ": cannot write the journal's marker: " + std::strerror(saved));
    auto dir = std::filesystem::path(marker).parent_path();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

std::string column_text(sqlite3_stmt* s, int i) {
    auto* p = sqlite3_column_text(s, i);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
             : std::string();
}

}  // namespace

struct Journal::Statements {
    std::unique_ptr<Stmt> upsert_item, end_item, delete_postings, insert_posting, upsert_agent,
        upsert_subscription, prune_items, upsert_session, end_session, end_session_replay,
        insert_event, insert_replay, trim_replay, update_session_seq, prune_events,
        delete_subscription, insert_audit, begin, commit, rollback;
};

Journal::Journal(Options options) : options_(std::move(options)) {}

Journal::~Journal() {
    stop();
    stmts_.reset();
    if (db_) sqlite3_close(db_);
}

void Journal::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw JournalError(options_.path + ": " + msg);
    }
}

sqlite3_stmt* Journal::prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
        throw JournalError(options_.path + ": " + sqlite3_errmsg(db_));
    return s;
}

std::unique_ptr<Journal> Journal::open(const Options& options) {
    namespace fs = std::filesystem;
    std::unique_ptr<Journal> j(new Journal(options));
    const auto& path = options.path;
    std::error_code ec;
    bool exists = fs::exists(path, ec);
    if (exists) {
        // Look at the file before SQLite does: a foreign file must not be touched at all.
        std::ifstream in(path, std::ios::binary);
        char header[16] = {};
        in.read(header, sizeof header);
        if (!in || std::memcmp(header, "SQLite format 3", 16) != 0)
            throw JournalError(
                path +
                ": not a commbroker journal (not an SQLite 3 database); "
                "the file was left untouched. Move it away or point <journal path> elsewhere.");
    } else {
        auto marker = marker_path(path);
        if (fs::exists(marker, ec) && !options.start_empty) {
            std::ifstream in(marker);
            std::string created;
            std::getline(in, created);
            throw JournalError(
                path + ": the journal is missing, but " + marker +
                " shows that one was kept here (" + created +
                "). Every event the broker acknowledged is in that file: put it back (with its "
                "-wal file) and start again, or start with an empty journal, losing that state, by "
                "running commbrokerd once with --start-empty.");
        }
        // Whatever a vanished journal left beside it belongs to no file any more.
        fs::remove(path + "-wal", ec);
        fs::remove(path + "-shm", ec);
        auto dir = fs::path(path).parent_path();
        if (!dir.empty()) fs::create_directories(dir, ec);
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (exists ? 0 : SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &j->db_, flags,
                        options.vfs.empty() ? nullptr : options.vfs.c_str()) != SQLITE_OK) {
        std::string msg = j->db_ ? sqlite3_errmsg(j->db_) : "out of memory";
        throw JournalError(path + ": cannot open the journal: " + msg);
    }
    // Until the file has passed every check, closing must not checkpoint a leftover WAL into it.
    sqlite3_db_config(j->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_extended_result_codes(j->db_, 1);
    sqlite3_busy_timeout(j->db_, 5000);

    auto pragma_int = [&](const char* sql) -> std::int64_t {
        Stmt s(nullptr);
        sqlite3_stmt* raw = nullptr;
        if (sqlite3_prepare_v2(j->db_, sql, -1, &raw, nullptr) != SQLITE_OK)
            throw JournalError(
                path + ": damaged journal, the file was left untouched: " + sqlite3_errmsg(j->db_));
        Stmt guard(raw);
        if (sqlite3_step(raw) != SQLITE_ROW)
            throw JournalError(
                path + ": damaged journal, the file was left untouched: " + sqlite3_errmsg(j->db_));
        return sqlite3_column_int64(raw, 0);
    };

    if (exists) {
        auto app = pragma_int("PRAGMA application_id");
        auto version = pragma_int("PRAGMA user_version");
        if (app != kApplicationId)
            throw JournalError(
                path + ": an SQLite database, but not a commbroker journal (application_id " +
                std::to_string(app) + "); the file was left untouched.");
        if (version > kSchemaVersion)
            throw JournalError(path + ": written by a newer commbroker (schema " +
                               std::to_string(version) + ", this build knows " +
                               std::to_string(kSchemaVersion) + "); the file was left untouched.");
        if (version < 1)
            throw JournalError(
                path + ": a commbroker journal without a schema; the file was left untouched.");
        sqlite3_stmt* raw = nullptr;
        if (sqlite3_prepare_v2(j->db_, "PRAGMA quick_check", -1, &raw, nullptr) != SQLITE_OK)
            throw JournalError(
                path + ": damaged journal, the file was left untouched: " + sqlite3_errmsg(j->db_));
        Stmt guard(raw);
        int rc = sqlite3_step(raw);
        std::string verdict = rc == SQLITE_ROW ? column_text(raw, 0) : sqlite3_errmsg(j->db_);
        if (verdict != "ok")
            throw JournalError(path + ": damaged journal (" + verdict +
                               "); the file was left untouched. "
                               "Restore it from a backup or move it away to start empty.");
    }

    sqlite3_db_config(j->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    j->exec("PRAGMA journal_mode=WAL");
    // Checkpoints run on their own connection and thread (start()), never inside a commit; the
    // journal thread restarts the WAL itself only when it grows over its limit.
    j->exec("PRAGMA wal_autocheckpoint=0");
    j->exec(("PRAGMA journal_size_limit=" + std::to_string(options.wal_limit_bytes)).c_str());
    j->page_size_ = static_cast<std::size_t>(pragma_int("PRAGMA page_size"));
    sqlite3_wal_hook(
        j->db_,
        [](void* self, sqlite3*, const char*, int pages) {
            static_cast<Journal*>(self)->wal_pages_ = pages;
            return SQLITE_OK;
        },
        j.get());
    j->exec(options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (!exists) {
        j->exec("BEGIN");
        j->exec(kSchema);
        j->exec(kSchemaDesktops);
        j->exec(kSchemaAudit);
        j->exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
        j->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        j->exec("COMMIT");
    } else if (auto v = pragma_int("PRAGMA user_version"); v < kSchemaVersion) {
        // Migrations, in one transaction: 1 → 2 adds the desktop tables, 2 → 3 the audit log;
        // nothing else changes.
        j->exec("BEGIN");
        if (v < 2) j->exec(kSchemaDesktops);
        if (v < 3) j->exec(kSchemaAudit);
        j->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        j->exec("COMMIT");
    }
    if (!fs::exists(marker_path(path), ec)) write_marker(marker_path(path));

    auto st = std::make_unique<Statements>();
    auto mk = [&](const char* sql) { return std::make_unique<Stmt>(j->prepare(sql)); };
    st->upsert_item =
        mk("INSERT INTO items(system,id,channel,version,state,ended_at,snapshot) "
           "VALUES(?1,?2,?3,?4,?5,NULL,?6) "
           "ON CONFLICT(system,id) DO UPDATE SET "
           "channel=?3,version=?4,state=?5,ended_at=NULL,snapshot=?6");
    st->end_item =
        mk("INSERT INTO items(system,id,channel,version,state,ended_at,snapshot) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7) "
           "ON CONFLICT(system,id) DO UPDATE SET "
           "channel=?3,version=?4,state=?5,ended_at=?6,snapshot=?7");
    st->delete_postings = mk("DELETE FROM postings WHERE system=?1 AND chat_id=?2");
    st->insert_posting = mk("INSERT INTO postings(system,chat_id,posting) VALUES(?1,?2,?3)");
    st->upsert_agent =
        mk("INSERT INTO agents(system,user_id,state) VALUES(?1,?2,?3) "
           "ON CONFLICT(system,user_id) DO UPDATE SET state=?3");
    st->upsert_subscription =
        mk("INSERT INTO subscriptions(system,reason,ended_at) VALUES(?1,?2,?3) "
           "ON CONFLICT(system) DO UPDATE SET reason=?2,ended_at=?3");
    st->prune_items = mk("DELETE FROM items WHERE ended_at IS NOT NULL AND ended_at < ?1");
    st->upsert_session =
        mk("INSERT INTO desktop_sessions(token,agent,system,scope,seq,resume_hash) "
           "VALUES(?1,?2,?3,?4,?5,?6) "
           "ON CONFLICT(token) DO UPDATE SET system=?3,scope=?4,seq=max(seq,?5),resume_hash=?6");
    st->end_session = mk("DELETE FROM desktop_sessions WHERE token=?1");
    st->end_session_replay = mk("DELETE FROM desktop_replay WHERE token=?1");
    st->insert_event = mk("INSERT OR REPLACE INTO desktop_events(id,name,data) VALUES(?1,?2,?3)");
    st->insert_replay =
        mk("INSERT OR REPLACE INTO desktop_replay(token,first_seq,last_seq,event_ids) "
           "VALUES(?1,?2,?3,?4)");
    st->trim_replay = mk("DELETE FROM desktop_replay WHERE token=?1 AND last_seq<=?2");
    st->update_session_seq =
        mk("UPDATE desktop_sessions SET seq=max(seq,?3), trimmed=max(trimmed,?2) WHERE token=?1");
    st->prune_events = mk("DELETE FROM desktop_events WHERE id < ?1");
    st->delete_subscription = mk("DELETE FROM subscriptions WHERE system=?1");
    st->insert_audit =
        mk("INSERT INTO audit(at,action,agent,system,item,reason,details) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7)");
    st->begin = mk("BEGIN");
    st->commit = mk("COMMIT");
    st->rollback = mk("ROLLBACK");
    j->stmts_ = std::move(st);
    return j;
}

LoadedState Journal::load(channels::TimePoint cutoff) {
    LoadedState out;
    auto damaged = [&](const std::string& what) {
        return JournalError(options_.path + ": damaged journal: " + what +
                            "; the file was left untouched.");
    };
    {
        Stmt prune(prepare("DELETE FROM items WHERE ended_at IS NOT NULL AND ended_at < ?1"));
        bind_int(prune.get(), 1, to_ms(cutoff));
        sqlite3_step(prune.get());
    }
    std::unordered_map<std::string, std::size_t> chats;
    {
        Stmt s(prepare("SELECT snapshot, ended_at, system, id FROM items"));
        int rc;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
            auto text = column_text(s.get(), 0);
            json::error_code ec;
            auto v = json::parse(text, ec);
            auto item = ec ? std::nullopt : channels::item_from_json(v);
            if (!item)
                throw damaged("item " + column_text(s.get(), 2) + "/" + column_text(s.get(), 3) +
                              " cannot be read");
            if (sqlite3_column_type(s.get(), 1) == SQLITE_NULL) {
                if (item->channel == channels::Channel::chat)
                    chats[item->system + '\x1f' + item->id] = out.live.size();
                out.live.push_back(std::move(*item));
            } else {
                out.ended.push_back(channels::EndedItem{item->system, item->id, item->channel,
                                                        item->version,
                                                        from_ms(sqlite3_column_int64(s.get(), 1))});
            }
        }
        if (rc != SQLITE_DONE) throw damaged(sqlite3_errmsg(db_));
    }
    {
        Stmt s(prepare("SELECT system, chat_id, posting FROM postings ORDER BY seq"));
        while (sqlite3_step(s.get()) == SQLITE_ROW) {
            auto it = chats.find(column_text(s.get(), 0) + '\x1f' + column_text(s.get(), 1));
            if (it == chats.end()) continue;  // the chat ended; its postings go with it
            json::error_code ec;
            auto v = json::parse(column_text(s.get(), 2), ec);
            auto p = ec ? std::nullopt : channels::posting_from_json(v);
            if (!p)
                throw damaged("a posting of chat " + column_text(s.get(), 1) + " cannot be read");
            out.live[it->second].postings.push_back(std::move(*p));
        }
    }
    {
        Stmt s(prepare("SELECT state FROM agents"));
        while (sqlite3_step(s.get()) == SQLITE_ROW) {
            json::error_code ec;
            auto v = json::parse(column_text(s.get(), 0), ec);
            auto a = ec ? std::nullopt : channels::agent_from_json(v);
            if (!a) throw damaged("an agent state cannot be read");
            out.agents.push_back(std::move(*a));
        }
    }
    {
        std::unordered_map<std::string, std::size_t> by_token;
        std::vector<std::uint64_t> trimmed;
        Stmt s(prepare(
            "SELECT token, agent, system, scope, seq, trimmed, resume_hash FROM desktop_sessions"));
        while (sqlite3_step(s.get()) == SQLITE_ROW) {
            channels::LoadedSession d;
            d.token = column_text(s.get(), 0);
            d.agent = column_text(s.get(), 1);
            d.system = column_text(s.get(), 2);
            d.scope = column_text(s.get(), 3);
            d.seq = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 4));
            trimmed.push_back(static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 5)));
            d.resume_hash = column_text(s.get(), 6);
            by_token[d.token] = out.sessions.size();
            out.sessions.push_back(std::move(d));
        }
        std::unordered_map<std::uint64_t, std::pair<std::string, std::string>> events;
        Stmt e(prepare("SELECT id, name, data FROM desktop_events"));
        while (sqlite3_step(e.get()) == SQLITE_ROW)
            events[static_cast<std::uint64_t>(sqlite3_column_int64(e.get(), 0))] = {
                column_text(e.get(), 1), column_text(e.get(), 2)};
        Stmt r(
            prepare("SELECT token, first_seq, event_ids FROM desktop_replay "
                    "ORDER BY token, first_seq"));
        while (sqlite3_step(r.get()) == SQLITE_ROW) {
            auto it = by_token.find(column_text(r.get(), 0));
            if (it == by_token.end()) continue;  // the session ended
            auto& d = out.sessions[it->second];
            auto first = static_cast<std::uint64_t>(sqlite3_column_int64(r.get(), 1));
            auto* blob = static_cast<const unsigned char*>(sqlite3_column_blob(r.get(), 2));
            auto bytes = static_cast<std::size_t>(sqlite3_column_bytes(r.get(), 2));
            for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
                std::uint64_t id = 0;
                for (int b = 0; b < 8; ++b)
                    id |= static_cast<std::uint64_t>(blob[i + b]) << (8 * b);
                auto seq = first + i / 8;
                auto ev = events.find(id);
                if (seq <= trimmed[it->second] || ev == events.end()) continue;
                d.replay.push_back({seq, id, ev->second.first, ev->second.second});
                d.seq = std::max(d.seq, seq);
            }
        }
        Stmt m(prepare("SELECT COALESCE(MAX(id), 0) FROM desktop_events"));
        if (sqlite3_step(m.get()) == SQLITE_ROW)
            out.last_event_id = static_cast<std::uint64_t>(sqlite3_column_int64(m.get(), 0));
    }
    return out;
}

void Journal::start() {
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

void Journal::run_checkpoints() {
    // PASSIVE checkpoints copy what they can without waiting for the writer, so a commit never
    // waits for a checkpoint; the WAL is kept short all the same.
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_checkpoint_.wait_for(lock, kCheckpointInterval);
        if (stopping_) break;
        lock.unlock();
        int wal_frames = 0, copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &wal_frames, &copied);
        if (rc == SQLITE_OK && copied > 0) {
            std::lock_guard stats(stats_mutex_);
            ++stats_.checkpoints;
        }
        lock.lock();
    }
}

void Journal::stop() {
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

void Journal::submit(std::vector<Change> changes, Completion done) {
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

void Journal::prune(channels::TimePoint cutoff, std::uint64_t events_below) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(
            Entry{{}, nullptr, to_ms(cutoff), static_cast<std::int64_t>(events_below)});
    }
    wake_.notify_one();
}

std::string_view to_string(JournalHealth::State s) {
    switch (s) {
        case JournalHealth::State::ok:
            return "ok";
        case JournalHealth::State::retrying:
            return "retrying";
        case JournalHealth::State::lost:
            return "lost";
    }
    return "?";
}

JournalHealth Journal::health() const {
    std::lock_guard lock(stats_mutex_);
    return health_;
}

void Journal::set_health(JournalHealth::State state, std::string reason) {
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

std::optional<std::string> Journal::file_changed() const {
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

void Journal::checkpoint_if_over_limit() {
    if (static_cast<std::size_t>(wal_pages_) * page_size_ <= options_.wal_limit_bytes) return;
    // Between two commits nothing else writes: a RESTART checkpoint copies the rest of the WAL
    // into the database and makes the next commit write it again from its start, which the
    // background PASSIVE ones cannot promise under a steady stream of commits. The file keeps
    // its size (journal_size_limit cuts it back to the limit) rather than being truncated to
    // nothing: truncating and growing it again made each of these pauses three times longer
    // (about 15 ms against 5 ms, docs/benchmarks.md).
    int frames = 0, copied = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_RESTART, &frames, &copied) ==
        SQLITE_OK) {
        wal_pages_ = 0;
        std::lock_guard lock(stats_mutex_);
        ++stats_.forced_checkpoints;
    }
}

std::string Journal::last_error() const {
    std::lock_guard lock(stats_mutex_);
    return last_error_;
}

JournalStats Journal::stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
}

void Journal::write(const Change& change) {
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
                auto obj = channels::to_json(item);
                obj.erase("postings");
                auto snapshot = json::serialize(obj);
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
                bind_text(s.get(), 3, json::serialize(channels::to_json(c.posting)));
                step(s);
            } else if constexpr (std::is_same_v<T, channels::AgentStored>) {
                auto& s = *stmts_->upsert_agent;
                bind_text(s.get(), 1, c.agent.system);
                bind_text(s.get(), 2, c.agent.user_id);
                bind_text(s.get(), 3, json::serialize(channels::to_json(c.agent)));
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
                step(s);
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

bool Journal::commit(std::vector<Entry>& batch, std::size_t& count) {
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

void Journal::run() {
    using Clock = std::chrono::steady_clock;
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

std::vector<channels::AuditStored> read_audit(const std::string& path, const AuditQuery& q) {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> guard(db, sqlite3_close);
    if (rc != SQLITE_OK)
        throw JournalError(
            path + ": cannot read the audit log: " + (db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_busy_timeout(db, 1000);
    sqlite3_stmt* raw = nullptr;
    const char* sql =
        "SELECT at,action,agent,system,item,reason,details FROM audit "
        "WHERE at >= ?1 AND (?2 = '' OR agent = ?2) AND (?3 = '' OR item = ?3) "
        "ORDER BY id DESC LIMIT ?4";
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK)
        throw JournalError(path + ": cannot read the audit log: " + sqlite3_errmsg(db));
    Stmt st(raw);
    bind_int(raw, 1, q.since ? to_ms(*q.since) : 0);
    bind_text(raw, 2, q.agent);
    bind_text(raw, 3, q.item);
    bind_int(raw, 4, static_cast<std::int64_t>(q.limit));
    std::vector<channels::AuditStored> out;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW)
        out.push_back(channels::AuditStored{
            from_ms(sqlite3_column_int64(raw, 0)), column_text(raw, 1), column_text(raw, 2),
            column_text(raw, 3), column_text(raw, 4), column_text(raw, 5), column_text(raw, 6)});
    if (rc != SQLITE_DONE)
        throw JournalError(path + ": cannot read the audit log: " + sqlite3_errmsg(db));
    // The newest `limit` records, oldest first.
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace cb::recovery
