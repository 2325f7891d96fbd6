#include "protocol/desktop_codec.hpp"

#include "channels/item.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cb::protocol {
namespace json = boost::json;

namespace {

struct Invalid {
    std::string field;
    std::string message;
};

class Fields {
  public:
    explicit Fields(const json::object& o) : o_(o) {}

    std::string text(const char* key, bool required, std::size_t max = 1024) const {
        auto* v = o_.if_contains(key);
        if (!v || v->is_null()) {
            if (required) throw Invalid{key, std::string("missing \"") + key + "\""};
            return {};
        }
        if (!v->is_string()) throw Invalid{key, std::string("\"") + key + "\" must be a string"};
        if (v->as_string().size() > max)
            throw Invalid{key, std::string("\"") + key + "\" is longer than " +
                                   std::to_string(max) + " bytes"};
        return std::string(v->as_string());
    }
    std::optional<std::string> optional_text(const char* key, std::size_t max) const {
        if (!o_.contains(key) || o_.at(key).is_null()) return std::nullopt;
        return text(key, true, max);
    }
    std::uint64_t number(const char* key, bool required) const {
        auto* v = o_.if_contains(key);
        if (!v) {
            if (required) throw Invalid{key, std::string("missing \"") + key + "\""};
            return 0;
        }
        if (v->is_uint64()) return v->as_uint64();
        if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
        throw Invalid{key, std::string("\"") + key + "\" must be a non-negative integer"};
    }
    std::vector<std::string> strings(const char* key) const {
        std::vector<std::string> out;
        auto* v = o_.if_contains(key);
        if (!v) return out;
        if (!v->is_array() || v->as_array().size() > 16)
            throw Invalid{key, std::string("\"") + key + "\" must be a list of strings"};
        for (auto& e : v->as_array()) {
            if (!e.is_string())
                throw Invalid{key, std::string("\"") + key + "\" must be a list of strings"};
            out.emplace_back(e.as_string());
        }
        return out;
    }
    const json::object& object() const { return o_; }

  private:
    const json::object& o_;
};

constexpr std::pair<std::string_view, DesktopType> kTypes[] = {
    {"hello", DesktopType::hello},
    {"heartbeat", DesktopType::heartbeat},
    {"logon", DesktopType::logon},
    {"logoff", DesktopType::logoff},
    {"setState", DesktopType::set_state},
    {"makeCall", DesktopType::make_call},
    {"command", DesktopType::command},
    {"monitor", DesktopType::monitor},
    {"ack", DesktopType::ack},
};

constexpr std::string_view kOps[] = {
    "answer", "hangup", "hold", "retrieve", "transfer",        "reject",
    "accept", "end",    "post", "close",    "setAttachedData", "wrapUpRequired"};

/// Finds a key that appears twice in one object (json::parse keeps the last one silently).
class DuplicateKeys {
  public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::optional<std::string> duplicate;

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) {
        keys_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, json::error_code&) {
        keys_.pop_back();
        return true;
    }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t, json::error_code&) { return true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        key_.append(s.data(), s.size());
        bool fresh = keys_.back().insert(key_).second;
        if (!fresh) {
            duplicate = key_;
            ec = json::error::syntax;  // stops the parse
        }
        key_.clear();
        return fresh;
    }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
    bool on_double(double, json::string_view, json::error_code&) { return true; }
    bool on_bool(bool, json::error_code&) { return true; }
    bool on_null(json::error_code&) { return true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

  private:
    std::vector<std::set<std::string>> keys_;  // one per open object
    std::string key_;
};

std::optional<std::string> duplicate_key(std::string_view text) {
    json::basic_parser<DuplicateKeys> p(json::parse_options{});
    json::error_code ec;
    p.write_some(false, text.data(), text.size(), ec);
    return p.handler().duplicate;
}

}  // namespace

