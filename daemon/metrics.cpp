#include "daemon/metrics.hpp"

namespace cb::daemon {

void Histogram::observe(std::uint64_t micros) {
    std::size_t i = 0;
    while (i < kBoundsMicros.size() && micros > kBoundsMicros[i])
        ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(micros, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
    std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        std::string le = i < kBoundsMicros.size()
                             ? std::to_string(static_cast<double>(kBoundsMicros[i]) / 1e6)
                             : "+Inf";
        out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
    }
    out += name + "_sum " + std::to_string(static_cast<double>(sum_.load()) / 1e6) + "\n";
    out += name + "_count " + std::to_string(count_.load()) + "\n";
    return out;
}

}  // namespace cb::daemon
