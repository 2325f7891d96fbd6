// Writes a journal as a broker would leave it after a crash with many live calls: ITEMS calls
// spread over the systems CMS-A and CMS-B, owned by AGENTS agents (a00000, a00001, ...) who are
// logged on there. For bench/recovery_bench.sh.
// usage: recovery_seed JOURNAL ITEMS AGENTS
#include "recovery/sqlite_journal.hpp"

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>

using namespace cb;

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: recovery_seed JOURNAL ITEMS AGENTS\n");
        return 2;
    }
    std::size_t items = std::strtoull(argv[2], nullptr, 10);
    std::size_t agents = std::strtoull(argv[3], nullptr, 10);
    if (items == 0 || agents == 0) return 2;
    recovery::SqliteJournal::Options o;
    o.path = argv[1];
    o.sync_full = false;
    auto journal = recovery::SqliteJournal::open(o);
    journal->load(channels::TimePoint{});
    journal->start();
    auto now = std::chrono::system_clock::now();
    auto agent_name = [](std::size_t i) {
        char name[24];
        std::snprintf(name, sizeof name, "a%05zu", i);
        return std::string(name);
    };
    std::vector<channels::Change> batch;
    auto flush = [&] {
        std::promise<bool> done;
        journal->submit(std::move(batch), [&](bool ok) { done.set_value(ok); });
        batch.clear();
        if (!done.get_future().get()) throw std::runtime_error("a commit failed");
    };
    for (std::size_t a = 0; a < agents; ++a) {
        channels::AgentState s;
        s.system = a % 2 ? "CMS-B" : "CMS-A";
        s.user_id = agent_name(a);
        s.state = channels::AgentStateValue::ready;
        batch.push_back(channels::AgentStored{s});
    }
    for (std::size_t i = 0; i < items; ++i) {
        channels::Item c;
        auto agent = i % agents;
        c.system = agent % 2 ? "CMS-B" : "CMS-A";
        c.channel = channels::Channel::phone;
        c.id = "call-" + std::to_string(i);
        c.version = 3;
        c.state = channels::State::connected;
        c.agent_id = agent_name(agent);
        c.changed_at = channels::iso_utc(now);
        c.direction = "inbound";
        c.remote_numbers = {"+4930" + std::to_string(1000000 + i)};
        c.local_address = "+49301111";
        c.attached_data = "bp=" + std::to_string(4711000 + i);
        c.touched = now;
        batch.push_back(channels::ItemStored{std::move(c), now});
        if (batch.size() >= 1000) flush();
    }
    flush();
    journal->stop();
    return 0;
}
