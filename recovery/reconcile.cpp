#include "recovery/reconcile.hpp"

#include <unordered_set>

namespace cb::recovery {

ReconcilePlan plan_reconcile(const std::string& system, std::vector<channels::Item> cms_items,
                             const std::unordered_map<std::string, std::uint64_t>& held_at_request,
                             const channels::Registry& registry) {
    ReconcilePlan plan;
    std::unordered_set<std::string> at_cms;
    for (auto& item : cms_items) {
        item.system = system;  // from the link that asked, never the body
        at_cms.insert(item.id);
        if (registry.find(system, item.id))
            plan.refresh.push_back(std::move(item));
        else
            plan.adopt.push_back(std::move(item));
    }
    for (auto& [id, version] : held_at_request) {
        if (at_cms.count(id)) continue;
        const auto* now = registry.find(system, id);
        if (now && now->version == version) plan.gone.push_back(id);
    }
    return plan;
}

std::string_view to_string(SystemReconcile::State s) {
    switch (s) {
        case SystemReconcile::State::none:
            return "none";
        case SystemReconcile::State::running:
            return "running";
        case SystemReconcile::State::done:
            return "done";
        case SystemReconcile::State::failed:
            return "failed";
    }
    return "?";
}

bool ReconcileBook::begin(const std::string& system, std::string trigger, channels::TimePoint now) {
    auto& s = systems_[system];
    if (s.state == SystemReconcile::State::running) return false;
    s = SystemReconcile{};
    s.state = SystemReconcile::State::running;
    s.trigger = std::move(trigger);
    s.started = now;
    return true;
}

std::string_view ReconcileBook::overall() const {
    bool any = false, failed = false;
    for (auto& [id, s] : systems_) {
        if (s.state == SystemReconcile::State::running) return "running";
        if (s.state == SystemReconcile::State::failed) failed = true;
        if (s.state != SystemReconcile::State::none) any = true;
    }
    if (!any) return "none";
    return failed ? "incomplete" : "done";
}

}  // namespace cb::recovery
