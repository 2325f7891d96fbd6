#include "channels/item.hpp"

#include <cstdio>

#include <algorithm>
#include <array>
#include <cctype>

namespace cb::channels {
namespace {

constexpr std::array<std::string_view, 10> kStateNames = {
    "initiated", "alerting", "connected", "held",  "disconnected",
    "failed",    "offered",  "active",    "ended", "closed"};
constexpr std::array<std::string_view, 3> kChannelNames = {"phone", "chat", "email"};
constexpr std::array<std::string_view, 4> kAgentStateNames = {"loggedOff", "ready", "notReady",
                                                              "wrapUp"};

template <typename E, std::size_t N>
std::optional<E> lookup(const std::array<std::string_view, N>& names, std::string_view s) {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == s) return static_cast<E>(i);
    return std::nullopt;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool digits(std::string_view s, std::size_t pos, std::size_t n) {
    if (pos + n > s.size()) return false;
    for (std::size_t i = pos; i < pos + n; ++i)
        if (!is_digit(s[i])) return false;
    return true;
}

}  // namespace

std::string_view to_string(Channel c) {
    return kChannelNames[static_cast<std::size_t>(c)];
}
std::string_view to_string(State s) {
    return kStateNames[static_cast<std::size_t>(s)];
}
std::string_view to_string(AgentStateValue s) {
    return kAgentStateNames[static_cast<std::size_t>(s)];
}
std::optional<Channel> channel_from_string(std::string_view s) {
    return lookup<Channel>(kChannelNames, s);
}
std::optional<State> state_from_string(std::string_view s) {
    return lookup<State>(kStateNames, s);
}
std::optional<AgentStateValue> agent_state_from_string(std::string_view s) {
    return lookup<AgentStateValue>(kAgentStateNames, s);
}

bool state_belongs(Channel c, State s) {
    switch (c) {
        case Channel::phone:
            return s == State::initiated || s == State::alerting || s == State::connected ||
                   s == State::held || s == State::disconnected || s == State::failed;
        case Channel::chat:
            return s == State::offered || s == State::active || s == State::ended;
        case Channel::email:
            return s == State::offered || s == State::active || s == State::closed;
    }
    return false;
}

bool is_terminal(State s) {
    return s == State::disconnected || s == State::failed || s == State::ended ||
           s == State::closed;
}

bool move_allowed(Channel c, State from, State to) {
    if (!state_belongs(c, from) || !state_belongs(c, to) || is_terminal(from)) return false;
    if (from == to) return true;
    switch (c) {
        case Channel::phone:
            switch (from) {
                case State::initiated:
                    return to == State::alerting || to == State::connected || to == State::failed ||
                           to == State::disconnected;
                case State::alerting:
                    return to == State::connected || to == State::disconnected ||
                           to == State::failed;
                case State::connected:
                    return to == State::held || to == State::disconnected;
                case State::held:
                    return to == State::connected || to == State::disconnected;
                default:
                    return false;
            }
        case Channel::chat:
        case Channel::email: {
            State last = c == Channel::chat ? State::ended : State::closed;
            if (from == State::offered) return to == State::active || to == last;
            if (from == State::active) return to == last;
            return false;
        }
    }
    return false;
}

bool valid_item_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxIdLength) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
               c == '@' || c == '-';
    });
}

bool valid_e164(std::string_view n) {
    if (n.size() < 3 || n.size() > 16 || n[0] != '+' || n[1] == '0') return false;
    return std::all_of(n.begin() + 1, n.end(), is_digit);
}

bool valid_date_time(std::string_view s) {
    // YYYY-MM-DDThh:mm:ss
    if (!digits(s, 0, 4) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' ||
        !digits(s, 8, 2) || s[10] != 'T' || !digits(s, 11, 2) || s[13] != ':' ||
        !digits(s, 14, 2) || s[16] != ':' || !digits(s, 17, 2))
        return false;
    auto num = [&](std::size_t pos) { return (s[pos] - '0') * 10 + (s[pos + 1] - '0'); };
    if (num(5) < 1 || num(5) > 12 || num(8) < 1 || num(8) > 31 || num(11) > 23 || num(14) > 59 ||
        num(17) > 60)
        return false;
    std::size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        while (pos < s.size() && is_digit(s[pos]))
            ++pos;
        if (pos == start || pos - start > 9) return false;
    }
    if (pos == s.size()) return false;  // a time zone is required
    if (s[pos] == 'Z') return pos + 1 == s.size();
    if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && digits(s, pos + 1, 2) &&
        s[pos + 3] == ':' && digits(s, pos + 4, 2))
        return num(pos + 1) <= 14 && num(pos + 4) <= 59;
    return false;
}