std::variant<DesktopMessage, DesktopError> parse_desktop_message(std::string_view text) {
    json::error_code ec;
    auto v = json::parse(text, ec);
    if (ec) return DesktopError{true, {}, {}, "invalidMessage", "not JSON: " + ec.message()};
    // Which of two "agent" keys counts must not be left to the parser: refused.
    if (auto key = duplicate_key(text)) {
        std::string type;
        if (auto* t = v.is_object() ? v.as_object().if_contains("type") : nullptr;
            t && t->is_string())
            type = t->as_string();
        // Named as JSON (control characters escaped) and cut: this text reaches the log.
        auto named = channels::cut_utf8(json::serialize(json::string(*key)), 64);
        return DesktopError{true, {}, type, "invalidMessage", "the key " + named + " twice"};
    }
    if (!v.is_object()) return DesktopError{true, {}, {}, "invalidMessage", "not a JSON object"};
    auto& o = v.as_object();
    DesktopMessage m;
    if (auto* id = o.if_contains("id")) {
        // A number too large for a double reads as infinity, whose text cannot be read back
        // when the id is echoed: refused like any other id that is not a string or a number.
        if (!(id->is_string() || id->is_int64() || id->is_uint64() ||
              (id->is_double() && std::isfinite(id->get_double()))))
            return DesktopError{
                false, {}, {}, "invalidField", "\"id\" must be a string or a finite number"};
        m.id = json::serialize(*id);
    }
    auto* type = o.if_contains("type");
    if (!type || !type->is_string())
        return DesktopError{true, m.id, {}, "invalidMessage", "a message needs a string \"type\""};
    bool known = false;
    for (auto& [name, t] : kTypes)
        if (type->as_string() == name) {
            m.type = t;
            known = true;
        }
    if (!known)
        return DesktopError{false, m.id, std::string(type->as_string()), "unknownType",
                            "no message type \"" + std::string(type->as_string()) + "\""};
    Fields f(o);
    try {
        switch (m.type) {
            case DesktopType::hello: {
                m.agent = f.text("agent", true, 128);
                if (auto* r = o.if_contains("resume"); r && !r->is_null()) {
                    if (!r->is_object()) throw Invalid{"resume", "\"resume\" must be an object"};
                    Fields rf(r->as_object());
                    m.resume_session = rf.text("session", true, 128);
                    m.resume_last_seq = rf.number("lastSeq", true);
                    m.resume_key = rf.optional_text("key", 128);
                }
                // With the resume key of its last welcome a desktop may leave the password out.
                m.password = f.text("password", !m.resume_key, 1024);
                break;
            }
            case DesktopType::heartbeat:
                break;
            case DesktopType::logon:
                m.system = f.text("system", false, 128);
                m.address = f.text("address", false, 128);
                m.channels = f.strings("channels");
                for (auto& c : m.channels)
                    if (!channels::channel_from_string(c))
                        throw Invalid{"channels", "\"channels\": not a channel: " + c};
                break;
            case DesktopType::logoff:
                m.reason = f.text("reason", false, 256);
                break;
            case DesktopType::set_state: {
                m.state = f.text("state", true, 32);
                if (m.state != "ready" && m.state != "notReady" && m.state != "wrapUp")
                    throw Invalid{"state", "\"state\" must be ready, notReady or wrapUp"};
                auto* reason = o.if_contains("reason");
                if (reason && reason->is_string()) {
                    m.reason = std::string(reason->as_string());
                } else if (reason && !reason->is_null()) {
                    auto n = f.number("reason", false);
                    if (n > 0xffffffffu) throw Invalid{"reason", "\"reason\" is too large"};
                    m.reason_code = static_cast<std::uint32_t>(n);
                }
                break;
            }
            case DesktopType::make_call:
                m.to = f.text("to", true, 32);
                if (!channels::valid_e164(m.to))
                    throw Invalid{"to", "\"to\" must be an E.164 number such as +49301234"};
                m.attached_data = f.optional_text("attachedData", channels::kMaxAttachedDataBytes);
                break;
            case DesktopType::command: {
                m.item = f.text("item", true, 256);
                m.system = f.text("system", false, 128);
                m.op = f.text("op", true, 32);
                bool op_known = false;
                for (auto op : kOps)
                    op_known = op_known || op == m.op;
                if (!op_known) throw Invalid{"op", "no item operation \"" + m.op + "\""};
                const json::object empty;
                auto* args = o.if_contains("args");
                if (args && !args->is_null() && !args->is_object())
                    throw Invalid{"args", "\"args\" must be an object"};
                Fields a(args && args->is_object() ? args->as_object() : empty);
                if (m.op == "transfer") {
                    m.to = a.text("to", true, 128);
                    m.mode = a.text("mode", false, 16);
                    if (m.mode.empty()) m.mode = "blind";
                    if (m.mode != "blind" && m.mode != "consult")
                        throw Invalid{"mode", "\"mode\" must be blind or consult"};
                } else if (m.op == "post") {
                    m.text = a.text("text", true, channels::kMaxPostingBytes);
                } else if (m.op == "setAttachedData") {
                    m.attached_data = a.text("attachedData", true, channels::kMaxAttachedDataBytes);
                } else if (m.op == "reject") {
                    m.reason = a.text("reason", false, 256);
                }
                break;
            }
            case DesktopType::monitor:
                m.scope = f.text("scope", true, 140);
                if (m.scope != "all" && m.scope.rfind("system:", 0) != 0)
                    throw Invalid{"scope", "\"scope\" must be all or system:ID"};
                break;
            case DesktopType::ack:
                m.seq = f.number("seq", true);
                break;
        }
    } catch (const Invalid& e) {
        return DesktopError{false, m.id, std::string(type->as_string()), "invalidField", e.message};
    }
    return m;
}

