// The IciCms port from a CMS's side (commbroker-cmss): the request it decodes from the broker,
// the reply or fault it writes back (echoing the request's fields), and the broker's answer to
// an event it decodes as a client of the IciBroker port.
#include "protocol/cms_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cb::protocol;
    std::string_view body(reinterpret_cast<const char*>(data), size);
    auto& codec = CmsCodec::for_this_thread();
    auto request = codec.decode_request(body, GateLimits{});
    if (auto* r = std::get_if<CmsRequest>(&request)) {
        CmsReply reply;
        reply.name = r->user_id;
        reply.call_id = r->item_id;
        (void)codec.encode_reply(*r, reply);
        (void)codec.encode_fault(r->message_id, CmsFault{"rejected", r->text, r->address, true});
    } else {
        auto& fault = std::get<CmsFault>(request);
        (void)codec.encode_fault("m-1", fault);
    }
    (void)codec.decode_event_reply(body);
    return 0;
}
