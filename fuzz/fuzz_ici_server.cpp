// The IciBroker port as a CMS reaches it: the XML gate, the server codec's decode, the registry
// the decoded event is applied to, the JSON an accepted item is pushed to desktops as, the
// journal's record of it, and the response the broker writes back (which echoes the request's
// messageId).
#include "channels/item_json.hpp"
#include "channels/registry.hpp"
#include "protocol/ici_codec.hpp"
#include "protocol/xml_gate.hpp"
#include "recovery/stored_format.hpp"

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace cb::protocol;
namespace ch = cb::channels;

/// An item must come back from the journal's record of it unchanged (as desktops see it).
void check_stored_round_trip(ch::Item item) {
    item.postings.clear();  // stored one by one, not with the item
    auto record = cb::recovery::stored::encode(item);
    auto back = cb::recovery::stored::decode_item(record);
    auto json = boost::json::serialize(ch::to_json(item));
    if (!back || boost::json::serialize(ch::to_json(*back)) != json) {
        std::fprintf(stderr, "item does not survive the journal's record: %s\n", record.c_str());
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
    if (auto* item = std::get_if<ch::Item>(&decoded.event)) check_stored_round_trip(*item);
    if (auto* outcome = std::get_if<ch::Outcome>(&applied.result))
        (void)codec.encode_status(decoded.reply, *outcome);
    return 0;
}
