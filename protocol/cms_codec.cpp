#include "protocol/cms_codec.hpp"

#include "protocol/soap_convert.hpp"

#include <array>

namespace cb::protocol {
namespace ch = cb::channels;

namespace {

constexpr std::array<std::string_view, 21> kCmsOpNames = {
    "getSystemInfo",   "subscribe",     "unsubscribe",  "logon",           "logoff",
    "setWorkMode",     "makeCall",      "answerCall",   "hangupCall",      "holdCall",
    "retrieveCall",    "transferCall",  "rejectCall",   "acceptChat",      "endChat",
    "postChatMessage", "acceptMessage", "closeMessage", "setAttachedData", "wrapUpRequired",
    "getItems"};

/// The operations whose request is just an item ID: (enumerator, element name, ID field).
#define CB_ITEM_OPS(X)                          \
    X(answer_call, answerCall, callId)          \
    X(hangup_call, hangupCall, callId)          \
    X(hold_call, holdCall, callId)              \
    X(retrieve_call, retrieveCall, callId)      \
    X(accept_chat, acceptChat, chatId)          \
    X(end_chat, endChat, chatId)                \
    X(accept_message, acceptMessage, messageId) \
    X(close_message, closeMessage, messageId)   \
    X(wrap_up_required, wrapUpRequired, itemId)

/// The operations whose response is empty: those above and these.
// clang-format off
#define CB_EMPTY_REPLY_OPS(X)                                                      \
    X(unsubscribe, unsubscribe) X(logon, logon) X(logoff, logoff)                  \
    X(set_work_mode, setWorkMode) X(transfer_call, transferCall)                   \
    X(reject_call, rejectCall) X(post_chat_message, postChatMessage)               \
    X(set_attached_data, setAttachedData)
// clang-format on

/// Serializes one body element inside an envelope with the current header.
template <typename T>
int put_message(struct soap* s, const T& body, void (*serialize)(struct soap*, const T*),
                int (*put)(struct soap*, const T*, const char*, const char*), const char* tag) {
    serialize(s, &body);
    return soap_begin_send(s) || soap_envelope_begin_out(s) || soap_putheader(s) ||
           soap_body_begin_out(s) || put(s, &body, tag, "") || soap_body_end_out(s) ||
           soap_envelope_end_out(s) || soap_end_send(s);
}

std::string* new_string(struct soap* s, const std::string& v) {
    auto* p = soap_new_std__string(s);
    *p = v;
    return p;
}

/// The fault a failed read left in the context.
CmsFault fault_from_context(struct soap* s) {
    CmsFault f;
    // soap_recv_fault() leaves SOAP_CLI_FAULT or SOAP_SVR_FAULT for a Client or Server
    // fault it read, SOAP_FAULT for another code; anything else means the reply was unreadable.
    if (s->error != SOAP_FAULT && s->error != SOAP_CLI_FAULT && s->error != SOAP_SVR_FAULT) {
        soap_set_fault(s);
        const char* text = soap_fault_string(s);
        f.code = "malformed";
        f.message = std::string("unreadable response: ") + (text ? text : "?");
        return f;
    }
    const char* text = soap_fault_string(s);
    f.message = text ? text : "";
    f.sender = s->error != SOAP_SVR_FAULT;
    SOAP_ENV__Detail* detail = nullptr;
    if (s->fault) detail = s->fault->detail ? s->fault->detail : s->fault->SOAP_ENV__Detail;
    if (detail && detail->ici__iciFault) {
        f.code = detail->ici__iciFault->code;
        if (detail->ici__iciFault->field) f.field = *detail->ici__iciFault->field;
    } else {
        f.code = f.sender ? "rejected" : "failed";
    }
    return f;
}

}  // namespace

std::string_view to_string(CmsOp op) {
    return kCmsOpNames[static_cast<std::size_t>(op)];
}

std::optional<CmsOp> cms_op_from_name(std::string_view name) {
    for (std::size_t i = 0; i < kCmsOpNames.size(); ++i)
        if (kCmsOpNames[i] == name) return static_cast<CmsOp>(i);
    return std::nullopt;
}

bool idempotent(CmsOp op) {
    return op == CmsOp::get_system_info || op == CmsOp::get_items || op == CmsOp::subscribe;
}

struct CmsCodec::Impl : MemorySoap {
    ici__Context context;
    SOAP_ENV__Header header;
    std::string message_id;
    std::string user_id;

