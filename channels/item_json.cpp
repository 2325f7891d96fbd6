#include "channels/item_json.hpp"

#include <boost/json.hpp>

namespace cb::channels {
namespace json = boost::json;

namespace {

json::array strings(const std::vector<std::string>& v) {
    json::array a;
    a.reserve(v.size());
    for (auto& s : v)
        a.emplace_back(s);
    return a;
}

void put_optional(json::object& o, const char* name, const std::optional<std::string>& v) {
    if (v) o[name] = *v;
}

/// Reads fields with type checks; any missing or mistyped field makes the whole read fail.
class Reader {
  public:
    explicit Reader(const json::value& v) : obj_(v.if_object()) { ok_ = obj_ != nullptr; }
    bool ok() const { return ok_; }

    std::string str(const char* name) {
        if (!ok_) return {};
        auto* v = obj_->if_contains(name);
        if (!v || !v->is_string()) {
            ok_ = false;
            return {};
        }
        return std::string(v->get_string());
    }
    std::optional<std::string> opt_str(const char* name) {
        if (!ok_) return std::nullopt;
        auto* v = obj_->if_contains(name);
        if (!v || v->is_null()) return std::nullopt;
        if (!v->is_string()) {
            ok_ = false;
            return std::nullopt;
        }
        return std::string(v->get_string());
    }
    std::uint64_t u64(const char* name) {
        if (!ok_) return 0;
        auto* v = obj_->if_contains(name);
        if (v && v->is_uint64()) return v->get_uint64();
        if (v && v->is_int64() && v->get_int64() >= 0)
            return static_cast<std::uint64_t>(v->get_int64());
        ok_ = false;
        return 0;
    }
    bool boolean(const char* name) {
        if (!ok_) return false;
        auto* v = obj_->if_contains(name);
        if (!v || !v->is_bool()) {
            ok_ = false;
            return false;
        }
        return v->get_bool();
    }
    std::vector<std::string> str_list(const char* name) {
        std::vector<std::string> out;
        if (!ok_) return out;
        auto* v = obj_->if_contains(name);
        if (!v) return out;
        auto* a = v->if_array();
        if (!a) {
            ok_ = false;
            return out;
        }
        for (auto& e : *a) {
            if (!e.is_string()) {
                ok_ = false;
                return {};
            }
            out.emplace_back(e.get_string());
        }
        return out;
    }
    const json::array* array(const char* name) {
        if (!ok_) return nullptr;
        auto* v = obj_->if_contains(name);
        if (!v) return nullptr;
        if (!v->is_array()) ok_ = false;
        return v->if_array();
    }
    void fail() { ok_ = false; }

