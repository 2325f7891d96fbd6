// Reconciliation (DESIGN.md section 7): what a CMS's getItems answer means for the registry,
// and the progress of the reconciliations the broker runs (for `status`).
//
// Pure functions and plain state, no I/O. The caller (the broker, on its core strand) sends
// getItems, records what the registry held when it did (Registry::versions()), and on the answer
// applies the plan: every snapshot the CMS sent (items held here take the CMS's snapshot, the
// others are adopted), and every item held when the request went out, not changed since and
// not in the answer, closed here as gone. An item changed meanwhile is left for the next round:
// an event that raced the answer is never undone by it. Planning the same answer twice gives a
// plan whose second application changes nothing.
#pragma once

#include "channels/registry.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cb::recovery {

struct ReconcilePlan {
    std::vector<channels::Item> refresh;  ///< the CMS's snapshots of items held here
    std::vector<channels::Item> adopt;    ///< items the CMS has and the registry does not
    std::vector<std::string> gone;        ///< IDs held, unchanged since the request, not at the CMS
};

/// `held_at_request`: item ID → version of the system's live items when getItems went out.
ReconcilePlan plan_reconcile(const std::string& system, std::vector<channels::Item> cms_items,
                             const std::unordered_map<std::string, std::uint64_t>& held_at_request,
                             const channels::Registry& registry);

/// One system's last reconciliation, as `status` shows it.
struct SystemReconcile {
    enum class State { none, running, done, failed };
    State state = State::none;
    std::string trigger;  ///< startup, available, operator
    std::optional<channels::TimePoint> started, finished;
    std::string error;  ///< why it failed
    std::size_t cms_items = 0, refreshed = 0, adopted = 0, gone = 0;
    std::size_t alive = 0, unknown = 0;  ///< orphans classified so
};
std::string_view to_string(SystemReconcile::State s);

/// The reconciliations of every system. Core only.
class ReconcileBook {
  public:
    /// Starts one for `system`; false if one is running already (it will answer for both).
    bool begin(const std::string& system, std::string trigger, channels::TimePoint now);
    SystemReconcile& at(const std::string& system) { return systems_[system]; }
    /// none (never ran), running (one system or more), done (the last of every system that ran
    /// succeeded), incomplete (one failed: its orphans stay unknown until it answers).
    std::string_view overall() const;
    const std::map<std::string, SystemReconcile>& systems() const { return systems_; }

  private:
    std::map<std::string, SystemReconcile> systems_;
};

}  // namespace cb::recovery
