// The desktop protocol's JSON (PROTOCOL.md section 3): client messages parsed and checked, and
// the broker's frames written. Pure functions; any thread (the WebSocket session's strand).
#pragma once

#include "channels/item.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cb::protocol {

enum class DesktopType {
    hello,
    heartbeat,
    logon,
    logoff,
    set_state,
    make_call,
    command,
    monitor,
    ack
};

/// One client message. Only the fields of its type are set.
struct DesktopMessage {
    DesktopType type = DesktopType::heartbeat;
    std::string id;  ///< the request's `id` as JSON text (echoed in `result`), "" if none
    // hello
    std::string agent;
    std::string password;
    std::optional<std::string> resume_session;
    std::uint64_t resume_last_seq = 0;
    std::optional<std::string> resume_key;  ///< the resumeKey of the session's last welcome
    // logon, logoff, setState
    std::string system;
    std::string address;
    std::vector<std::string> channels;
    std::string reason;
    std::string state;
    std::uint32_t reason_code = 0;
    // makeCall, command
    std::string to;
    std::optional<std::string> attached_data;
    std::string item;
    std::string op;
    std::string mode;
    std::string text;
    // monitor, ack
    std::string scope;
    std::uint64_t seq = 0;
};

/// A message that cannot be taken. `fatal` when it is not even a JSON object with a `type`
/// (answered with bye protocolError); otherwise a `result` error for the request `id`.
struct DesktopError {
    bool fatal = false;
    std::string id;
    std::string type;  ///< the message's `type` when it had a string one
    std::string code;  ///< invalidMessage, unknownType, invalidField
    std::string message;
};

std::variant<DesktopMessage, DesktopError> parse_desktop_message(std::string_view text);

// ---- frames, broker → desktop ----
std::string welcome_frame(const std::string& session, std::uint64_t seq, bool resumed,
                          std::uint64_t heartbeat_interval_s, const std::string& resume_key);
/// `agent_json` and `items_json` are JSON texts (objects; an array).
std::string snapshot_frame(std::uint64_t seq, const std::string& agent_json,
                           const std::string& items_json, bool resync);
std::string event_frame(std::uint64_t seq, std::string_view event, std::string_view data);
std::string result_ok_frame(const std::string& id);
std::string result_error_frame(const std::string& id, std::string_view code,
                               std::string_view message);
std::string heartbeat_frame(std::string_view server_time);
std::string bye_frame(std::string_view reason);

/// The CMS item operation of a desktop `command` op on an item of `channel`, e.g. "answer" on a
/// call is "answerCall"; nullopt if the op does not apply to that channel.
std::optional<std::string_view> cms_operation(std::string_view op, channels::Channel channel);

}  // namespace cb::protocol