  private:
    const json::object* obj_;
    bool ok_;
};

}  // namespace

json::object to_json(const ChatPosting& p) {
    return json::object{{"chatSessionId", p.chat_session_id},
                        {"chatParticipant", p.chat_participant},
                        {"contentText", p.content_text},
                        {"systemMessage", p.system_message},
                        {"postDate", p.post_date}};
}

json::object to_json(const Item& i) {
    json::object o;
    o["system"] = i.system;
    o["channel"] = to_string(i.channel);
    o["id"] = i.id;
    o["version"] = i.version;
    o["state"] = to_string(i.state);
    put_optional(o, "agentId", i.agent_id);
    put_optional(o, "containerId", i.container_id);
    json::array parts;
    for (auto& p : i.participants)
        parts.push_back(
            json::object{{"userId", p.user_id}, {"role", p.role}, {"address", p.address}});
    o["participants"] = std::move(parts);
    o["capabilityList"] = strings(i.capabilities);
    put_optional(o, "attachedData", i.attached_data);
    o["changedAt"] = i.changed_at;
    switch (i.channel) {
        case Channel::phone:
            o["direction"] = i.direction;
            o["remoteNumbers"] = strings(i.remote_numbers);
            o["localAddress"] = i.local_address;
            put_optional(o, "queue", i.queue);
            break;
        case Channel::chat: {
            o["topic"] = i.topic;
            o["customerName"] = i.customer_name;
            json::array posts;
            for (auto& p : i.postings)
                posts.push_back(to_json(p));
            o["postings"] = std::move(posts);
            break;
        }
        case Channel::email:
            o["folder"] = i.folder;
            o["originator"] = i.originator;
            o["subject"] = i.subject;
            o["read"] = i.read;
            o["answered"] = i.answered;
            break;
    }
    return o;
}

json::object to_json(const AgentState& a) {
    return json::object{{"system", a.system},
                        {"userId", a.user_id},
                        {"state", to_string(a.state)},
                        {"reasonCode", a.reason_code},
                        {"addresses", strings(a.addresses)},
                        {"channels", strings(a.channels)}};
}

std::optional<ChatPosting> posting_from_json(const json::value& v) {
    Reader r(v);
    ChatPosting p;
    p.chat_session_id = r.str("chatSessionId");
    p.chat_participant = r.str("chatParticipant");
    p.content_text = r.str("contentText");
    p.system_message = r.boolean("systemMessage");
    p.post_date = r.str("postDate");
    if (!r.ok()) return std::nullopt;
    return p;
}

std::optional<Item> item_from_json(const json::value& v) {
    Reader r(v);
    Item i;
    i.system = r.str("system");
    auto channel = channel_from_string(r.str("channel"));
    i.id = r.str("id");
    i.version = r.u64("version");
    auto state = state_from_string(r.str("state"));
    if (!channel || !state) return std::nullopt;
    i.channel = *channel;
    i.state = *state;
    i.agent_id = r.opt_str("agentId");
    i.container_id = r.opt_str("containerId");
    if (auto* parts = r.array("participants")) {
        for (auto& pv : *parts) {
            Reader pr(pv);
            Participant p{pr.str("userId"), pr.str("role"), pr.str("address")};
            if (!pr.ok()) return std::nullopt;
            i.participants.push_back(std::move(p));
        }
    }
    i.capabilities = r.str_list("capabilityList");
    i.attached_data = r.opt_str("attachedData");
    i.changed_at = r.str("changedAt");
    switch (i.channel) {
        case Channel::phone:
            i.direction = r.str("direction");
            i.remote_numbers = r.str_list("remoteNumbers");
            i.local_address = r.str("localAddress");
            i.queue = r.opt_str("queue");
            break;
        case Channel::chat:
            i.topic = r.str("topic");
            i.customer_name = r.str("customerName");
            if (auto* posts = r.array("postings")) {
                for (auto& pv : *posts) {
                    auto p = posting_from_json(pv);
                    if (!p) return std::nullopt;
                    i.postings.push_back(std::move(*p));
                }
            }
            break;
        case Channel::email:
            i.folder = r.str("folder");
            i.originator = r.str("originator");
            i.subject = r.str("subject");
            i.read = r.boolean("read");
            i.answered = r.boolean("answered");
            break;
    }
    if (!r.ok()) return std::nullopt;
    return i;
}

std::optional<AgentState> agent_from_json(const json::value& v) {
    Reader r(v);
    AgentState a;
    a.system = r.str("system");
    a.user_id = r.str("userId");
    auto state = agent_state_from_string(r.str("state"));
    auto code = r.u64("reasonCode");
    a.addresses = r.str_list("addresses");
    a.channels = r.str_list("channels");
    if (!r.ok() || !state || code > 0xffffffffu) return std::nullopt;
    a.state = *state;
    a.reason_code = static_cast<std::uint32_t>(code);
    return a;
}

boost::json::object to_json(const Item& item, const OrphanRecord& orphan) {
    auto o = to_json(item);
    o["reason"] = orphan.reason;
    o["orphanedAt"] = iso_utc(orphan.at);
    o["orphanedFrom"] = orphan.agent;
    o["classification"] = to_string(orphan.classification);
    o["checkedAt"] = nullptr;
    if (orphan.checked_at) o["checkedAt"] = iso_utc(*orphan.checked_at);
    return o;
}

}  // namespace cb::channels
