#include "recovery/sqlite_journal.hpp"

#include "tests/unit/journal_testing.hpp"
#include "tests/unit/sample_items.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <future>

using namespace cb;
namespace fs = std::filesystem;

using testing::commit;
using testing::TempDir;

namespace {

channels::Item call(const std::string& id, std::uint64_t version, channels::State state) {
    return testing::sample_call(id, version, state);
}

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("a committed item, posting and agent state are loaded again after reopening") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(now);
        j->start();
        auto chat = call("chat-1", 3, channels::State::active);
        chat.channel = channels::Channel::chat;
        chat.topic = "billing";
        chat.customer_name = "Müller €";
        chat.touched = now - std::chrono::minutes(5);
        channels::AgentState agent{"CMS-A", "alice",       channels::AgentStateValue::ready,
                                   0,       {"+49301111"}, {"phone"}};
        CHECK(
            commit(*j, {channels::ItemStored{call("c-1", 2, channels::State::connected), now},
                        channels::ItemStored{chat, now},
                        channels::PostingStored{
                            "CMS-A", {"chat-1", "cust", "hello €", false, "2026-11-22T10:00:01Z"}},
                        channels::AgentStored{agent}}));
        CHECK(
            commit(*j, {channels::ItemStored{call("c-2", 5, channels::State::disconnected), now}}));
        j->stop();
    }
    auto j = recovery::SqliteJournal::open({path, true, 64});
    auto loaded = j->load(now - std::chrono::minutes(1));
    REQUIRE(loaded.live.size() == 2);
    REQUIRE(loaded.ended.size() == 1);
    CHECK(loaded.ended[0].id == "c-2");
    CHECK(loaded.ended[0].version == 5);
    REQUIRE(loaded.agents.size() == 1);
    CHECK(loaded.agents[0].state == channels::AgentStateValue::ready);
    for (auto& i : loaded.live) {
        if (i.id == "chat-1") {
            CHECK(i.customer_name == "Müller €");
            CHECK(i.touched == now - std::chrono::minutes(5));
            REQUIRE(i.postings.size() == 1);
            CHECK(i.postings[0].content_text == "hello €");
        } else {
            CHECK(i.id == "c-1");
            CHECK(i.version == 2);
            CHECK(i.state == channels::State::connected);
            CHECK(i.remote_numbers == std::vector<std::string>{"+493012345678"});
        }
    }
}

TEST_CASE("ended items older than the cutoff are forgotten at load") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto then = channels::TimePoint(std::chrono::hours(1000000));
    {
        auto j = recovery::SqliteJournal::open({path, false, 64});
        j->load(then);
        j->start();
        CHECK(commit(*j, {channels::ItemStored{call("old", 1, channels::State::failed), then}}));
        j->stop();
    }
    auto j = recovery::SqliteJournal::open({path, false, 64});
    CHECK(j->load(then + std::chrono::hours(2)).ended.empty());
}

TEST_CASE("an empty batch is a barrier that completes after earlier batches") {
    TempDir dir;
    auto j = recovery::SqliteJournal::open({(dir.path / "j.db").string(), false, 2});
    j->load(channels::TimePoint{});
    j->start();
    std::vector<int> order;
    std::mutex m;
    std::promise<void> last;
    for (int k = 0; k < 10; ++k)
        j->submit({channels::ItemStored{
                      call("c-" + std::to_string(k), 1, channels::State::alerting), {}}},
                  [&, k](bool ok) {
                      CHECK(ok);
                      std::lock_guard lock(m);
                      order.push_back(k);
                  });
    j->submit({}, [&](bool ok) {
        CHECK(ok);
        std::lock_guard lock(m);
        order.push_back(99);
        last.set_value();
    });
    last.get_future().get();
    REQUIRE(order.size() == 11);
    for (int k = 0; k < 10; ++k)
        CHECK(order[static_cast<std::size_t>(k)] == k);
    CHECK(order.back() == 99);
    CHECK(j->stats().commits >= 5);  // max_batch 2 splits ten changes into several transactions
}

