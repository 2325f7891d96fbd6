#include "protocol/soap_convert.hpp"

#include <algorithm>
#include <cstring>

namespace cb::protocol {

MemorySoap::MemorySoap() {
    soap = soap_new2(SOAP_ENC_PLAIN | SOAP_XML_STRICT | SOAP_C_UTFSTRING,
                     SOAP_ENC_PLAIN | SOAP_C_UTFSTRING);
    soap_set_namespaces(soap, namespaces);
    soap->user = this;
    soap->frecv = [](struct soap* s, char* buf, std::size_t len) -> std::size_t {
        auto* self = static_cast<MemorySoap*>(s->user);
        std::size_t n = std::min(len, self->in.size() - self->pos);
        std::memcpy(buf, self->in.data() + self->pos, n);
        self->pos += n;
        return n;
    };
    soap->fsend = [](struct soap* s, const char* p, std::size_t n) -> int {
        auto* self = static_cast<MemorySoap*>(s->user);
        std::size_t room =
            self->out ? self->out_limit - std::min(self->out_limit, self->out->size()) : 0;
        if (self->out) self->out->append(p, std::min(n, room));
        if (n <= room) return SOAP_OK;
        self->out_failed = true;
        return SOAP_EOF;
    };
}

MemorySoap::~MemorySoap() {
    reset();
    soap_free(soap);
}

}  // namespace cb::protocol

