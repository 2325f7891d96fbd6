// Internal to recovery/: the small SQLite helpers the journal's files share, and the journal's
// prepared statements. Not part of any contract; include only from recovery/*.cpp.
#pragma once

#include "recovery/sqlite_journal.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cb::recovery::sql {

inline std::int64_t to_ms(channels::TimePoint t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline channels::TimePoint from_ms(std::int64_t ms) {
    return channels::TimePoint(std::chrono::milliseconds(ms));
}

class Stmt {
  public:
    explicit Stmt(sqlite3_stmt* s) : s_(s) {}
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt(const Stmt&) = delete;
    sqlite3_stmt* get() const { return s_; }

  private:
    sqlite3_stmt* s_;
};

inline void check_bind(sqlite3_stmt* s, int i, int rc) {
    if (rc != SQLITE_OK)
        throw JournalError("cannot bind parameter " + std::to_string(i) + ": " +
                           sqlite3_errmsg(sqlite3_db_handle(s)));
}
inline void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
    check_bind(s, i,
               sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}
inline void bind_int(sqlite3_stmt* s, int i, std::int64_t v) {
    check_bind(s, i, sqlite3_bind_int64(s, i, v));
}

inline std::string column_text(sqlite3_stmt* s, int i) {
    auto* p = sqlite3_column_text(s, i);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
             : std::string();
}

}  // namespace cb::recovery::sql

namespace cb::recovery {

struct SqliteJournal::Statements {
    std::unique_ptr<sql::Stmt> upsert_item, end_item, delete_postings, insert_posting,
        trim_postings, upsert_agent, upsert_subscription, prune_items, upsert_session, end_session,
        end_session_replay, insert_event, insert_replay, trim_replay, update_session_seq,
        prune_events, delete_subscription, insert_audit, upsert_orphan, delete_orphan, delete_item,
        begin, commit, rollback;
};

}  // namespace cb::recovery
