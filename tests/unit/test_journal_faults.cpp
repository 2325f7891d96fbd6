// The journal against a failing disk and a vanishing file: retries, the WAL's bound, the file's
// identity, and the marker that keeps a vanished journal from being replaced by an empty one.
#include "recovery/sqlite_journal.hpp"

#include "tests/unit/faulty_vfs.hpp"
#include "tests/unit/journal_testing.hpp"
#include "tests/unit/sample_items.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

using namespace cb;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::commit;
using testing::TempDir;

namespace {

const auto kNow = channels::TimePoint(std::chrono::hours(1000000));

channels::Change stored(const std::string& id, std::uint64_t version = 1) {
    return channels::ItemStored{testing::sample_call(id, version, channels::State::alerting), kNow};
}

/// Waits for `f` to hold, checking every few milliseconds, for at most `limit`.
template <class F>
bool eventually(F f, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (f()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return f();
}

std::vector<std::string> live_ids(const std::string& path) {
    auto j = recovery::SqliteJournal::open({path, true, 64});
    std::vector<std::string> ids;
    for (auto& i : j->load(kNow).live)
        ids.push_back(i.id);
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("the background checkpoint copies the WAL into the database") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto j = recovery::SqliteJournal::open({path, true, 64});
    j->load(kNow);
    j->start();
    for (int i = 0; i < 50; ++i)
        REQUIRE(commit(*j, {stored("c-" + std::to_string(i))}));
    CHECK(eventually([&] { return j->stats().checkpoints > 0; }));
}

TEST_CASE("the WAL stays under its limit through a long run of commits") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    recovery::SqliteJournal::Options o{path, false, 64};
    o.wal_limit_bytes = 256 * 1024;
    auto j = recovery::SqliteJournal::open(o);
    j->load(kNow);
    j->start();
    std::uintmax_t largest = 0;
    // Each commit rewrites pages of the item table and its index: thousands of commits write
    // megabytes of WAL frames while the database itself stays small.
    for (int i = 0; i < 4000; ++i) {
        REQUIRE(commit(*j, {stored("c-" + std::to_string(i % 200), 1 + i / 200)}));
        std::error_code ec;
        largest = std::max(largest, fs::file_size(path + "-wal", ec));
    }
    MESSAGE("largest WAL: " << largest
                            << " bytes; forced checkpoints: " << j->stats().forced_checkpoints);
    CHECK(largest > 0);
    // One commit past the limit at most, before the journal thread restarts it.
    CHECK(largest < 2 * o.wal_limit_bytes);
}

TEST_CASE("a failed commit is retried and, once the disk takes writes again, nothing is lost") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    recovery::SqliteJournal::Options o{path, true, 64};
    o.vfs = testing::FaultyVfs::install();
    o.retry_delay = 10ms;
    o.retry_max_delay = 50ms;
    std::vector<recovery::JournalHealth::State> seen;
    std::mutex seen_mutex;
    o.on_health = [&](const recovery::JournalHealth& h) {
        std::lock_guard lock(seen_mutex);
        seen.push_back(h.state);
    };
    REQUIRE(o.vfs == std::string(testing::FaultyVfs::kName));
    {
        auto j = recovery::SqliteJournal::open(o);
        j->load(kNow);
        j->start();
        REQUIRE(commit(*j, {stored("c-1")}));

        testing::FaultyVfs::failing = true;
        CHECK_FALSE(commit(*j, {stored("c-2")}));
        CHECK_FALSE(j->healthy());
        CHECK(j->health().state == recovery::JournalHealth::State::retrying);
        CHECK_FALSE(commit(*j, {stored("c-3")}));
        // Retries keep failing while the disk does.
        auto refused = testing::FaultyVfs::refused.load();
        CHECK(eventually([&] { return testing::FaultyVfs::refused.load() > refused; }));
        CHECK_FALSE(j->healthy());

        testing::FaultyVfs::failing = false;
        CHECK(eventually([&] { return j->healthy(); }));
        CHECK(commit(*j, {stored("c-4")}));
        j->stop();
    }
    // c-2 and c-3 were never acknowledged, but were applied: the file holds them too.
    CHECK(live_ids(path) == std::vector<std::string>{"c-1", "c-2", "c-3", "c-4"});
    std::lock_guard lock(seen_mutex);
    CHECK(seen == std::vector{recovery::JournalHealth::State::retrying,
                              recovery::JournalHealth::State::ok});
}

TEST_CASE("a journal deleted while open is noticed: the commit that follows is not acknowledged") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    auto j = recovery::SqliteJournal::open({path, true, 64});
    j->load(kNow);
    j->start();
    REQUIRE(commit(*j, {stored("c-1")}));
    for (auto* suffix : {"", "-wal", "-shm"})
        fs::remove(path + suffix);
    CHECK_FALSE(commit(*j, {stored("c-2")}));
    auto h = j->health();
    CHECK(h.state == recovery::JournalHealth::State::lost);
    CHECK(h.reason.find("is gone") != std::string::npos);
    CHECK_FALSE(commit(*j, {stored("c-3")}));
}

TEST_CASE("a journal replaced while idle is noticed within its check interval") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    recovery::SqliteJournal::Options o{path, true, 64};
    o.file_check_interval = 50ms;
    auto j = recovery::SqliteJournal::open(o);
    j->load(kNow);
    j->start();
    REQUIRE(commit(*j, {stored("c-1")}));
    fs::copy_file(path, path + ".copy");
    fs::rename(path + ".copy", path);
    CHECK(eventually([&] { return !j->healthy(); }, 1s));
    CHECK(j->health().reason.find("replaced") != std::string::npos);
}

TEST_CASE("a missing journal where one was kept is refused unless starting empty is asked for") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    {
        auto j = recovery::SqliteJournal::open({path, true, 64});
        j->load(kNow);
        j->start();
        REQUIRE(commit(*j, {stored("c-1")}));
    }
    CHECK(fs::exists(recovery::SqliteJournal::marker_path(path)));
    for (auto* suffix : {"", "-wal", "-shm"})
        fs::remove(path + suffix);
    CHECK_THROWS_WITH_AS(recovery::SqliteJournal::open({path, true, 64}),
                         doctest::Contains("the journal is missing"), recovery::JournalError);
    CHECK_FALSE(fs::exists(path));

    recovery::SqliteJournal::Options o{path, true, 64};
    o.start_empty = true;
    auto j = recovery::SqliteJournal::open(o);
    CHECK(j->load(kNow).live.empty());
}

TEST_CASE("a refused journal with a leftover WAL is left exactly as it was") {
    TempDir dir;
    auto path = (dir.path / "journal.db").string();
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        for (auto* sql :
             {"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0", "CREATE TABLE t(x)",
              "INSERT INTO t VALUES(1)", "PRAGMA application_id=7"})
            REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        sqlite3_close(db);
    }
    REQUIRE(fs::exists(path + "-wal"));
    auto db_before = file_bytes(path), wal_before = file_bytes(path + "-wal");
    CHECK_THROWS_AS(recovery::SqliteJournal::open({path, true, 64}), recovery::JournalError);
    CHECK(file_bytes(path) == db_before);
    CHECK(fs::exists(path + "-wal"));
    CHECK(file_bytes(path + "-wal") == wal_before);
}