    /// Starts a message with the context header (fields left out when empty).
    void begin(SoapVersion version, const std::string& mid, const std::string& uid) {
        reset();
        soap_begin(soap);
        soap_set_version(soap, static_cast<short>(version));
        soap->encodingStyle = nullptr;
        soap->header = nullptr;
        message_id = mid;
        user_id = uid;
        if (!mid.empty() || !uid.empty()) {
            soap_default_SOAP_ENV__Header(soap, &header);
            context.soap_default(soap);
            context.messageId = mid.empty() ? nullptr : &message_id;
            context.userId = uid.empty() ? nullptr : &user_id;
            header.ici__context = &context;
            soap->header = &header;
        }
        soap_serializeheader(soap);
    }
    void end() {
        soap->header = nullptr;
        out = nullptr;  // the string it pointed at belongs to the encode that just ended
        reset();
    }
    /// Reads up to the first Body child; false if that already failed.
    bool open_body(std::string_view body) {
        read_from(body);
        return !(soap_begin_recv(soap) || soap_envelope_begin_in(soap) || soap_recv_header(soap) ||
                 soap_body_begin_in(soap));
    }
};

CmsCodec::CmsCodec() : impl_(std::make_unique<Impl>()) {}
CmsCodec::~CmsCodec() = default;

CmsCodec& CmsCodec::for_this_thread() {
    thread_local CmsCodec codec;
    return codec;
}

std::string CmsCodec::encode_request(const CmsRequest& r) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    m.out = &out;
    m.begin(SoapVersion::v11, r.message_id, r.user_id);
    switch (r.op) {
#define CB_SEND(NAME, FILL)                                                                 \
    {                                                                                       \
        cms__##NAME body;                                                                   \
        soap_default_cms__##NAME(s, &body);                                                 \
        FILL;                                                                               \
        put_message<cms__##NAME>(s, body, soap_serialize_cms__##NAME, soap_put_cms__##NAME, \
                                 "cms:" #NAME);                                             \
        break;                                                                              \
    }
        case CmsOp::get_system_info:
            CB_SEND(getSystemInfo, (void)0)
        case CmsOp::subscribe:
            CB_SEND(subscribe, (body.appId = r.app_id, body.appURL = r.app_url,
                                body.channels = soapconv::channels_to_soap(s, r.channels)))
        case CmsOp::unsubscribe:
            CB_SEND(unsubscribe, body.appId = r.app_id)
        case CmsOp::logon:
            CB_SEND(logon, (body.userId = r.user_id, body.address = r.address,
                            body.channels = soapconv::channels_to_soap(s, r.channels)))
        case CmsOp::logoff:
            CB_SEND(logoff, (body.userId = r.user_id, body.reason = r.reason))
        case CmsOp::set_work_mode:
            CB_SEND(setWorkMode, (body.userId = r.user_id, body.reasonCode = r.reason_code,
                                  soap_s2ici__WorkMode(s, r.state.c_str(), &body.state)))
        case CmsOp::make_call:
            CB_SEND(makeCall, (body.userId = r.user_id, body.from = r.from, body.to = r.to,
                               body.attachedData =
                                   r.attached_data ? new_string(s, *r.attached_data) : nullptr))
        case CmsOp::transfer_call:
            CB_SEND(transferCall, (body.callId = r.item_id, body.to = r.to,
                                   soap_s2ici__TransferMode(s, r.mode.c_str(), &body.mode)))
        case CmsOp::reject_call:
            CB_SEND(rejectCall, (body.callId = r.item_id, body.reason = r.reason))
        case CmsOp::post_chat_message:
            CB_SEND(postChatMessage, (body.chatId = r.item_id, body.text = r.text))
        case CmsOp::set_attached_data:
            CB_SEND(setAttachedData,
                    (body.itemId = r.item_id, body.attachedData = r.attached_data.value_or("")))
        case CmsOp::get_items:
            CB_SEND(getItems, body.userId = r.all_users ? nullptr : new_string(s, r.user_id))
#define CB_SEND_ITEM(OP, NAME, FIELD) \
    case CmsOp::OP:                   \
        CB_SEND(NAME, body.FIELD = r.item_id)
            CB_ITEM_OPS(CB_SEND_ITEM)
#undef CB_SEND_ITEM
#undef CB_SEND
    }
    m.end();
    return out;
}