TEST_CASE("a file that is not SQLite is refused and left untouched") {
    TempDir dir;
    auto path = dir.path / "journal.db";
    std::ofstream(path) << "this is somebody's notes, not a journal\n";
    auto before = file_bytes(path);
    CHECK_THROWS_WITH_AS(recovery::SqliteJournal::open({path.string(), true, 64}),
                         doctest::Contains("not a commbroker journal"), recovery::JournalError);
    CHECK(file_bytes(path) == before);
    CHECK_FALSE(fs::exists(path.string() + "-wal"));
}

TEST_CASE("another application's SQLite database is refused and left untouched") {
    TempDir dir;
    auto path = dir.path / "other.db";
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    auto before = file_bytes(path);
    CHECK_THROWS_WITH_AS(recovery::SqliteJournal::open({path.string(), true, 64}),
                         doctest::Contains("not a commbroker journal"), recovery::JournalError);
    CHECK(file_bytes(path) == before);
}

TEST_CASE("a journal from a newer schema is refused") {
    TempDir dir;
    auto path = (dir.path / "j.db").string();
    { auto j = recovery::SqliteJournal::open({path, true, 64}); }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    CHECK_THROWS_WITH_AS(recovery::SqliteJournal::open({path, true, 64}),
                         doctest::Contains("newer commbroker"), recovery::JournalError);
}

TEST_CASE("a journal with damaged pages is refused and left untouched") {
    TempDir dir;
    auto path = dir.path / "j.db";
    {
        auto j = recovery::SqliteJournal::open({path.string(), true, 64});
        j->load(channels::TimePoint{});
        j->start();
        std::vector<channels::Change> many;
        for (int k = 0; k < 300; ++k)
            many.push_back(channels::ItemStored{
                call("c-" + std::to_string(k), 1, channels::State::alerting), {}});
        CHECK(commit(*j, std::move(many)));
        j->stop();
    }
    // Checkpointed on close; now overwrite every page after the first (the header stays valid).
    REQUIRE_FALSE(fs::exists(path.string() + "-wal"));
    auto size = fs::file_size(path);
    REQUIRE(size > 3 * 4096);
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(4096);
        std::string junk(size - 4096, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    auto before = file_bytes(path);
    CHECK_THROWS_AS(
        {
            auto j = recovery::SqliteJournal::open({path.string(), true, 64});
            j->load(channels::TimePoint{});
        },
        recovery::JournalError);
    CHECK(file_bytes(path) == before);
}

TEST_CASE("after stop, a submit completes at once as failed") {
    TempDir dir;
    auto j = recovery::SqliteJournal::open({(dir.path / "j.db").string(), false, 64});
    j->load(channels::TimePoint{});
    j->start();
    j->stop();
    bool called = false, result = true;
    j->submit({channels::ItemStored{call("c-1", 1, channels::State::alerting), {}}}, [&](bool ok) {
        called = true;
        result = ok;
    });
    CHECK(called);
    CHECK_FALSE(result);
}

TEST_CASE("desktop sessions come back with their replay runs, minus what was trimmed") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(now);
        j->start();
        CHECK(commit(*j, {channels::SessionStored{"t-alice", "alice", "CMS-A", "", 0, "h-old"},
                          channels::SessionStored{"t-alice", "alice", "CMS-A", "", 0, "h-alice"},
                          channels::SessionStored{"t-bob", "bob", "CMS-A", "all", 0},
                          channels::DesktopEventStored{1, "phoneCallChanged", R"({"id":"c-1"})"},
                          channels::DesktopEventStored{2, "phoneCallChanged", R"({"id":"c-2"})"},
                          channels::DesktopEventStored{3, "userChanged", R"({"userId":"a"})"},
                          channels::ReplayStored{"t-alice", 1, {1, 2}},
                          channels::ReplayStored{"t-alice", 3, {3}},
                          channels::ReplayStored{"t-bob", 1, {1}}}));
        CHECK(commit(*j,
                     {channels::ReplayTrimmed{"t-alice", 1, 3}, channels::SessionEnded{"t-bob"}}));
        j->stop();
    }
    auto j = recovery::SqliteJournal::open({path, true, 64});
    auto loaded = j->load(now);
    REQUIRE(loaded.sessions.size() == 1);
    auto& s = loaded.sessions[0];
    CHECK(s.token == "t-alice");
    CHECK(s.resume_hash == "h-alice");  // the last welcome's key, not an earlier one
    CHECK(s.seq == 3);
    REQUIRE(s.replay.size() == 2);  // seq 1 was trimmed; its run (1..2) kept seq 2
    CHECK(s.replay[0].seq == 2);
    CHECK(s.replay[0].data == R"({"id":"c-2"})");
    CHECK(s.replay[1].seq == 3);
    CHECK(s.replay[1].name == "userChanged");
    CHECK(loaded.last_event_id == 3);
}

