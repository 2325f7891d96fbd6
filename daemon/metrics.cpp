#include "daemon/metrics.hpp"

#include <cassert>
#include <optional>

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

namespace {

std::size_t bucket_of(std::uint64_t ns, std::size_t sub) {
    if (ns < sub) return static_cast<std::size_t>(ns);
    int msb = 63 - __builtin_clzll(ns);
    int shift = msb - 4;  // keep the 4 bits below the top one
    auto mantissa = static_cast<std::size_t>((ns >> shift) & (sub - 1));
    return static_cast<std::size_t>(msb - 3) * sub + mantissa;
}

std::uint64_t bucket_upper(std::size_t index, std::size_t sub) {
    if (index < sub) return index;
    auto msb = index / sub + 3;
    auto mantissa = index % sub;
    auto shift = msb - 4;
    return ((std::uint64_t{1} << msb) | (std::uint64_t{mantissa} << shift)) +
           (std::uint64_t{1} << shift) - 1;
}

}  // namespace

void LatencyRecorder::observe(std::chrono::nanoseconds d) {
    auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count()));
    auto i = std::min(bucket_of(ns, kSub), buckets_.size() - 1);
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(ns, std::memory_order_relaxed);
    auto m = max_.load(std::memory_order_relaxed);
    while (ns > m && !max_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
    }
}

std::uint64_t LatencyRecorder::quantile(double q) const {
    auto total = count();
    if (total == 0) return 0;
    auto want = static_cast<std::uint64_t>(q * static_cast<double>(total));
    if (want == 0) want = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        seen += buckets_[i].load(std::memory_order_relaxed);
        if (seen >= want) return std::min(bucket_upper(i, kSub), max());
    }
    return max();
}

std::string LatencyRecorder::render(const std::string& name, const std::string& help) const {
    auto secs = [](std::uint64_t ns) { return std::to_string(static_cast<double>(ns) / 1e9); };
    std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " summary\n";
    out += name + "{quantile=\"0.5\"} " + secs(quantile(0.5)) + "\n";
    out += name + "{quantile=\"0.99\"} " + secs(quantile(0.99)) + "\n";
    out += name + "{quantile=\"1\"} " + secs(max()) + "\n";
    out += name + "_sum " + secs(sum_.load()) + "\n";
    out += name + "_count " + std::to_string(count()) + "\n";
    return out;
}

namespace {

/// The index of an enumerator in an array of `size` counters; nullopt (and an assertion) out of
/// range.
template <typename Enum>
std::optional<std::size_t> index_in(Enum e, std::size_t size) {
    auto i = static_cast<std::size_t>(e);
    assert(i < size);
    return i < size ? std::optional<std::size_t>(i) : std::nullopt;
}

}  // namespace

void SoapMetrics::count_event(protocol::Operation op, channels::Outcome outcome) {
    auto o = index_in(op, events_.size());
    auto c = index_in(outcome, channels::kOutcomeCount);
    if (o && c) events_[*o][*c].fetch_add(1, std::memory_order_relaxed);
}

void SoapMetrics::count_fault(protocol::FaultCode code) {
    if (auto i = index_in(code, faults_.size()))
        faults_[*i].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t SoapMetrics::events(protocol::Operation op, channels::Outcome outcome) const {
    auto o = index_in(op, events_.size());
    auto c = index_in(outcome, channels::kOutcomeCount);
    return o && c ? events_[*o][*c].load(std::memory_order_relaxed) : 0;
}

std::uint64_t SoapMetrics::faults(protocol::FaultCode code) const {
    auto i = index_in(code, faults_.size());
    return i ? faults_[*i].load(std::memory_order_relaxed) : 0;
}

std::string SoapMetrics::render() const {
    std::string out =
        "# HELP commbroker_soap_events_total Events of the IciBroker port by operation and "
        "status.\n"
        "# TYPE commbroker_soap_events_total counter\n";
    for (std::size_t o = 0; o < protocol::kOperationCount; ++o) {
        auto op = static_cast<protocol::Operation>(o);
        for (std::size_t c = 0; c < channels::kOutcomeCount; ++c) {
            auto outcome = static_cast<channels::Outcome>(c);
            out += "commbroker_soap_events_total{operation=\"" +
                   std::string(protocol::to_string(op)) + "\",status=\"" +
                   std::string(channels::to_string(outcome)) + "\"} " +
                   std::to_string(events(op, outcome)) + "\n";
        }
    }
    out +=
        "# HELP commbroker_soap_faults_total SOAP faults sent, by code.\n# TYPE "
        "commbroker_soap_faults_total counter\n";
    for (std::size_t i = 0; i < protocol::kFaultCodeCount; ++i) {
        auto code = static_cast<protocol::FaultCode>(i);
        out += "commbroker_soap_faults_total{code=\"" + std::string(protocol::to_string(code)) +
               "\"} " + std::to_string(faults(code)) + "\n";
    }
    out +=
        "# HELP commbroker_soap_unauthorized_total SOAP requests refused for their credentials.\n"
        "# TYPE commbroker_soap_unauthorized_total counter\ncommbroker_soap_unauthorized_total " +
        std::to_string(unauthorized.load()) + "\n";
    out += ack_latency.render("commbroker_soap_ack_seconds",
                              "From SOAP request read to durable response.");
    return out;
}

}  // namespace cb::daemon