std::variant<CmsReply, CmsFault> CmsCodec::decode_reply(CmsOp op, std::string_view body,
                                                        const std::string& system,
                                                        const GateLimits& limits) {
    // The gate of the broker's own port, without its tree: a getItems answer may be tens of
    // MB, and a tree of it several times that. Linear checks here; the depth is gSOAP's to
    // enforce (maxlevel) as it reads.
    if (auto bad = find_invalid_xml_text(body); bad != std::string_view::npos)
        return CmsFault{
            "malformed",
            "invalid UTF-8 or a character XML does not allow at byte " + std::to_string(bad),
            {},
            false};
    if (body.find("<!DOCTYPE") != std::string_view::npos ||
        body.find("<!ENTITY") != std::string_view::npos)
        return CmsFault{"malformed", "a DOCTYPE is not allowed", {}, false};
    Impl& m = *impl_;
    struct soap* s = m.soap;
    struct Reset {
        Impl& m;
        unsigned maxlevel;
        ~Reset() {
            m.soap->maxlevel = maxlevel;
            m.reset();
        }
    } reset_after{m, s->maxlevel};
    s->maxlevel = limits.max_depth;
    if (!m.open_body(body)) return fault_from_context(s);
    CmsReply reply;
    switch (op) {
#define CB_RECV(NAME, TAKE)                                                             \
    {                                                                                   \
        cms__##NAME##Response r;                                                        \
        soap_default_cms__##NAME##Response(s, &r);                                      \
        if (!soap_get_cms__##NAME##Response(s, &r, "ici:" #NAME "Response", nullptr) || \
            s->error) {                                                                 \
            soap_recv_fault(s, 0);                                                      \
            return fault_from_context(s);                                               \
        }                                                                               \
        TAKE;                                                                           \
        break;                                                                          \
    }
        case CmsOp::get_system_info:
            CB_RECV(getSystemInfo, (reply.name = r.name, reply.version = r.version,
                                    reply.state = soap_ici__SystemState2s(s, r.state)))
        case CmsOp::subscribe:
            CB_RECV(subscribe, reply.subscription_id = r.subscriptionId)
        case CmsOp::make_call:
            CB_RECV(makeCall, reply.call_id = r.callId)
        case CmsOp::get_items:
            CB_RECV(getItems, {
                if (r.calls)
                    for (auto& c : r.calls->item)
                        reply.items.push_back(soapconv::from_soap(s, c, system));
                if (r.chats)
                    for (auto& c : r.chats->item)
                        reply.items.push_back(soapconv::from_soap(s, c, system));
                if (r.messages)
                    for (auto& c : r.messages->item)
                        reply.items.push_back(soapconv::from_soap(s, c, system));
            })
#define CB_RECV_EMPTY(OP, NAME) \
    case CmsOp::OP:             \
        CB_RECV(NAME, (void)0)
#define CB_RECV_ITEM(OP, NAME, FIELD) CB_RECV_EMPTY(OP, NAME)
            CB_ITEM_OPS(CB_RECV_ITEM)
            CB_EMPTY_REPLY_OPS(CB_RECV_EMPTY)
#undef CB_RECV_ITEM
#undef CB_RECV_EMPTY
#undef CB_RECV
    }
    if (soap_body_end_in(s) || soap_envelope_end_in(s) || soap_end_recv(s))
        return fault_from_context(s);
    return reply;
}

