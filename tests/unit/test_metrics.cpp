// The SOAP counters: one per enumerator of Operation × Outcome and of FaultCode, each rendered.
#include "daemon/metrics.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace cb::daemon;
namespace ch = cb::channels;
namespace proto = cb::protocol;

TEST_CASE("every operation, outcome and fault code has its own counter and its line in /metrics") {
    SoapMetrics m;
    // Each counter gets a different number of counts, so one counter standing for two shows.
    std::uint64_t n = 0;
    for (std::size_t o = 0; o < proto::kOperationCount; ++o)
        for (std::size_t c = 0; c < ch::kOutcomeCount; ++c) {
            ++n;
            for (std::uint64_t i = 0; i < n; ++i)
                m.count_event(static_cast<proto::Operation>(o), static_cast<ch::Outcome>(c));
        }
    for (std::size_t f = 0; f < proto::kFaultCodeCount; ++f)
        for (std::uint64_t i = 0; i < 100 + f; ++i)
            m.count_fault(static_cast<proto::FaultCode>(f));

    auto text = m.render();
    std::set<std::string> lines;
    n = 0;
    for (std::size_t o = 0; o < proto::kOperationCount; ++o)
        for (std::size_t c = 0; c < ch::kOutcomeCount; ++c) {
            ++n;
            auto op = static_cast<proto::Operation>(o);
            auto outcome = static_cast<ch::Outcome>(c);
            CHECK(m.events(op, outcome) == n);
            auto line = "commbroker_soap_events_total{operation=\"" +
                        std::string(proto::to_string(op)) + "\",status=\"" +
                        std::string(ch::to_string(outcome)) + "\"} " + std::to_string(n) + "\n";
            CAPTURE(line);
            CHECK(text.find(line) != std::string::npos);
            CHECK(lines.insert(line.substr(0, line.find('}'))).second);  // names are distinct
        }
    for (std::size_t f = 0; f < proto::kFaultCodeCount; ++f) {
        auto code = static_cast<proto::FaultCode>(f);
        CHECK(m.faults(code) == 100 + f);
        auto line = "commbroker_soap_faults_total{code=\"" + std::string(proto::to_string(code)) +
                    "\"} " + std::to_string(100 + f) + "\n";
        CAPTURE(line);
        CHECK(text.find(line) != std::string::npos);
        CHECK(lines.insert(line.substr(0, line.find('}'))).second);
    }
    CHECK(text.find("\"?\"") == std::string::npos);  // every enumerator has a name
}