using testing::commit;
using testing::TempDir;

namespace {

/// Writes a journal with one live call, then makes it what a build of `schema` wrote by running
/// `downgrade`; opens it again and checks that it was migrated to the current schema, kept the
/// call, and takes what the newer tables hold.
void check_migration_from(int schema, const char* downgrade) {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(now);
        j->start();
        CHECK(commit(*j, {channels::ItemStored{call("c-1", 2, channels::State::connected), now}}));
        j->stop();
    }
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, downgrade, nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    auto j = recovery::SqliteJournal::open({path, true, 64});
    auto loaded = j->load(now);
    REQUIRE(loaded.live.size() == 1);
    CHECK(loaded.live[0].id == "c-1");
    // No older schema knew when an item was touched: the migration's time stands in for it.
    auto since_migration = std::chrono::system_clock::now() - loaded.live[0].touched;
    CHECK(since_migration >= std::chrono::seconds(0));
    CHECK(since_migration < std::chrono::minutes(1));
    if (schema < 2) CHECK(loaded.sessions.empty());
    j->start();
    channels::OrphanRecord orphan;
    orphan.system = "CMS-A";
    orphan.id = "c-1";
    orphan.reason = "heartbeatLost";
    orphan.agent = "alice";
    orphan.at = now;
    CHECK(commit(*j, {channels::SessionStored{"t-1", "alice", "CMS-A", "", 0},
                      channels::AuditStored{now, "heartbeatLogoff", "alice", "CMS-A", "",
                                            "heartbeatLost", "{}", "broker"},
                      channels::OrphanStored{orphan}}));
    j->stop();
    {
        // What the migration added is read back after the next start.
        auto again = recovery::SqliteJournal::open({path, true, 64});
        auto reloaded = again->load(now);
        REQUIRE(reloaded.orphans.size() == 1);
        CHECK(reloaded.orphans[0] == orphan);
    }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == recovery::kSchemaVersion);
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(db, "SELECT action, agent, reason, actor FROM audit", -1, &st,
                               nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) ==
          "heartbeatLogoff");
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 2))) ==
          "heartbeatLost");
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 3))) == "broker");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

}  // namespace

TEST_CASE("a schema 1 journal is migrated to the current schema and keeps its items") {
    check_migration_from(1,
                         "DROP TABLE desktop_sessions; DROP TABLE desktop_events; "
                         "DROP TABLE desktop_replay; DROP TABLE audit; DROP TABLE orphans; "
                         "ALTER TABLE items DROP COLUMN touched_at; PRAGMA user_version=1;");
}

TEST_CASE("a schema 2 journal is migrated to the current schema and keeps its items") {
    check_migration_from(2,
                         "DROP TABLE audit; ALTER TABLE desktop_sessions DROP COLUMN resume_hash; "
                         "DROP TABLE orphans; ALTER TABLE items DROP COLUMN touched_at; "
                         "PRAGMA user_version=2;");
}

TEST_CASE("a schema 3 journal is migrated to the current schema and keeps its items") {
    check_migration_from(3,
                         "DROP TABLE orphans; DROP INDEX audit_by_item; DROP INDEX audit_by_agent; "
                         "ALTER TABLE audit DROP COLUMN actor; "
                         "ALTER TABLE items DROP COLUMN touched_at; PRAGMA user_version=3;");
}

TEST_CASE("a schema 4 journal is migrated: its live items count as touched when it is") {
    check_migration_from(4, "ALTER TABLE items DROP COLUMN touched_at; PRAGMA user_version=4;");
}