std::variant<CmsRequest, CmsFault> CmsCodec::decode_request(std::string_view body,
                                                            const GateLimits& limits) {
    auto gate = check_envelope(body, limits, SoapVersion::v11);
    if (auto* refused = std::get_if<GateRefused>(&gate))
        return CmsFault{std::string(to_string(refused->fault.code)), refused->fault.message,
                        refused->fault.field, true};
    auto& passed = std::get<GatePassed>(gate);
    auto op = passed.operation_namespace == kIciNamespace ? cms_op_from_name(passed.operation)
                                                          : std::nullopt;
    if (!op) return CmsFault{"unknownOperation", "no operation " + passed.operation, {}, true};

    Impl& m = *impl_;
    struct soap* s = m.soap;
    struct Reset {
        Impl& m;
        ~Reset() { m.reset(); }
    } reset_after{m};
    auto failed = [&] {
        soap_set_fault(s);
        const char* text = soap_fault_string(s);
        std::string tag = s->tag;
        return CmsFault{"invalidField", text ? text : "invalid request", tag, true};
    };
    if (!m.open_body(body)) return failed();
    CmsRequest r;
    r.op = *op;
    if (s->header && s->header->ici__context) {
        if (auto* id = s->header->ici__context->messageId) r.message_id = *id;
        if (auto* id = s->header->ici__context->userId) r.user_id = *id;
    }
    switch (*op) {
#define CB_READ(NAME, TAKE)                                                       \
    {                                                                             \
        cms__##NAME q;                                                            \
        soap_default_cms__##NAME(s, &q);                                          \
        if (!soap_get_cms__##NAME(s, &q, "ici:" #NAME, nullptr)) return failed(); \
        TAKE;                                                                     \
        break;                                                                    \
    }
        case CmsOp::get_system_info:
            CB_READ(getSystemInfo, (void)0)
        case CmsOp::subscribe:
            CB_READ(subscribe, (r.app_id = q.appId, r.app_url = q.appURL,
                                r.channels = soapconv::channels_from_soap(s, q.channels)))
        case CmsOp::unsubscribe:
            CB_READ(unsubscribe, r.app_id = q.appId)
        case CmsOp::logon:
            CB_READ(logon, (r.user_id = q.userId, r.address = q.address,
                            r.channels = soapconv::channels_from_soap(s, q.channels)))
        case CmsOp::logoff:
            CB_READ(logoff, (r.user_id = q.userId, r.reason = q.reason))
        case CmsOp::set_work_mode:
            CB_READ(setWorkMode, (r.user_id = q.userId, r.reason_code = q.reasonCode,
                                  r.state = soap_ici__WorkMode2s(s, q.state)))
        case CmsOp::make_call:
            CB_READ(makeCall,
                    (r.user_id = q.userId, r.from = q.from, r.to = q.to,
                     r.attached_data = q.attachedData ? std::optional<std::string>(*q.attachedData)
                                                      : std::nullopt))
        case CmsOp::transfer_call:
            CB_READ(transferCall, (r.item_id = q.callId, r.to = q.to,
                                   r.mode = soap_ici__TransferMode2s(s, q.mode)))
        case CmsOp::reject_call:
            CB_READ(rejectCall, (r.item_id = q.callId, r.reason = q.reason))
        case CmsOp::post_chat_message:
            CB_READ(postChatMessage, (r.item_id = q.chatId, r.text = q.text))
        case CmsOp::set_attached_data:
            CB_READ(setAttachedData, (r.item_id = q.itemId, r.attached_data = q.attachedData))
        case CmsOp::get_items:
            CB_READ(getItems,
                    (r.all_users = !q.userId, r.user_id = q.userId ? *q.userId : r.user_id))
#define CB_READ_ITEM(OP, NAME, FIELD) \
    case CmsOp::OP:                   \
        CB_READ(NAME, r.item_id = q.FIELD)
            CB_ITEM_OPS(CB_READ_ITEM)
#undef CB_READ_ITEM
#undef CB_READ
    }
    if (soap_body_end_in(s) || soap_envelope_end_in(s) || soap_end_recv(s)) return failed();
    return r;
}

std::string CmsCodec::encode_reply(const CmsRequest& req, const CmsReply& reply) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    m.out = &out;
    m.begin(SoapVersion::v11, req.message_id, {});
    switch (req.op) {
#define CB_ANSWER(NAME, FILL)                                                          \
    {                                                                                  \
        cms__##NAME##Response r;                                                       \
        soap_default_cms__##NAME##Response(s, &r);                                     \
        FILL;                                                                          \
        put_message<cms__##NAME##Response>(s, r, soap_serialize_cms__##NAME##Response, \
                                           soap_put_cms__##NAME##Response,             \
                                           "cms:" #NAME "Response");                   \
        break;                                                                         \
    }
        case CmsOp::get_system_info:
            CB_ANSWER(getSystemInfo, (r.name = reply.name, r.version = reply.version,
                                      soap_s2ici__SystemState(s, reply.state.c_str(), &r.state)))
        case CmsOp::subscribe:
            CB_ANSWER(subscribe, r.subscriptionId = reply.subscription_id)
        case CmsOp::make_call:
            CB_ANSWER(makeCall, r.callId = reply.call_id)
        case CmsOp::get_items:
            CB_ANSWER(getItems, {
                r.calls = soap_new_ici__PhoneCallList(s);
                r.chats = soap_new_ici__ChatSessionList(s);
                r.messages = soap_new_ici__MailItemList(s);
                for (auto& i : reply.items) {
                    if (i.channel == ch::Channel::phone) {
                        r.calls->item.emplace_back();
                        soapconv::to_soap(s, i, r.calls->item.back());
                    } else if (i.channel == ch::Channel::chat) {
                        r.chats->item.emplace_back();
                        soapconv::to_soap(s, i, r.chats->item.back());
                    } else {
                        r.messages->item.emplace_back();
                        soapconv::to_soap(s, i, r.messages->item.back());
                    }
                }
            })
#define CB_ANSWER_EMPTY(OP, NAME) \
    case CmsOp::OP:               \
        CB_ANSWER(NAME, (void)0)
#define CB_ANSWER_ITEM(OP, NAME, FIELD) CB_ANSWER_EMPTY(OP, NAME)
            CB_ITEM_OPS(CB_ANSWER_ITEM)
            CB_EMPTY_REPLY_OPS(CB_ANSWER_EMPTY)
#undef CB_ANSWER_ITEM
#undef CB_ANSWER_EMPTY
#undef CB_ANSWER
    }
    m.end();
    return out;
}

