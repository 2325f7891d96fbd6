// The config parser on a whole file's text, as --check-config and a reload read it; a parsed
// config is also compared with itself the way a reload compares the running config.
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cb::config;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto result = parse(text, "fuzz.xml");
    if (result.config) (void)reload_diff(*result.config, *result.config);
    return 0;
}
