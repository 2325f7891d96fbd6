#include "recovery/sqlite_journal.hpp"

#include "recovery/journal_sql.hpp"
#include "recovery/stored_format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <unordered_map>

// Opening a journal: the checks that refuse a file that is not ours, the schema and its
// migrations, the prepared statements; and load(), which reads the state to restore.
namespace cb::recovery {
using namespace sql;

namespace {

const char* kSchema = R"sql(
CREATE TABLE items(
  seq      INTEGER PRIMARY KEY,
  system   TEXT NOT NULL,
  id       TEXT NOT NULL,
  channel  TEXT NOT NULL,
  version  INTEGER NOT NULL,       -- the unsigned version, stored as its 64-bit pattern
  state    TEXT NOT NULL,
  ended_at INTEGER,                -- ms since the epoch; NULL while the item is live
  snapshot TEXT NOT NULL);         -- the item without its postings (stored_format.hpp)
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

// Schema 4: the recovery module's orphans, who did what in the audit log, and the audit log's
// lookups by item and agent.
const char* kSchemaRecovery = R"sql(
CREATE TABLE orphans(
  system         TEXT NOT NULL,
  id             TEXT NOT NULL,
  reason         TEXT NOT NULL,
  agent          TEXT NOT NULL,          -- the agent it was orphaned from
  at             INTEGER NOT NULL,       -- ms since the epoch
  classification TEXT NOT NULL,          -- unchecked | alive | gone | unknown
  checked_at     INTEGER,                -- ms since the epoch; NULL until classified
  PRIMARY KEY(system, id)) WITHOUT ROWID;
ALTER TABLE audit ADD COLUMN actor TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_by_item ON audit(item);
CREATE INDEX audit_by_agent ON audit(agent);
)sql";

// Schema 5: when the broker last took a change of each live item, so that an item untouched for
// too long becomes an orphan. Items of an older journal count as touched when it is migrated.
const char* kSchemaTouched = R"sql(
ALTER TABLE items ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;  -- ms since the epoch
UPDATE items SET touched_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
)sql";

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

}  // namespace

std::unique_ptr<SqliteJournal> SqliteJournal::open(const Options& options) {
    namespace fs = std::filesystem;
    // Opening a file in WAL mode makes SQLite create its -wal and -shm. A refused journal is left
    // as it was found: those it created (empty, or the index) go again.
    std::error_code ec;
    bool had_wal = fs::exists(options.path + "-wal", ec);
    bool had_shm = fs::exists(options.path + "-shm", ec);
    try {
        return open_checked(options);
    } catch (const JournalError&) {
        if (!had_wal && fs::file_size(options.path + "-wal", ec) == 0 && !ec)
            fs::remove(options.path + "-wal", ec);
        if (!had_shm) fs::remove(options.path + "-shm", ec);
        throw;
    }
}

