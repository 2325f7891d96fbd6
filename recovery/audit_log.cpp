#include "recovery/sqlite_journal.hpp"

#include "recovery/journal_sql.hpp"

#include <algorithm>

namespace cb::recovery {
using namespace sql;

std::vector<channels::AuditStored> SqliteJournal::read_audit(const AuditQuery& q) const {
    const std::string& path = options_.path;
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
        "SELECT at,action,agent,system,item,reason,details,actor FROM audit "
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
        out.push_back(
            channels::AuditStored{from_ms(sqlite3_column_int64(raw, 0)), column_text(raw, 1),
                                  column_text(raw, 2), column_text(raw, 3), column_text(raw, 4),
                                  column_text(raw, 5), column_text(raw, 6), column_text(raw, 7)});
    if (rc != SQLITE_DONE)
        throw JournalError(path + ": cannot read the audit log: " + sqlite3_errmsg(db));
    // The newest `limit` records, oldest first.
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace cb::recovery
