#include "recovery/stored_format.hpp"

#include <boost/json.hpp>

#include <type_traits>

namespace cb::recovery::stored {
namespace json = boost::json;
using namespace channels;

namespace {

// Each record's fields are listed once, below, and walked by the writer and by the reader, so
// the two directions cannot drift apart.

template <class V, class P>
void posting_fields(V& v, P& p) {
    v("chatSessionId", p.chat_session_id);
    v("chatParticipant", p.chat_participant);
    v("contentText", p.content_text);
    v("systemMessage", p.system_message);
    v("postDate", p.post_date);
}

template <class V, class A>
void agent_fields(V& v, A& a) {
    v("system", a.system);
    v("userId", a.user_id);
    v("state", a.state);
    v("reasonCode", a.reason_code);
    v("addresses", a.addresses);
    v("channels", a.channels);
}

template <class V, class I>
void item_fields(V& v, I& i) {
    v("system", i.system);
    v("channel", i.channel);  // read first: the fields below depend on it
    v("id", i.id);
    v("version", i.version);
    v("state", i.state);
    v("agentId", i.agent_id);
    v("containerId", i.container_id);
    v("participants", i.participants);
    v("capabilityList", i.capabilities);
    v("attachedData", i.attached_data);
    v("changedAt", i.changed_at);
    switch (i.channel) {
        case Channel::phone:
            v("direction", i.direction);
            v("remoteNumbers", i.remote_numbers);
            v("localAddress", i.local_address);
            v("queue", i.queue);
            break;
        case Channel::chat:
            v("topic", i.topic);
            v("customerName", i.customer_name);
            break;
        case Channel::email:
            v("folder", i.folder);
            v("originator", i.originator);
            v("subject", i.subject);
            v("read", i.read);
            v("answered", i.answered);
            break;
    }
}

template <class V, class P>
void participant_fields(V& v, P& p) {
    v("userId", p.user_id);
    v("role", p.role);
    v("address", p.address);
}

class Writer {
  public:
    json::object out;

    void operator()(const char* name, const std::string& v) { out[name] = v; }
    void operator()(const char* name, std::uint64_t v) { out[name] = v; }
    void operator()(const char* name, std::uint32_t v) { out[name] = v; }
    void operator()(const char* name, bool v) { out[name] = v; }
    void operator()(const char* name, const std::optional<std::string>& v) {
        if (v) out[name] = *v;  // absent, not null
    }
    void operator()(const char* name, const std::vector<std::string>& v) {
        json::array a;
        a.reserve(v.size());
        for (auto& s : v)
            a.emplace_back(s);
        out[name] = std::move(a);
    }
    void operator()(const char* name, const std::vector<Participant>& v) {
        json::array a;
        a.reserve(v.size());
        for (auto& p : v) {
            Writer w;
            participant_fields(w, p);
            a.emplace_back(std::move(w.out));
        }
        out[name] = std::move(a);
    }
    template <class E>
    requires std::is_enum_v<E>
    void operator()(const char* name, E v) { out[name] = to_string(v); }
};

/// Reads the fields the writer wrote, with type checks: a missing or mistyped field (a missing
/// list or optional is empty) makes the whole record unreadable.
class Reader {
  public:
    explicit Reader(const json::value& v) : obj_(v.if_object()), ok_(obj_ != nullptr) {}
    bool ok() const { return ok_; }

    void operator()(const char* name, std::string& v) {
        if (auto* j = get(name); j && j->is_string())
            v = j->get_string();
        else
            ok_ = false;
    }
    void operator()(const char* name, std::uint64_t& v) {
        auto* j = get(name);
        if (j && j->is_uint64())
            v = j->get_uint64();
        else if (j && j->is_int64() && j->get_int64() >= 0)
            v = static_cast<std::uint64_t>(j->get_int64());
        else
            ok_ = false;
    }
    void operator()(const char* name, std::uint32_t& v) {
        std::uint64_t wide = 0;
        (*this)(name, wide);
        if (wide > 0xffffffffu) ok_ = false;
        v = static_cast<std::uint32_t>(wide);
    }
    void operator()(const char* name, bool& v) {
        if (auto* j = get(name); j && j->is_bool())
            v = j->get_bool();
        else
            ok_ = false;
    }
    void operator()(const char* name, std::optional<std::string>& v) {
        auto* j = find(name);
        if (!j || j->is_null()) return;
        if (j->is_string())
            v = std::string(j->get_string());
        else
            ok_ = false;
    }
    void operator()(const char* name, std::vector<std::string>& v) {
        for (auto& e : list(name)) {
            if (!e.is_string()) {
                ok_ = false;
                return;
            }
            v.emplace_back(e.get_string());
        }
    }
    void operator()(const char* name, std::vector<Participant>& v) {
        for (auto& e : list(name)) {
            Reader r(e);
            Participant p;
            participant_fields(r, p);
            if (!r.ok()) {
                ok_ = false;
                return;
            }
            v.push_back(std::move(p));
        }
    }
    void operator()(const char* name, Channel& v) { parse(name, v, channel_from_string); }
    void operator()(const char* name, State& v) { parse(name, v, state_from_string); }
    void operator()(const char* name, AgentStateValue& v) {
        parse(name, v, agent_state_from_string);
    }

  private:
    const json::value* find(const char* name) const {
        return ok_ ? obj_->if_contains(name) : nullptr;
    }
    const json::value* get(const char* name) {
        auto* j = find(name);
        if (!j) ok_ = false;
        return j;
    }
    const json::array& list(const char* name) {
        static const json::array none;
        auto* j = find(name);
        if (!j) return none;
        if (auto* a = j->if_array()) return *a;
        ok_ = false;
        return none;
    }
    template <class E, class Parse>
    void parse(const char* name, E& v, Parse from_string) {
        std::string text;
        (*this)(name, text);
        if (!ok_) return;
        if (auto e = from_string(text))
            v = *e;
        else
            ok_ = false;
    }

    const json::object* obj_;
    bool ok_;
};

template <class T, class Fields>
std::string write(const T& record, Fields fields) {
    Writer w;
    fields(w, record);
    return json::serialize(w.out);
}

template <class T, class Fields>
std::optional<T> read(std::string_view text, Fields fields) {
    json::error_code ec;
    auto v = json::parse(text, ec);
    if (ec) return std::nullopt;
    Reader r(v);
    T record;
    fields(r, record);
    if (!r.ok()) return std::nullopt;
    return record;
}

}  // namespace

std::string encode(const Item& item) {
    return write(item, [](auto& v, auto& i) { item_fields(v, i); });
}
std::string encode(const ChatPosting& posting) {
    return write(posting, [](auto& v, auto& p) { posting_fields(v, p); });
}
std::string encode(const AgentState& agent) {
    return write(agent, [](auto& v, auto& a) { agent_fields(v, a); });
}

std::optional<Item> decode_item(std::string_view text) {
    return read<Item>(text, [](auto& v, auto& i) { item_fields(v, i); });
}
std::optional<ChatPosting> decode_posting(std::string_view text) {
    return read<ChatPosting>(text, [](auto& v, auto& p) { posting_fields(v, p); });
}
std::optional<AgentState> decode_agent(std::string_view text) {
    return read<AgentState>(text, [](auto& v, auto& a) { agent_fields(v, a); });
}

}  // namespace cb::recovery::stored