std::unique_ptr<SqliteJournal> SqliteJournal::open_checked(const Options& options) {
    namespace fs = std::filesystem;
    std::unique_ptr<SqliteJournal> j(new SqliteJournal(options));
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
        // A WAL without its database may hold committed events: never thrown away unasked.
        if (fs::file_size(path + "-wal", ec) > 0 && !ec && !options.start_empty)
            throw JournalError(
                path + "-wal: a journal's WAL is here but its database " + path +
                " is missing; the WAL may hold acknowledged events and was left untouched. Put "
                "the database back, or start with an empty journal, losing that state, by "
                "running commbrokerd once with --start-empty.");
        // With --start-empty, whatever a vanished journal left beside it belongs to no file.
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
            static_cast<SqliteJournal*>(self)->wal_pages_ = pages;
            return SQLITE_OK;
        },
        j.get());
    j->exec(options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (!exists) {
        j->exec("BEGIN");
        j->exec(kSchema);
        j->exec(kSchemaDesktops);
        j->exec(kSchemaAudit);
        j->exec(kSchemaRecovery);
        j->exec(kSchemaTouched);
        j->exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
        j->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        j->exec("COMMIT");
    } else if (auto v = pragma_int("PRAGMA user_version"); v < kSchemaVersion) {
        // Migrations, in one transaction: 1 → 2 adds the desktop tables, 2 → 3 the audit log,
        // 3 → 4 the orphans and the audit log's actor, 4 → 5 the items' touched_at; nothing
        // else changes (the stored format of items, postings and agents is format 1 in all).
        j->exec("BEGIN");
        if (v < 2) j->exec(kSchemaDesktops);
        if (v < 3) j->exec(kSchemaAudit);
        if (v < 4) j->exec(kSchemaRecovery);
        if (v < 5) j->exec(kSchemaTouched);
        j->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        j->exec("COMMIT");
    }
    if (!fs::exists(marker_path(path), ec)) write_marker(marker_path(path));

    auto st = std::make_unique<Statements>();
    auto mk = [&](const char* sql) { return std::make_unique<Stmt>(j->prepare(sql)); };
    st->upsert_item =
        mk("INSERT INTO items(system,id,channel,version,state,ended_at,snapshot,touched_at) "
           "VALUES(?1,?2,?3,?4,?5,NULL,?6,?7) "
           "ON CONFLICT(system,id) DO UPDATE SET "
           "channel=?3,version=?4,state=?5,ended_at=NULL,snapshot=?6,touched_at=?7");
    st->end_item =
        mk("INSERT INTO items(system,id,channel,version,state,ended_at,snapshot) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7) "
           "ON CONFLICT(system,id) DO UPDATE SET "
           "channel=?3,version=?4,state=?5,ended_at=?6,snapshot=?7");
    st->delete_postings = mk("DELETE FROM postings WHERE system=?1 AND chat_id=?2");
    st->insert_posting = mk("INSERT INTO postings(system,chat_id,posting) VALUES(?1,?2,?3)");
    // All but the chat's newest ?3 postings (the index on (system, chat_id) holds seq, the
    // rowid, in order: a walk of ?3 entries, no sort).
    st->trim_postings =
        mk("DELETE FROM postings WHERE system=?1 AND chat_id=?2 AND seq <= "
           "(SELECT seq FROM postings WHERE system=?1 AND chat_id=?2 "
           "ORDER BY seq DESC LIMIT 1 OFFSET ?3)");
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
        mk("INSERT INTO audit(at,action,agent,system,item,reason,details,actor) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
    st->upsert_orphan =
        mk("INSERT INTO orphans(system,id,reason,agent,at,classification,checked_at) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7) "
           "ON CONFLICT(system,id) DO UPDATE SET "
           "reason=?3,agent=?4,at=?5,classification=?6,checked_at=?7");
    st->delete_orphan = mk("DELETE FROM orphans WHERE system=?1 AND id=?2");
    st->delete_item = mk("DELETE FROM items WHERE system=?1 AND id=?2");
    st->begin = mk("BEGIN");
    st->commit = mk("COMMIT");
    st->rollback = mk("ROLLBACK");
    j->stmts_ = std::move(st);
    return j;
}

LoadedState SqliteJournal::load(channels::TimePoint cutoff) {
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
        // Sized first: growing a vector of 100,000 items moves each of them many times.
        Stmt count(prepare("SELECT count(*) FROM items WHERE ended_at IS NULL"));
        if (sqlite3_step(count.get()) == SQLITE_ROW)
            out.live.reserve(static_cast<std::size_t>(sqlite3_column_int64(count.get(), 0)));
    }
    {
        Stmt s(prepare("SELECT snapshot, ended_at, system, id, touched_at FROM items"));
        int rc;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
            auto item = stored::decode_item(column_text(s.get(), 0));
            if (!item)
                throw damaged("item " + column_text(s.get(), 2) + "/" + column_text(s.get(), 3) +
                              " cannot be read");
            if (sqlite3_column_type(s.get(), 1) == SQLITE_NULL) {
                if (item->channel == channels::Channel::chat)
                    chats[item->system + '\x1f' + item->id] = out.live.size();
                item->touched = from_ms(sqlite3_column_int64(s.get(), 4));
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
            auto p = stored::decode_posting(column_text(s.get(), 2));
            if (!p)
                throw damaged("a posting of chat " + column_text(s.get(), 1) + " cannot be read");
            out.live[it->second].postings.push_back(std::move(*p));
        }
    }
    {
        Stmt s(prepare("SELECT state FROM agents"));
        while (sqlite3_step(s.get()) == SQLITE_ROW) {
            auto a = stored::decode_agent(column_text(s.get(), 0));
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
    {
        Stmt s(prepare(
            "SELECT system, id, reason, agent, at, classification, checked_at FROM orphans"));
        int rc;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
            channels::OrphanRecord o;
            o.system = column_text(s.get(), 0);
            o.id = column_text(s.get(), 1);
            o.reason = column_text(s.get(), 2);
            o.agent = column_text(s.get(), 3);
            o.at = from_ms(sqlite3_column_int64(s.get(), 4));
            auto c = channels::classification_from_string(column_text(s.get(), 5));
            if (!c) throw damaged("orphan " + o.system + "/" + o.id + " has no classification");
            o.classification = *c;
            if (sqlite3_column_type(s.get(), 6) != SQLITE_NULL)
                o.checked_at = from_ms(sqlite3_column_int64(s.get(), 6));
            out.orphans.push_back(std::move(o));
        }
        if (rc != SQLITE_DONE) throw damaged(sqlite3_errmsg(db_));
    }
    return out;
}

}  // namespace cb::recovery