TEST_CASE("orphans are kept until cleared, and a released item is forgotten with its postings") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    auto record = [&](const char* id, channels::Classification c) {
        channels::OrphanRecord o;
        o.system = "CMS-A";
        o.id = id;
        o.reason = "brokerRestart";
        o.agent = "alice";
        o.at = now;
        o.classification = c;
        if (c != channels::Classification::unchecked) o.checked_at = now + std::chrono::seconds(3);
        return o;
    };
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(now);
        j->start();
        CHECK(commit(*j,
                     {channels::ItemStored{call("c-1", 1, channels::State::connected), now},
                      channels::ItemStored{call("c-2", 1, channels::State::connected), now},
                      channels::ItemStored{call("c-3", 1, channels::State::connected), now},
                      channels::OrphanStored{record("c-1", channels::Classification::unchecked)},
                      channels::OrphanStored{record("c-2", channels::Classification::unchecked)},
                      channels::OrphanStored{record("c-3", channels::Classification::unchecked)}}));
        // Classified, cleared, released.
        CHECK(commit(
            *j, {channels::OrphanStored{record("c-1", channels::Classification::alive)},
                 channels::OrphanCleared{"CMS-A", "c-2"}, channels::ItemReleased{"CMS-A", "c-3"},
                 channels::OrphanCleared{"CMS-A", "c-3"}}));
        j->stop();
    }
    auto j = recovery::SqliteJournal::open({path, true, 64});
    auto loaded = j->load(now);
    REQUIRE(loaded.live.size() == 2);
    CHECK(loaded.ended.empty());  // released is not ended: a later report is taken as new
    REQUIRE(loaded.orphans.size() == 1);
    CHECK(loaded.orphans[0] == record("c-1", channels::Classification::alive));
    // Restored into a registry, the orphan is there with its item.
    channels::Registry reg({});
    reg.restore(std::move(loaded.live), std::move(loaded.ended), std::move(loaded.agents),
                std::move(loaded.orphans));
    REQUIRE(reg.find_orphan("CMS-A", "c-1"));
    CHECK(reg.find_orphan("CMS-A", "c-1")->classification == channels::Classification::alive);
    CHECK(!reg.find_orphan("CMS-A", "c-2"));
    CHECK(reg.orphan_count() == 1);
}

TEST_CASE("a renewed subscription removes the stored subscriptionEnded") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(now);
        j->start();
        CHECK(commit(*j, {channels::SubscriptionStored{{"CMS-A", "maintenance"}, now},
                          channels::SubscriptionStored{{"CMS-B", "restart"}, now}}));
        CHECK(commit(*j, {channels::SubscriptionRenewed{"CMS-A"}}));
        j->stop();
    }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT system FROM subscriptions", -1, &st, nullptr) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "CMS-B");
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

TEST_CASE("a chat keeps its newest maxChatPostings postings in the journal") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto now = channels::TimePoint(std::chrono::hours(1000000));
    recovery::SqliteJournal::Options o{path, true, 64};
    o.max_chat_postings = 3;
    {
        auto j = recovery::SqliteJournal::open(o);
        j->load(now);
        j->start();
        auto chat = call("chat-1", 1, channels::State::active);
        chat.channel = channels::Channel::chat;
        auto other = chat;
        other.id = "chat-2";
        CHECK(commit(*j, {channels::ItemStored{chat, now}, channels::ItemStored{other, now}}));
        for (int i = 1; i <= 5; ++i)
            CHECK(commit(*j, {channels::PostingStored{"CMS-A",
                                                      {"chat-1", "cust", "p" + std::to_string(i),
                                                       false, "2026-11-22T10:00:01Z"}}}));
        CHECK(commit(*j, {channels::PostingStored{
                             "CMS-A", {"chat-2", "cust", "q1", false, "2026-11-22T10:00:01Z"}}}));
        j->stop();
    }
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(db, "SELECT count(*) FROM postings", -1, &st, nullptr);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        CHECK(sqlite3_column_int(st, 0) == 4);  // 3 of chat-1, 1 of chat-2: the table stays bounded
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    auto j = recovery::SqliteJournal::open(o);
    auto loaded = j->load(now);
    for (auto& i : loaded.live) {
        std::vector<std::string> texts;
        for (auto& p : i.postings)
            texts.push_back(p.content_text);
        if (i.id == "chat-1")
            CHECK(texts == std::vector<std::string>{"p3", "p4", "p5"});
        else
            CHECK(texts == std::vector<std::string>{"q1"});
    }
}
