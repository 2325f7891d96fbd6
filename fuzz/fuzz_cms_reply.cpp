// The IciCms port from the broker's side: what it decodes from a CMS's response. The first byte
// of the input chooses the operation the response answers (modulo the number of operations, in
// the order of CmsOp); the rest is the response body. decode_reply() puts the XML gate in front of
// gSOAP.
#include "protocol/cms_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cb::protocol;
    if (size == 0) return 0;
    constexpr unsigned kOps = static_cast<unsigned>(CmsOp::get_items) + 1;
    auto op = static_cast<CmsOp>(data[0] % kOps);
    std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    auto& codec = CmsCodec::for_this_thread();
    (void)codec.decode_reply(op, body, "CMS-A");
    return 0;
}
