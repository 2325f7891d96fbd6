#include "protocol/ici_codec.hpp"

#include "protocol/soap_convert.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cassert>
#include <cstring>

// The one definition of gSOAP's global namespace table (libgsoap++ refers to it).
#include "IciBroker.nsmap"

namespace cb::protocol {
namespace ch = cb::channels;

std::string_view to_string(FaultCode c) {
    switch (c) {
        case FaultCode::malformed:
            return "malformed";
        case FaultCode::unknown_operation:
            return "unknownOperation";
        case FaultCode::invalid_field:
            return "invalidField";
        case FaultCode::invalid_transition:
            return "invalidTransition";
        case FaultCode::too_large:
            return "tooLarge";
        case FaultCode::unavailable:
            return "unavailable";
        case FaultCode::count:
            break;
    }
    return "?";
}

int http_status(SoapVersion v, const Fault& f) {
    if (f.code == FaultCode::unavailable) return 503;
    return v == SoapVersion::v12 ? 400 : 500;
}

namespace {

constexpr std::string_view kOperationNames[] = {"phoneCallChanged", "chatChanged",
                                                "chatNewPosting",   "messageChanged",
                                                "userChanged",      "subscriptionEnded"};
static_assert(std::size(kOperationNames) == kOperationCount, "a name for every operation");

/// Attached data is stored and forwarded untouched, but must be a well-formed XML document whose
/// root is ItemAttachedData.
std::optional<Fault> check_attached_data(const std::optional<std::string>& data) {
    if (!data || data->empty()) return std::nullopt;
    if (data->size() > ch::kMaxAttachedDataBytes)
        return Fault{FaultCode::invalid_field, "larger than 64 KiB", "attachedData"};
    pugi::xml_document doc;
    auto r = doc.load_buffer(data->data(), data->size(), pugi::parse_default | pugi::parse_doctype);
    if (!r)
        return Fault{FaultCode::invalid_field,
                     std::string("not well-formed XML: ") + r.description(), "attachedData"};
    for (auto n : doc.children())
        if (n.type() == pugi::node_doctype)
            return Fault{FaultCode::invalid_field, "a DOCTYPE is not allowed", "attachedData"};
    const char* name = doc.document_element().name();
    const char* colon = std::strchr(name, ':');
    if (std::strcmp(colon ? colon + 1 : name, "ItemAttachedData") != 0)
        return Fault{FaultCode::invalid_field, "the root element must be ItemAttachedData",
                     "attachedData"};
    return std::nullopt;
}

/// The required fields of each element that holds some, as ici.h declares them: gSOAP reports a
/// missing one against the enclosing element, and the fault should name the field itself.
const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> kRequiredFields = {
    {"call", {"id", "version", "state", "changedAt", "direction", "remoteNumbers", "localAddress"}},
    {"chat", {"id", "version", "state", "changedAt", "topic", "customerName"}},
    {"message",
     {"id", "version", "state", "changedAt", "folder", "originator", "subject", "read",
      "answered"}},
    {"posting", {"chatSessionId", "chatParticipant", "contentText", "systemMessage", "postDate"}},
    {"user", {"userId", "state", "reasonCode"}},
    {"item", {"userId", "role", "address"}},
    {"subscriptionEnded", {"reason"}},
};

std::string_view local_part(std::string_view qname) {
    auto colon = qname.find(':');
    return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

/// The first required child missing from an element named `tag` in `body`, or "" if none is.
std::string find_missing_field(std::string_view body, std::string_view tag) {
    const std::vector<std::string_view>* required = nullptr;
    for (auto& [name, fields] : kRequiredFields)
        if (name == tag) required = &fields;
    if (!required) return {};
    pugi::xml_document doc;
    if (!doc.load_buffer(body.data(), body.size())) return {};
    std::string found;
    struct Walker : pugi::xml_tree_walker {
        std::string_view tag;
        const std::vector<std::string_view>* required;
        std::string* found;
        bool for_each(pugi::xml_node& n) override {
            if (n.type() != pugi::node_element || local_part(n.name()) != tag) return true;
            for (auto field : *required) {
                bool present = false;
                for (auto c : n.children())
                    if (c.type() == pugi::node_element && local_part(c.name()) == field)
                        present = true;
                if (!present) {
                    *found = std::string(field);
                    return false;
                }
            }
            return true;
        }
    } walker;
    walker.tag = tag;
    walker.required = required;
    walker.found = &found;
    doc.traverse(walker);
    return found;
}

}  // namespace

std::string_view to_string(Operation op) {
    auto i = static_cast<std::size_t>(op);
    return i < std::size(kOperationNames) ? kOperationNames[i] : "?";
}

std::optional<Operation> operation_from_name(std::string_view name) {
    for (std::size_t i = 0; i < std::size(kOperationNames); ++i)
        if (kOperationNames[i] == name) return static_cast<Operation>(i);
    return std::nullopt;
}

struct IciServerCodec::Impl : MemorySoap {
    // SOAP_XML_TREE on input: gSOAP keeps no table of `id`s and scans none for every list it
    // decodes. The gate has already refused every multi-reference attribute (the port is
    // document/literal), so there is nothing to follow.
    Impl() { soap_set_imode(soap, SOAP_XML_TREE); }