std::optional<FieldError> validate(const Item& item) {
    if (!valid_item_id(item.id))
        return FieldError{"id", "must be 1-128 characters of [A-Za-z0-9._:@-]"};
    if (!state_belongs(item.channel, item.state))
        return FieldError{"state", std::string(to_string(item.state)) + " is not a state of a " +
                                       std::string(to_string(item.channel)) + " item"};
    if (item.agent_id && item.agent_id->size() > kMaxIdLength)
        return FieldError{"agentId", "longer than 128 characters"};
    if (item.attached_data && item.attached_data->size() > kMaxAttachedDataBytes)
        return FieldError{"attachedData", "larger than 64 KiB"};
    if (!valid_date_time(item.changed_at))
        return FieldError{"changedAt", "not an xsd:dateTime with a time zone"};
    if (item.channel == Channel::phone) {
        for (auto& n : item.remote_numbers)
            if (!valid_e164(n))
                return FieldError{"remoteNumbers",
                                  "\"" + n + "\" is not an E.164 number (+ and 2-15 digits)"};
        if (!valid_e164(item.local_address))
            return FieldError{"localAddress",
                              "\"" + item.local_address + "\" is not an E.164 number"};
        if (item.direction != "inbound" && item.direction != "outbound" &&
            item.direction != "internal")
            return FieldError{"direction", "must be inbound, outbound or internal"};
    }
    for (auto& p : item.participants)
        if (p.role != "agent" && p.role != "customer" && p.role != "supervisor" &&
            p.role != "system")
            return FieldError{
                "participants",
                "role \"" + p.role + "\" is not agent, customer, supervisor or system"};
    return std::nullopt;
}

std::optional<FieldError> validate(const ChatPosting& p) {
    if (!valid_item_id(p.chat_session_id))
        return FieldError{"chatSessionId", "must be 1-128 characters of [A-Za-z0-9._:@-]"};
    if (p.content_text.size() > kMaxPostingBytes)
        return FieldError{"contentText", "larger than 16 KiB"};
    if (!valid_date_time(p.post_date))
        return FieldError{"postDate", "not an xsd:dateTime with a time zone"};
    return std::nullopt;
}

std::optional<FieldError> validate(const AgentState& a) {
    if (!valid_item_id(a.user_id))
        return FieldError{"userId", "must be 1-128 characters of [A-Za-z0-9._:@-]"};
    for (auto& c : a.channels)
        if (!channel_from_string(c))
            return FieldError{"channels", "\"" + c + "\" is not phone, chat or email"};
    return std::nullopt;
}

std::string cut_utf8(std::string text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return text;
    constexpr std::string_view kEllipsis = "\xe2\x80\xa6";  // U+2026
    bool room = max_bytes >= kEllipsis.size();
    std::size_t keep = room ? max_bytes - kEllipsis.size() : max_bytes;
    // Back off continuation bytes (10xxxxxx) so that no character is cut in two.
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80)
        --keep;
    text.resize(keep);
    if (room) text += kEllipsis;
    return text;
}

std::string iso_utc(std::chrono::system_clock::time_point t) {
    // By the calendar arithmetic of <chrono>, not gmtime_r and printf: every heartbeat answer
    // and every event carries one, and glibc's gmtime_r takes the time zone lock.
    using namespace std::chrono;
    auto ms = floor<milliseconds>(t);
    auto day = floor<days>(ms);
    year_month_day date{day};
    hh_mm_ss time{ms - day};
    int y = static_cast<int>(date.year());
    if (y < 0 || y > 9999) {  // more than ISO 8601's four digits: written as they are
        char wide[64];
        std::snprintf(
            wide, sizeof wide, "%d-%02u-%02uT%02d:%02d:%02d.%03dZ", y,
            static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
            static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
            static_cast<int>(time.seconds().count()), static_cast<int>(time.subseconds().count()));
        return wide;
    }
    char buf[] = "0000-00-00T00:00:00.000Z";
    auto put = [&buf](std::size_t at, unsigned value, int digits) {
        for (int i = digits - 1; i >= 0; --i, value /= 10)
            buf[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    };
    put(0, static_cast<unsigned>(y), 4);
    put(5, static_cast<unsigned>(date.month()), 2);
    put(8, static_cast<unsigned>(date.day()), 2);
    put(11, static_cast<unsigned>(time.hours().count()), 2);
    put(14, static_cast<unsigned>(time.minutes().count()), 2);
    put(17, static_cast<unsigned>(time.seconds().count()), 2);
    put(20, static_cast<unsigned>(time.subseconds().count()), 3);
    return std::string(buf, sizeof buf - 1);
}

}  // namespace cb::channels
