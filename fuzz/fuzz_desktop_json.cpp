// The desktop protocol as a desktop reaches it: a client frame's JSON parsed and checked, and the
// frame the broker answers with (which echoes the request's id and type).
#include "protocol/desktop_codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cb::protocol;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_desktop_message(text);
    if (auto* error = std::get_if<DesktopError>(&parsed)) {
        if (error->fatal)
            (void)bye_frame("protocolError");
        else
            (void)result_error_frame(error->id, error->code, error->message);
        return 0;
    }
    auto& message = std::get<DesktopMessage>(parsed);
    (void)result_ok_frame(message.id);
    if (message.type == DesktopType::command) {
        for (auto channel : {cb::channels::Channel::phone, cb::channels::Channel::chat,
                             cb::channels::Channel::email})
            (void)cms_operation(message.op, channel);
    }
    return 0;
}