    /// Turns a gSOAP decoding error into the fault of the contract.
    Fault fault_from_error() {
        int err = soap->error;
        std::string tag = soap->tag;
        if (auto colon = tag.find(':'); colon != std::string::npos) tag.erase(0, colon + 1);
        soap_set_fault(soap);
        const char* text = soap_fault_string(soap);
        const char* detail = soap_fault_detail(soap);
        std::string why = text ? text : "invalid request";
        if (detail && *detail) why += std::string(": ") + detail;
        switch (err) {
            case SOAP_OCCURS:  // a required element missing, or a list over its bound
            case SOAP_LENGTH:  // a string under or over its length bounds
            case SOAP_TYPE:
            case SOAP_TAG_MISMATCH:
            case SOAP_NO_TAG:
            case SOAP_NULL:
                return Fault{FaultCode::invalid_field, why, tag};
            case SOAP_MUSTUNDERSTAND:
                return Fault{FaultCode::malformed, why, tag};
            default:
                return Fault{FaultCode::malformed, why, {}};
        }
    }
};

IciServerCodec::IciServerCodec() : impl_(std::make_unique<Impl>()) {}
IciServerCodec::~IciServerCodec() = default;

IciServerCodec& IciServerCodec::for_this_thread() {
    thread_local IciServerCodec codec;
    return codec;
}

std::variant<DecodedEvent, DecodeFailed> IciServerCodec::decode(std::string_view body,
                                                                const std::string& system,
                                                                const CodecLimits& limits,
                                                                SoapVersion assumed) {
    ReplyContext reply;
    reply.version = assumed;
    auto gate = check_envelope(body, limits.gate, assumed);
    if (auto* refused = std::get_if<GateRefused>(&gate)) {
        reply.version = refused->version;
        return DecodeFailed{reply, refused->fault};
    }
    auto& passed = std::get<GatePassed>(gate);
    reply.version = passed.version;
    auto op = passed.operation_namespace == kIciNamespace ? operation_from_name(passed.operation)
                                                          : std::nullopt;
    if (!op)
        return DecodeFailed{
            reply, Fault{FaultCode::unknown_operation,
                         "no operation {" + passed.operation_namespace + "}" + passed.operation,
                         {}}};
    reply.operation = op;

    Impl& m = *impl_;
    struct soap* s = m.soap;
    assert(m.is_reset());
    m.in = body;
    m.pos = 0;
    s->maxlevel = limits.gate.max_depth;
    s->maxlength = static_cast<long>(limits.max_string);
    s->maxoccurs = limits.max_occurs;

    struct Reset {
        Impl& m;
        ~Reset() { m.reset(); }
    } reset_after{m};

    auto failed = [&]() -> std::variant<DecodedEvent, DecodeFailed> {
        bool occurs = s->error == SOAP_OCCURS;
        auto fault = m.fault_from_error();
        if (occurs) {
            if (auto field = find_missing_field(body, fault.field); !field.empty()) {
                fault.message = "missing <" + field + "> in <" + fault.field + ">";
                fault.field = field;
            }
        }
        return DecodeFailed{reply, fault};
    };

    if (soap_begin_recv(s) || soap_envelope_begin_in(s) || soap_recv_header(s) ||
        soap_body_begin_in(s))
        return failed();
    if (s->header && s->header->ici__context && s->header->ici__context->messageId)
        reply.message_id = *s->header->ici__context->messageId;

    std::optional<ch::Event> event;
    std::optional<Fault> fault;
    auto missing = [&](const char* field) {
        fault = Fault{FaultCode::invalid_field, std::string("missing <") + field + ">", field};
    };
    switch (*op) {
        case Operation::phone_call_changed: {
            ici__phoneCallChanged req;
            soap_default_ici__phoneCallChanged(s, &req);
            if (!soap_get_ici__phoneCallChanged(s, &req, "ici:phoneCallChanged", nullptr))
                return failed();
            if (!req.call) {
                missing("call");
                break;
            }
            event = soapconv::from_soap(s, *req.call, system);
            break;
        }
        case Operation::chat_changed: {
            ici__chatChanged req;
            soap_default_ici__chatChanged(s, &req);
            if (!soap_get_ici__chatChanged(s, &req, "ici:chatChanged", nullptr)) return failed();
            if (!req.chat) {
                missing("chat");
                break;
            }
            event = soapconv::from_soap(s, *req.chat, system);
            break;
        }
        case Operation::message_changed: {
            ici__messageChanged req;
            soap_default_ici__messageChanged(s, &req);
            if (!soap_get_ici__messageChanged(s, &req, "ici:messageChanged", nullptr))
                return failed();
            if (!req.message) {
                missing("message");
                break;
            }
            event = soapconv::from_soap(s, *req.message, system);
            break;
        }
        case Operation::chat_new_posting: {
            ici__chatNewPosting req;
            soap_default_ici__chatNewPosting(s, &req);
            if (!soap_get_ici__chatNewPosting(s, &req, "ici:chatNewPosting", nullptr))
                return failed();
            if (!req.posting) {
                missing("posting");
                break;
            }
            event = ch::PostingEvent{system, soapconv::from_soap(*req.posting)};
            break;
        }
        case Operation::user_changed: {
            ici__userChanged req;
            soap_default_ici__userChanged(s, &req);
            if (!soap_get_ici__userChanged(s, &req, "ici:userChanged", nullptr)) return failed();
            if (!req.user) {
                missing("user");
                break;
            }
            event = soapconv::from_soap(s, *req.user, system);
            break;
        }
        case Operation::subscription_ended: {
            ici__subscriptionEnded req;
            soap_default_ici__subscriptionEnded(s, &req);
            if (!soap_get_ici__subscriptionEnded(s, &req, "ici:subscriptionEnded", nullptr))
                return failed();
            event = ch::SubscriptionEnded{system, req.reason};
            break;
        }
        case Operation::count:  // operation_from_name() never gives it
            return DecodeFailed{reply, Fault{FaultCode::unknown_operation, "no operation", {}}};
    }
    if (fault) return DecodeFailed{reply, *fault};
    if (soap_body_end_in(s) || soap_envelope_end_in(s) || soap_end_recv(s)) return failed();

    if (auto* item = std::get_if<ch::Item>(&*event))
        if (auto f = check_attached_data(item->attached_data)) return DecodeFailed{reply, *f};
    return DecodedEvent{reply, std::move(*event)};
}

namespace {

/// Begins a message: version, the context header echoing messageId, and the envelope.
void begin_message(struct soap* s, const ReplyContext& reply, ici__Context& context,
                   SOAP_ENV__Header& header) {
    soap_begin(s);
    soap_set_version(s, static_cast<short>(reply.version));
    s->encodingStyle = nullptr;
    s->header = nullptr;
    if (reply.message_id) {
        soap_default_SOAP_ENV__Header(s, &header);
        context.soap_default(s);
        context.messageId = const_cast<std::string*>(&*reply.message_id);
        header.ici__context = &context;
        s->header = &header;
    }
    soap_serializeheader(s);
}

constexpr std::string_view kServerFault11 =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode>"
    "<faultstring>the broker could not encode its response</faultstring></SOAP-ENV:Fault>"
    "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n";
constexpr std::string_view kServerFault12 =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://www.w3.org/2003/05/soap-envelope\">"
    "<SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Receiver"
    "</SOAP-ENV:Value></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang=\"en\">the broker "
    "could not encode its response</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>"
    "</SOAP-ENV:Body></SOAP-ENV:Envelope>\n";

}  // namespace

std::optional<std::string> IciServerCodec::encode_status(const ReplyContext& reply,
                                                         channels::Outcome outcome) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    MemorySoap::Encoding encoding(m, out);
    ici__Context context;
    SOAP_ENV__Header header;
    begin_message(s, reply, context, header);
    auto status = outcome == channels::Outcome::accepted    ? ici__EventStatus__accepted
                  : outcome == channels::Outcome::duplicate ? ici__EventStatus__duplicate
                                                            : ici__EventStatus__stale;
    if (soap_response(s, SOAP_OK) || soap_envelope_begin_out(s) || soap_putheader(s) ||
        soap_body_begin_out(s))
        return std::nullopt;
    int rc = SOAP_OK;
    switch (reply.operation.value_or(Operation::phone_call_changed)) {
#define CB_PUT_RESPONSE(OP, NAME)                                                     \
    case Operation::OP: {                                                             \
        ici__##NAME##Response r;                                                      \
        r.status = status;                                                            \
        rc = soap_put_ici__##NAME##Response(s, &r, "ici:" #NAME "Response", nullptr); \
        break;                                                                        \
    }
        CB_PUT_RESPONSE(phone_call_changed, phoneCallChanged)
        CB_PUT_RESPONSE(chat_changed, chatChanged)
        CB_PUT_RESPONSE(chat_new_posting, chatNewPosting)
        CB_PUT_RESPONSE(message_changed, messageChanged)
        CB_PUT_RESPONSE(user_changed, userChanged)
        CB_PUT_RESPONSE(subscription_ended, subscriptionEnded)
#undef CB_PUT_RESPONSE
        case Operation::count:  // not an operation: nothing to answer
            return std::nullopt;
    }
    if (rc || soap_body_end_out(s) || soap_envelope_end_out(s) || soap_end_send(s) || m.out_failed)
        return std::nullopt;
    return out;
}

std::optional<std::string> IciServerCodec::encode_fault(const ReplyContext& reply,
                                                        const Fault& fault) {
    Impl& m = *impl_;
    struct soap* s = m.soap;
    std::string out;
    MemorySoap::Encoding encoding(m, out);
    ici__Context context;
    SOAP_ENV__Header header;
    begin_message(s, reply, context, header);
    std::string detail = "<ici:iciFault><code>" + std::string(to_string(fault.code)) + "</code>";
    if (!fault.field.empty()) detail += "<field>" + soapconv::xml_escape(fault.field) + "</field>";
    detail += "</ici:iciFault>";
    if (fault.code == FaultCode::unavailable)
        soap_receiver_fault(s, fault.message.c_str(), nullptr);
    else
        soap_sender_fault(s, fault.message.c_str(), nullptr);
    *soap_faultdetail(s) = soap_strdup(s, detail.c_str());
    // soap_send_fault() returns the code of the fault it sent, so a failed write is known from
    // the output itself.
    soap_send_fault(s);
    if (m.out_failed) return std::nullopt;
    return out;
}

std::string_view IciServerCodec::server_fault(SoapVersion version) {
    return version == SoapVersion::v12 ? kServerFault12 : kServerFault11;
}

void IciServerCodec::limit_output(std::optional<std::size_t> bytes) {
    impl_->out_limit = bytes.value_or(static_cast<std::size_t>(-1));
}

}  // namespace cb::protocol
