#include "channels/item.hpp"

#include <doctest/doctest.h>

using namespace cb::channels;

TEST_CASE("call moves follow the phone state machine") {
    CHECK(move_allowed(Channel::phone, State::initiated, State::alerting));
    CHECK(move_allowed(Channel::phone, State::alerting, State::connected));
    CHECK(move_allowed(Channel::phone, State::connected, State::held));
    CHECK(move_allowed(Channel::phone, State::held, State::connected));
    CHECK(move_allowed(Channel::phone, State::held, State::disconnected));
    CHECK(move_allowed(Channel::phone, State::connected, State::connected));
    CHECK_FALSE(move_allowed(Channel::phone, State::alerting, State::held));
    CHECK_FALSE(move_allowed(Channel::phone, State::connected, State::alerting));
    CHECK_FALSE(move_allowed(Channel::phone, State::connected, State::failed));
    CHECK_FALSE(move_allowed(Channel::phone, State::disconnected, State::connected));
    CHECK_FALSE(move_allowed(Channel::phone, State::alerting, State::active));
}

TEST_CASE("chat and mail moves follow their state machines") {
    CHECK(move_allowed(Channel::chat, State::offered, State::active));
    CHECK(move_allowed(Channel::chat, State::offered, State::ended));
    CHECK(move_allowed(Channel::chat, State::active, State::ended));
    CHECK_FALSE(move_allowed(Channel::chat, State::active, State::offered));
    CHECK_FALSE(move_allowed(Channel::chat, State::active, State::closed));
    CHECK(move_allowed(Channel::email, State::offered, State::closed));
    CHECK(move_allowed(Channel::email, State::active, State::closed));
    CHECK_FALSE(move_allowed(Channel::email, State::closed, State::active));
    CHECK(is_terminal(State::failed));
    CHECK(is_terminal(State::ended));
    CHECK_FALSE(is_terminal(State::held));
}

TEST_CASE("E.164 numbers need a plus and 2 to 15 digits, not starting with 0") {
    CHECK(valid_e164("+493012345678"));
    CHECK(valid_e164("+12"));
    CHECK_FALSE(valid_e164("493012345678"));
    CHECK_FALSE(valid_e164("+0301234"));
    CHECK_FALSE(valid_e164("+49 30 1234"));
    CHECK_FALSE(valid_e164("+1234567890123456"));
    CHECK_FALSE(valid_e164("+"));
}

TEST_CASE("dateTime needs a full date, time and zone") {
    CHECK(valid_date_time("2026-11-22T10:00:00Z"));
    CHECK(valid_date_time("2026-11-22T10:00:00.123+01:00"));
    CHECK_FALSE(valid_date_time("2026-11-22T10:00:00"));
    CHECK_FALSE(valid_date_time("2026-13-22T10:00:00Z"));
    CHECK_FALSE(valid_date_time("2026-11-22 10:00:00Z"));
    CHECK_FALSE(valid_date_time("yesterday"));
}

TEST_CASE("item IDs are 1-128 characters of the allowed set") {
    CHECK(valid_item_id("c-1001"));
    CHECK(valid_item_id("a.b_c:d@e-f"));
    CHECK_FALSE(valid_item_id(""));
    CHECK_FALSE(valid_item_id("has space"));
    CHECK_FALSE(valid_item_id(std::string(129, 'a')));
    CHECK(valid_item_id(std::string(128, 'a')));
}

TEST_CASE("text is cut at a character boundary and says so") {
    using cb::channels::cut_utf8;
    CHECK(cut_utf8("short", 10) == "short");
    CHECK(cut_utf8("exactly10!", 10) == "exactly10!");
    CHECK(cut_utf8("abcdefghijk", 10) == "abcdefg\xe2\x80\xa6");
    // "€" is 3 bytes: it is kept whole or left out, never cut in two.
    CHECK(cut_utf8("ab€€€", 7) == "ab\xe2\x80\xa6");
    CHECK(cut_utf8("ab€€€", 8) == "ab€\xe2\x80\xa6");
    CHECK(cut_utf8("ab€€€", 9) == "ab€\xe2\x80\xa6");
    CHECK(cut_utf8("abc", 2) == "ab");  // no room for the ellipsis
}

TEST_CASE("iso_utc writes UTC with milliseconds, on any day of the calendar") {
    using std::chrono::milliseconds;
    auto at = [](long long ms) { return std::chrono::system_clock::time_point(milliseconds(ms)); };
    CHECK(iso_utc(at(0)) == "1970-01-01T00:00:00.000Z");
    CHECK(iso_utc(at(1796624509123)) == "2026-12-07T06:21:49.123Z");
    CHECK(iso_utc(at(1709251199999)) == "2024-02-29T23:59:59.999Z");
    CHECK(iso_utc(at(1709251200000)) == "2024-03-01T00:00:00.000Z");
    CHECK(iso_utc(at(946684800000)) == "2000-01-01T00:00:00.000Z");
    CHECK(iso_utc(at(-1)) == "1969-12-31T23:59:59.999Z");  // before the epoch: floored
}
