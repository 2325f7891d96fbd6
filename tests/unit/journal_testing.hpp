// What the journal's unit tests share: a temporary folder and a commit that waits for its answer.
#pragma once

#include "recovery/sqlite_journal.hpp"

#include <doctest/doctest.h>

#include <stdlib.h>
#include <filesystem>
#include <future>
#include <vector>

namespace cb::testing {

/// A new folder under /tmp, removed with everything in it at the end of the scope.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/cbjournal-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

/// Submits `changes` and waits for the journal's answer; says why when it is no.
inline bool commit(recovery::Journal& j, std::vector<channels::Change> changes) {
    std::promise<bool> done;
    j.submit(std::move(changes), [&](bool ok) { done.set_value(ok); });
    bool ok = done.get_future().get();
    if (!ok) MESSAGE("journal: " << j.last_error());
    return ok;
}

}  // namespace cb::testing
