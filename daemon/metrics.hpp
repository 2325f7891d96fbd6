// Counters and histograms for /metrics (Prometheus text format). Lock-free; any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace cb::daemon {

/// A latency histogram with fixed bucket bounds in microseconds.
class Histogram {
  public:
    static constexpr std::array<std::uint64_t, 12> kBoundsMicros = {
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};
    void observe(std::uint64_t micros);
    std::string render(const std::string& name, const std::string& help) const;

  private:
    std::array<std::atomic<std::uint64_t>, kBoundsMicros.size() + 1> buckets_{};
    std::atomic<std::uint64_t> sum_{0};
    std::atomic<std::uint64_t> count_{0};
};

/// Events of the IciBroker port by operation (6) and outcome (accepted, duplicate, stale).
struct SoapMetrics {
    std::array<std::array<std::atomic<std::uint64_t>, 3>, 6> events{};
    std::array<std::atomic<std::uint64_t>, 6> faults{};  // by protocol::FaultCode
    std::atomic<std::uint64_t> unauthorized{0};
    Histogram ack_latency;  // request read -> response handed to the session (durable)
};

}  // namespace cb::daemon
