// The IciBroker port as a CMS reaches it: the XML gate, the server codec's decode, the registry
// the decoded event is applied to, the JSON an accepted item is journaled and pushed as, and the
// response the broker writes back (which echoes the request's messageId).
#include "channels/item_json.hpp"
#include "channels/registry.hpp"
#include "protocol/ici_codec.hpp"
#include "protocol/xml_gate.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace cb::protocol;
namespace ch = cb::channels;

/// An item must come back from its JSON form (the journal's and the desktops') unchanged.
void check_json_round_trip(const ch::Item& item) {
    auto json = boost::json::serialize(ch::to_json(item));
    auto back = ch::item_from_json(boost::json::parse(json));
    if (!back || boost::json::serialize(ch::to_json(*back)) != json) {
        std::fprintf(stderr, "item does not survive its JSON form: %s\n", json.c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(data), size);
    CodecLimits limits;
    (void)find_invalid_xml_text(body);
    (void)check_envelope(body, limits.gate, SoapVersion::v11);

    auto& codec = IciServerCodec::for_this_thread();
    auto result = codec.decode(body, "CMS-A", limits, SoapVersion::v11);
    if (auto* failed = std::get_if<DecodeFailed>(&result)) {
        (void)codec.encode_fault(failed->reply, failed->fault);
        return 0;
    }
    auto& decoded = std::get<DecodedEvent>(result);
    ch::Registry registry{ch::Registry::Limits{}};
    auto applied = registry.apply(decoded.event, ch::TimePoint{});
    if (auto* item = std::get_if<ch::Item>(&decoded.event)) check_json_round_trip(*item);
    if (auto* outcome = std::get_if<ch::Outcome>(&applied.result))
        (void)codec.encode_status(decoded.reply, *outcome);
    return 0;
}
