// Counters and histograms for /metrics (Prometheus text format). Lock-free; any thread.
#pragma once

#include "channels/registry.hpp"
#include "protocol/fault.hpp"
#include "protocol/ici_codec.hpp"

#include <array>
#include <atomic>
#include <chrono>
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

/// A latency recorder precise enough for percentiles: log-linear buckets (16 per power of two,
/// so within about 6 %) of nanoseconds, plus the exact maximum. Lock-free; any thread.
class LatencyRecorder {
  public:
    void observe(std::chrono::nanoseconds d);
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    /// The q-quantile (0 < q <= 1) in nanoseconds: an upper bound of its bucket.
    std::uint64_t quantile(double q) const;
    std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }
    /// Prometheus summary with quantiles 0.5, 0.99 and 1 (the maximum), in seconds.
    std::string render(const std::string& name, const std::string& help) const;

  private:
    static constexpr std::size_t kSub = 16;
    std::array<std::atomic<std::uint64_t>, 64 * kSub> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_{0};
    std::atomic<std::uint64_t> max_{0};
};

/// The IciBroker port's counters: events by operation and outcome, faults by code. There is a
/// counter for every enumerator, however many the enums get; they are reached only through
/// count_*() and the getters, which ignore a value out of range (only a `count` sentinel is).
class SoapMetrics {
  public:
    void count_event(protocol::Operation op, channels::Outcome outcome);
    void count_fault(protocol::FaultCode code);
    std::uint64_t events(protocol::Operation op, channels::Outcome outcome) const;
    std::uint64_t faults(protocol::FaultCode code) const;
    /// These counters and the ack latency in the Prometheus text format.
    std::string render() const;

    std::atomic<std::uint64_t> unauthorized{0};
    Histogram ack_latency;  // request read -> response handed to the session (durable)

  private:
    using Counter = std::atomic<std::uint64_t>;
    std::array<std::array<Counter, channels::kOutcomeCount>, protocol::kOperationCount> events_{};
    std::array<Counter, protocol::kFaultCodeCount> faults_{};
};

}  // namespace cb::daemon