std::string welcome_frame(const std::string& session, std::uint64_t seq, bool resumed,
                          std::uint64_t heartbeat_interval_s, const std::string& resume_key) {
    return json::serialize(json::object{{"type", "welcome"},
                                        {"session", session},
                                        {"seq", seq},
                                        {"resumed", resumed},
                                        {"heartbeatInterval", heartbeat_interval_s},
                                        {"resumeKey", resume_key}});
}

std::string snapshot_frame(std::uint64_t seq, const std::string& agent_json,
                           const std::string& items_json, bool resync) {
    std::string out = R"({"type":"snapshot","seq":)" + std::to_string(seq) + R"(,"agent":)";
    out += agent_json.empty() ? "null" : agent_json;
    out += R"(,"items":)" + items_json + R"(,"resync":)" + (resync ? "true" : "false") + "}";
    return out;
}

std::string event_frame(std::uint64_t seq, std::string_view event, std::string_view data) {
    std::string out;
    out.reserve(data.size() + event.size() + 48);
    out += R"({"type":"event","seq":)";
    out += std::to_string(seq);
    out += R"(,"event":")";
    out += event;  // one of the fixed event names: nothing to escape
    out += R"(","data":)";
    out += data;
    out += '}';
    return out;
}

std::string result_ok_frame(const std::string& id) {
    return R"({"type":"result","id":)" + (id.empty() ? std::string("null") : id) + R"(,"ok":true})";
}

std::string result_error_frame(const std::string& id, std::string_view code,
                               std::string_view message) {
    json::object o{{"type", "result"},
                   {"id", nullptr},
                   {"ok", false},
                   {"error", {{"code", code}, {"message", message}}}};
    if (!id.empty()) {
        json::error_code ec;
        auto value = json::parse(id, ec);  // the id's own text, as parse_desktop_message kept it
        if (!ec) o["id"] = std::move(value);
    }
    return json::serialize(o);
}

std::string heartbeat_frame(std::string_view server_time) {
    return json::serialize(json::object{{"type", "heartbeat"}, {"serverTime", server_time}});
}

std::string bye_frame(std::string_view reason) {
    return json::serialize(json::object{{"type", "bye"}, {"reason", reason}});
}

std::optional<std::string_view> cms_operation(std::string_view op, channels::Channel channel) {
    using channels::Channel;
    if (op == "setAttachedData") return "setAttachedData";
    if (op == "wrapUpRequired") return "wrapUpRequired";
    switch (channel) {
        case Channel::phone:
            if (op == "answer") return "answerCall";
            if (op == "hangup") return "hangupCall";
            if (op == "hold") return "holdCall";
            if (op == "retrieve") return "retrieveCall";
            if (op == "transfer") return "transferCall";
            if (op == "reject") return "rejectCall";
            break;
        case Channel::chat:
            if (op == "accept") return "acceptChat";
            if (op == "end") return "endChat";
            if (op == "post") return "postChatMessage";
            break;
        case Channel::email:
            if (op == "accept") return "acceptMessage";
            if (op == "close") return "closeMessage";
            break;
    }
    return std::nullopt;
}

}  // namespace cb::protocol
