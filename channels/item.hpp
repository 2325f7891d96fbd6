// The domain of commbroker: items (calls, chats, e-mails), chat postings, agent states, and the
// rules of PROTOCOL.md section 1 that every snapshot must keep. Plain C++ types: nothing here
// knows XML, JSON, SOAP or sockets. Pure functions; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cb::channels {

enum class Channel { phone, chat, email };

/// The states of all three channels; each channel uses its own subset.
enum class State {
    initiated,
    alerting,
    connected,
    held,
    disconnected,
    failed,
    offered,
    active,
    ended,
    closed
};

enum class AgentStateValue { logged_off, ready, not_ready, wrap_up };

std::string_view to_string(Channel c);
std::string_view to_string(State s);
std::string_view to_string(AgentStateValue s);
std::optional<Channel> channel_from_string(std::string_view s);
std::optional<State> state_from_string(std::string_view s);
std::optional<AgentStateValue> agent_state_from_string(std::string_view s);

/// True if `s` is a state of channel `c`.
bool state_belongs(Channel c, State s);
/// True if `s` ends the item (disconnected, failed, ended, closed).
bool is_terminal(State s);
/// True if a snapshot may move an item of channel `c` from `from` to `to`. Staying in a
/// non-terminal state is allowed (other fields changed).
bool move_allowed(Channel c, State from, State to);

struct Participant {
    std::string user_id;
    std::string role;  // agent, customer, supervisor, system
    std::string address;
    bool operator==(const Participant&) const = default;
};

struct ChatPosting {
    std::string chat_session_id;
    std::string chat_participant;
    std::string content_text;
    bool system_message = false;
    std::string post_date;
    bool operator==(const ChatPosting&) const = default;
};

struct Item {
    std::string system;  // the CMS the item belongs to (from its credentials, never the body)
    Channel channel = Channel::phone;
    std::string id;
    std::uint64_t version = 0;
    State state = State::initiated;
    std::optional<std::string> agent_id;
    std::optional<std::string> container_id;
    std::vector<Participant> participants;
    std::vector<std::string> capabilities;
    std::optional<std::string> attached_data;
    std::string changed_at;
    // phone
    std::string direction;
    std::vector<std::string> remote_numbers;
    std::string local_address;
    std::optional<std::string> queue;
    // chat
    std::string topic;
    std::string customer_name;
    std::vector<ChatPosting> postings;  // kept with the chat while it is active
    // email
    std::string folder;
    std::string originator;
    std::string subject;
    bool read = false;
    bool answered = false;
    // Not part of any snapshot: when the broker last took a change of it (set by the registry,
    // kept by the journal), so that an item nobody touches for too long becomes an orphan.
    std::chrono::system_clock::time_point touched{};
};

struct AgentState {
    std::string system;
    std::string user_id;
    AgentStateValue state = AgentStateValue::logged_off;
    std::uint32_t reason_code = 0;
    std::vector<std::string> addresses;
    std::vector<std::string> channels;  // phone, chat, email
    bool operator==(const AgentState&) const = default;
};

struct SubscriptionEnded {
    std::string system;
    std::string reason;
};

struct PostingEvent {
    std::string system;
    ChatPosting posting;
};

/// One inbound event of the IciBroker port, already converted from the wire.
using Event = std::variant<Item, PostingEvent, AgentState, SubscriptionEnded>;

/// A rule broken by a snapshot: the field it concerns and why.
struct FieldError {
    std::string field;
    std::string message;
};

/// Field limits of the contract.
inline constexpr std::size_t kMaxIdLength = 128;
inline constexpr std::size_t kMaxAttachedDataBytes = 64 * 1024;
inline constexpr std::size_t kMaxPostingBytes = 16 * 1024;

bool valid_item_id(std::string_view id);
/// "+" then 2 to 15 digits, the first not 0.
bool valid_e164(std::string_view number);
/// xsd:dateTime: YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm).
bool valid_date_time(std::string_view text);

/// `text` cut to at most `max_bytes` bytes at a UTF-8 character boundary, ending in "…" when
/// something was cut (`max_bytes` of at least 3 leaves room for it).
std::string cut_utf8(std::string text, std::size_t max_bytes);

/// `t` as xsd:dateTime in UTC with milliseconds, e.g. 2026-11-22T10:00:00.123Z.
std::string iso_utc(std::chrono::system_clock::time_point t = std::chrono::system_clock::now());

/// Checks the field rules of one snapshot (not its state move): the first rule broken, if any.
std::optional<FieldError> validate(const Item& item);
std::optional<FieldError> validate(const ChatPosting& posting);
std::optional<FieldError> validate(const AgentState& agent);

}  // namespace cb::channels