namespace cb::protocol::soapconv {
namespace ch = cb::channels;

namespace {

std::vector<std::string> strings(const ici__StringList* l) {
    return l ? l->item : std::vector<std::string>{};
}

ici__StringList* string_list(struct soap* s, const std::vector<std::string>& in) {
    auto* l = soap_new_ici__StringList(s);
    l->item = in;
    return l;
}

std::optional<std::string> opt(const std::string* p) {
    return p ? std::optional<std::string>(*p) : std::nullopt;
}

std::string* opt_to_soap(struct soap* s, const std::optional<std::string>& v) {
    if (!v) return nullptr;
    auto* p = soap_new_std__string(s);
    *p = *v;
    return p;
}

std::vector<ch::Participant> participants(struct soap* s, const ici__ParticipantList* l) {
    std::vector<ch::Participant> out;
    if (!l) return out;
    for (auto& p : l->item)
        out.push_back({p.userId, soap_ici__Role2s(s, p.role), p.address});
    return out;
}

ici__ParticipantList* participants_to_soap(struct soap* s, const std::vector<ch::Participant>& in) {
    if (in.empty()) return nullptr;
    auto* l = soap_new_ici__ParticipantList(s);
    for (auto& p : in) {
        ici__Participant out;
        out.soap_default(s);
        out.userId = p.user_id;
        if (soap_s2ici__Role(s, p.role.c_str(), &out.role) != SOAP_OK) {
            s->error = SOAP_OK;
            out.role = ici__Role__system;
        }
        out.address = p.address;
        l->item.push_back(std::move(out));
    }
    return l;
}

template <typename T>
ch::Item common(const T& in, const std::string& system, ch::Channel channel) {
    ch::Item i;
    i.system = system;
    i.channel = channel;
    i.id = in.id;
    i.version = in.version;
    i.agent_id = opt(in.agentId);
    i.container_id = opt(in.containerId);
    i.capabilities = strings(in.capabilityList);
    i.attached_data = opt(in.attachedData);
    i.changed_at = in.changedAt;
    return i;
}

template <typename T>
void common_to_soap(struct soap* s, const ch::Item& in, T& out) {
    out.soap_default(s);
    out.id = in.id;
    out.version = in.version;
    out.agentId = opt_to_soap(s, in.agent_id);
    out.containerId = opt_to_soap(s, in.container_id);
    out.participants = participants_to_soap(s, in.participants);
    out.capabilityList = in.capabilities.empty() ? nullptr : string_list(s, in.capabilities);
    out.attachedData = opt_to_soap(s, in.attached_data);
    out.changedAt = in.changed_at;
}

/// The enum value named by the item's state; states were validated against the channel.
template <typename E>
E state_enum(struct soap* s, ch::State state, int (*parse)(struct soap*, const char*, E*)) {
    E e{};
    std::string name(ch::to_string(state));
    if (parse(s, name.c_str(), &e) != SOAP_OK) s->error = SOAP_OK;
    return e;
}

}  // namespace

ch::Item from_soap(struct soap* s, const ici__PhoneCall& c, const std::string& system) {
    auto i = common(c, system, ch::Channel::phone);
    i.state = *ch::state_from_string(soap_ici__CallState2s(s, c.state));
    i.participants = participants(s, c.participants);
    i.direction = soap_ici__Direction2s(s, c.direction);
    i.remote_numbers = strings(c.remoteNumbers);
    i.local_address = c.localAddress;
    i.queue = opt(c.queue);
    return i;
}

ch::Item from_soap(struct soap* s, const ici__ChatSession& c, const std::string& system) {
    auto i = common(c, system, ch::Channel::chat);
    i.state = *ch::state_from_string(soap_ici__ChatState2s(s, c.state));
    i.participants = participants(s, c.participants);
    i.topic = c.topic;
    i.customer_name = c.customerName;
    return i;
}

ch::Item from_soap(struct soap* s, const ici__MailItem& c, const std::string& system) {
    auto i = common(c, system, ch::Channel::email);
    i.state = *ch::state_from_string(soap_ici__MailState2s(s, c.state));
    i.participants = participants(s, c.participants);
    i.folder = c.folder;
    i.originator = c.originator;
    i.subject = c.subject;
    i.read = c.read;
    i.answered = c.answered;
    return i;
}

ch::ChatPosting from_soap(const ici__ChatPosting& p) {
    return ch::ChatPosting{p.chatSessionId, p.chatParticipant, p.contentText, p.systemMessage,
                           p.postDate};
}

ch::AgentState from_soap(struct soap* s, const ici__AgentState& u, const std::string& system) {
    ch::AgentState a;
    a.system = system;
    a.user_id = u.userId;
    a.state = *ch::agent_state_from_string(soap_ici__AgentStateValue2s(s, u.state));
    a.reason_code = u.reasonCode;
    a.addresses = strings(u.addresses);
    a.channels = channels_from_soap(s, u.channels);
    return a;
}

std::vector<std::string> channels_from_soap(struct soap* s, const ici__ChannelList* in) {
    std::vector<std::string> out;
    if (in)
        for (auto c : in->item)
            out.emplace_back(soap_ici__ChannelName2s(s, c));
    return out;
}

void to_soap(struct soap* s, const ch::Item& in, ici__PhoneCall& out) {
    common_to_soap(s, in, out);
    out.state = state_enum(s, in.state, soap_s2ici__CallState);
    if (soap_s2ici__Direction(s, in.direction.c_str(), &out.direction) != SOAP_OK) {
        s->error = SOAP_OK;
        out.direction = ici__Direction__inbound;
    }
    out.remoteNumbers = string_list(s, in.remote_numbers);
    out.localAddress = in.local_address;
    out.queue = opt_to_soap(s, in.queue);
}

void to_soap(struct soap* s, const ch::Item& in, ici__ChatSession& out) {
    common_to_soap(s, in, out);
    out.state = state_enum(s, in.state, soap_s2ici__ChatState);
    out.topic = in.topic;
    out.customerName = in.customer_name;
}

void to_soap(struct soap* s, const ch::Item& in, ici__MailItem& out) {
    common_to_soap(s, in, out);
    out.state = state_enum(s, in.state, soap_s2ici__MailState);
    out.folder = in.folder;
    out.originator = in.originator;
    out.subject = in.subject;
    out.read = in.read;
    out.answered = in.answered;
}

void to_soap(const ch::ChatPosting& in, ici__ChatPosting& out) {
    out.chatSessionId = in.chat_session_id;
    out.chatParticipant = in.chat_participant;
    out.contentText = in.content_text;
    out.systemMessage = in.system_message;
    out.postDate = in.post_date;
}

void to_soap(struct soap* s, const ch::AgentState& in, ici__AgentState& out) {
    out.soap_default(s);
    out.userId = in.user_id;
    std::string state(ch::to_string(in.state));
    if (soap_s2ici__AgentStateValue(s, state.c_str(), &out.state) != SOAP_OK) s->error = SOAP_OK;
    out.reasonCode = in.reason_code;
    out.addresses = in.addresses.empty() ? nullptr : string_list(s, in.addresses);
    out.channels = in.channels.empty() ? nullptr : channels_to_soap(s, in.channels);
}

std::string xml_escape(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (char c : in) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

ici__ChannelList* channels_to_soap(struct soap* s, const std::vector<std::string>& names) {
    auto* l = soap_new_ici__ChannelList(s);
    for (auto& n : names) {
        ici__ChannelName c;
        if (soap_s2ici__ChannelName(s, n.c_str(), &c) == SOAP_OK)
            l->item.push_back(c);
        else
            s->error = SOAP_OK;
    }
    return l;
}

}  // namespace cb::protocol::soapconv