std::string CmsCodec::encode_fault(const std::string& message_id, const CmsFault& fault) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    m.out = &out;
    m.begin(SoapVersion::v11, message_id, {});
    std::string detail = "<ici:iciFault><code>" + soapconv::xml_escape(fault.code) + "</code>";
    if (!fault.field.empty()) detail += "<field>" + soapconv::xml_escape(fault.field) + "</field>";
    detail += "</ici:iciFault>";
    if (fault.sender)
        soap_sender_fault(s, fault.message.c_str(), nullptr);
    else
        soap_receiver_fault(s, fault.message.c_str(), nullptr);
    *soap_faultdetail(s) = soap_strdup(s, detail.c_str());
    soap_send_fault(s);
    m.end();
    return out;
}

std::string CmsCodec::encode_event(const ch::Event& event, const std::string& message_id) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    m.out = &out;
    m.begin(SoapVersion::v11, message_id, {});
#define CB_EVENT(NAME, FILL)                                                                \
    {                                                                                       \
        ici__##NAME body;                                                                   \
        soap_default_ici__##NAME(s, &body);                                                 \
        FILL;                                                                               \
        put_message<ici__##NAME>(s, body, soap_serialize_ici__##NAME, soap_put_ici__##NAME, \
                                 "ici:" #NAME);                                             \
    }
    if (auto* item = std::get_if<ch::Item>(&event)) {
        if (item->channel == ch::Channel::phone)
            CB_EVENT(phoneCallChanged, (body.call = soap_new_ici__PhoneCall(s),
                                        soapconv::to_soap(s, *item, *body.call)))
        else if (item->channel == ch::Channel::chat)
            CB_EVENT(chatChanged, (body.chat = soap_new_ici__ChatSession(s),
                                   soapconv::to_soap(s, *item, *body.chat)))
        else
            CB_EVENT(messageChanged, (body.message = soap_new_ici__MailItem(s),
                                      soapconv::to_soap(s, *item, *body.message)))
    } else if (auto* p = std::get_if<ch::PostingEvent>(&event)) {
        CB_EVENT(chatNewPosting, (body.posting = soap_new_ici__ChatPosting(s),
                                  soapconv::to_soap(p->posting, *body.posting)))
    } else if (auto* a = std::get_if<ch::AgentState>(&event)) {
        CB_EVENT(userChanged,
                 (body.user = soap_new_ici__AgentState(s), soapconv::to_soap(s, *a, *body.user)))
    } else if (auto* e = std::get_if<ch::SubscriptionEnded>(&event)) {
        CB_EVENT(subscriptionEnded, body.reason = e->reason)
    }
#undef CB_EVENT
    m.end();
    return out;
}

std::variant<ch::Outcome, CmsFault> CmsCodec::decode_event_reply(std::string_view body) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    struct Reset {
        Impl& m;
        ~Reset() { m.reset(); }
    } reset_after{m};
    if (!m.open_body(body)) return fault_from_context(s);
    if (soap_peek_element(s) != SOAP_OK) return fault_from_context(s);
    std::optional<ici__EventStatus> status;
#define CB_STATUS(NAME)                                                               \
    if (!status && !soap_match_tag(s, s->tag, "ici:" #NAME "Response")) {             \
        ici__##NAME##Response r;                                                      \
        soap_default_ici__##NAME##Response(s, &r);                                    \
        if (!soap_get_ici__##NAME##Response(s, &r, "ici:" #NAME "Response", nullptr)) \
            return fault_from_context(s);                                             \
        status = r.status;                                                            \
    }
    CB_STATUS(phoneCallChanged)
    CB_STATUS(chatChanged)
    CB_STATUS(chatNewPosting)
    CB_STATUS(messageChanged)
    CB_STATUS(userChanged)
    CB_STATUS(subscriptionEnded)
#undef CB_STATUS
    if (!status) {
        s->error = SOAP_TAG_MISMATCH;  // what soap_recv_fault() expects to find in place of a reply
        soap_recv_fault(s, 0);
        return fault_from_context(s);
    }
    switch (*status) {
        case ici__EventStatus__duplicate:
            return ch::Outcome::duplicate;
        case ici__EventStatus__stale:
            return ch::Outcome::stale;
        default:
            return ch::Outcome::accepted;
    }
}

}  // namespace cb::protocol
