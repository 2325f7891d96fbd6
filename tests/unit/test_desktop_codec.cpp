// The desktop JSON codec: request ids are echoed as they came, and ids that cannot be echoed are
// refused.
#include "protocol/desktop_codec.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

using namespace cb::protocol;
namespace json = boost::json;

TEST_CASE("a string or a number id is echoed in the result, ok or error") {
    for (std::string id : {"\"r-1\"", "7", "-3", "18446744073709551615", "2.5"}) {
        auto parsed = parse_desktop_message(R"({"type":"dance","id":)" + id + "}");
        REQUIRE(std::holds_alternative<DesktopError>(parsed));
        auto& error = std::get<DesktopError>(parsed);
        CHECK(error.code == "unknownType");
        auto frame = json::parse(result_error_frame(error.id, error.code, error.message));
        CHECK(frame.at("id") == json::parse(id));
        CHECK(json::parse(result_ok_frame(error.id)).at("id") == json::parse(id));
    }
}

TEST_CASE("an id beyond the range of a number is an invalid field, answered with a null id") {
    // Found by fuzz_desktop_json: 1e400 reads as infinity, whose text could not be read back.
    for (std::string id : {"1e400", "-1e400"}) {
        auto parsed = parse_desktop_message(R"({"type":"heartbeat","id":)" + id + "}");
        REQUIRE(std::holds_alternative<DesktopError>(parsed));
        auto& error = std::get<DesktopError>(parsed);
        CHECK_FALSE(error.fatal);
        CHECK(error.code == "invalidField");
        CHECK(error.id.empty());
        auto frame = json::parse(result_error_frame(error.id, error.code, error.message));
        CHECK(frame.at("id").is_null());
    }
}

TEST_CASE("an error result whose id is not JSON text is written with a null id") {
    auto frame = json::parse(result_error_frame("1e99999x", "invalidField", "m"));
    CHECK(frame.at("id").is_null());
    CHECK(frame.at("ok") == false);
}

TEST_CASE("a key twice in one object is refused, wherever the object is") {
    auto refused = [](const std::string& text) {
        auto parsed = parse_desktop_message(text);
        REQUIRE(std::holds_alternative<DesktopError>(parsed));
        return std::get<DesktopError>(parsed);
    };
    auto e = refused(R"({"type":"hello","agent":"alice","password":"x","agent":"root"})");
    CHECK(e.fatal);
    CHECK(e.type == "hello");  // answered as a bad hello
    CHECK(e.message.find("\"agent\"") != std::string::npos);
    // Escapes do not hide a twin: "\u0061gent" is "agent".
    CHECK(refused(R"({"type":"hello","agent":"a","\u0061gent":"b","password":"x"})").fatal);
    e = refused(R"({"type":"command","item":"c-1","op":"transfer","args":{"to":"1","to":"2"}})");
    CHECK(e.message.find("\"to\"") != std::string::npos);
    // The same key in two different objects is fine.
    auto ok = parse_desktop_message(
        R"({"type":"logon","system":"CMS-A","channels":["phone"],"x":{"system":"y"}})");
    if (auto* err = std::get_if<DesktopError>(&ok))
        CHECK(err->message.find("twice") == std::string::npos);
}
