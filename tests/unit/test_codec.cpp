#include "protocol/ici_codec.hpp"

#include <doctest/doctest.h>

using namespace cb::protocol;
namespace ch = cb::channels;

namespace {

std::string envelope(const std::string& ns, const std::string& body,
                     const std::string& header = "") {
    return "<soap:Envelope xmlns:soap=\"" + ns + "\" xmlns:ici=\"urn:commbroker:ici:1\">" +
           (header.empty() ? "" : "<soap:Header>" + header + "</soap:Header>") + "<soap:Body>" +
           body + "</soap:Body></soap:Envelope>";
}

std::string call_body(const std::string& fields) {
    return "<ici:phoneCallChanged><call>" + fields + "</call></ici:phoneCallChanged>";
}

const std::string kCallFields =
    "<id>c-1</id><version>3</version><state>connected</state><agentId>alice</agentId>"
    "<participants><item><userId>alice</userId><role>agent</role><address>+49301111</address></"
    "item></participants>"
    "<capabilityList><item>hangup</item><item>hold</item></capabilityList>"
    "<attachedData>&lt;ItemAttachedData&gt;&lt;Application "
    "id=\"SAP-IC\"&gt;€&lt;/Application&gt;&lt;/ItemAttachedData&gt;</attachedData>"
    "<changedAt>2026-11-22T10:00:00Z</changedAt><direction>inbound</direction>"
    "<remoteNumbers><item>+493012345678</item></remoteNumbers><localAddress>+49301111</"
    "localAddress>";

const std::string kSoap11 = std::string(kSoap11Namespace);
const std::string kSoap12 = std::string(kSoap12Namespace);

}  // namespace

TEST_CASE("a phone call snapshot decodes into the domain item, UTF-8 intact") {
    auto& codec = IciServerCodec::for_this_thread();
    auto r = codec.decode(envelope(kSoap11, call_body(kCallFields),
                                   "<ici:context><messageId>m-7</messageId></ici:context>"),
                          "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodedEvent>(r));
    auto& d = std::get<DecodedEvent>(r);
    CHECK(d.reply.message_id == "m-7");
    CHECK(d.reply.operation == Operation::phone_call_changed);
    auto& item = std::get<ch::Item>(d.event);
    CHECK(item.system == "CMS-A");
    CHECK(item.id == "c-1");
    CHECK(item.version == 3);
    CHECK(item.state == ch::State::connected);
    CHECK(item.capabilities == std::vector<std::string>{"hangup", "hold"});
    REQUIRE(item.participants.size() == 1);
    CHECK(item.participants[0].role == "agent");
    REQUIRE(item.attached_data);
    CHECK(item.attached_data->find("€") != std::string::npos);
    CHECK(item.remote_numbers == std::vector<std::string>{"+493012345678"});
}

TEST_CASE("a missing field is a Client fault naming the field") {
    auto& codec = IciServerCodec::for_this_thread();
    std::string without_state = kCallFields;
    without_state.erase(without_state.find("<state>"),
                        std::string("<state>connected</state>").size());
    auto r =
        codec.decode(envelope(kSoap11, call_body(without_state)), "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodeFailed>(r));
    auto& f = std::get<DecodeFailed>(r);
    CHECK(f.fault.code == FaultCode::invalid_field);
    CHECK(f.fault.field == "state");
    auto xml = codec.encode_fault(f.reply, f.fault).value();
    CHECK(xml.find("<faultcode>SOAP-ENV:Client</faultcode>") != std::string::npos);
    CHECK(xml.find("<code>invalidField</code><field>state</field>") != std::string::npos);
}

TEST_CASE("a bad enumeration value names the field") {
    auto& codec = IciServerCodec::for_this_thread();
    std::string fields = kCallFields;
    fields.replace(fields.find("connected"), 9, "dancing");
    auto r = codec.decode(envelope(kSoap11, call_body(fields)), "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodeFailed>(r));
    CHECK(std::get<DecodeFailed>(r).fault.field == "state");
}

TEST_CASE("an unknown operation and an unknown element are refused") {
    auto& codec = IciServerCodec::for_this_thread();
    auto r = codec.decode(envelope(kSoap11, "<ici:nope/>"), "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodeFailed>(r));
    CHECK(std::get<DecodeFailed>(r).fault.code == FaultCode::unknown_operation);
    auto extra = codec.decode(envelope(kSoap11, call_body(kCallFields + "<colour>blue</colour>")),
                              "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodeFailed>(extra));
    CHECK(std::get<DecodeFailed>(extra).fault.code == FaultCode::invalid_field);
}

TEST_CASE("attached data must be well-formed with root ItemAttachedData") {
    auto& codec = IciServerCodec::for_this_thread();
    std::string fields = kCallFields;
    auto start = fields.find("<attachedData>");
    auto end = fields.find("</attachedData>") + 15;
    fields.replace(start, end - start,
                   "<attachedData>&lt;ItemAttachedData&gt;&lt;open&gt;</attachedData>");
    auto r = codec.decode(envelope(kSoap11, call_body(fields)), "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodeFailed>(r));
    CHECK(std::get<DecodeFailed>(r).fault.field == "attachedData");
}

TEST_CASE("SOAP 1.2 requests get SOAP 1.2 responses and Sender faults with status 400") {
    auto& codec = IciServerCodec::for_this_thread();
    auto ok =
        codec.decode(envelope(kSoap12, call_body(kCallFields)), "CMS-A", {}, SoapVersion::v12);
    REQUIRE(std::holds_alternative<DecodedEvent>(ok));
    auto reply = std::get<DecodedEvent>(ok).reply;
    CHECK(reply.version == SoapVersion::v12);
    auto xml = codec.encode_status(reply, ch::Outcome::accepted).value();
    CHECK(xml.find(kSoap12) != std::string::npos);
    CHECK(xml.find("<status>accepted</status>") != std::string::npos);
    CHECK(xml.find("phoneCallChangedResponse") != std::string::npos);

    auto bad = codec.decode(envelope(kSoap12, "<ici:nope/>"), "CMS-A", {}, SoapVersion::v12);
    REQUIRE(std::holds_alternative<DecodeFailed>(bad));
    auto& f = std::get<DecodeFailed>(bad);
    auto fault = codec.encode_fault(f.reply, f.fault).value();
    CHECK(fault.find(kSoap12) != std::string::npos);
    CHECK(fault.find("Sender") != std::string::npos);
    CHECK(fault.find("faultcode") == std::string::npos);
    CHECK(http_status(f.reply.version, f.fault) == 400);
    CHECK(http_status(SoapVersion::v11, f.fault) == 500);
    CHECK(http_status(SoapVersion::v11, Fault{FaultCode::unavailable, "", ""}) == 503);
}

TEST_CASE("the codec keeps working after many requests and faults") {
    auto& codec = IciServerCodec::for_this_thread();
    for (int i = 0; i < 200; ++i) {
        auto body =
            i % 2 ? envelope(kSoap11, call_body(kCallFields)) : envelope(kSoap11, "<ici:nope/>");
        auto r = codec.decode(body, "CMS-A", {}, SoapVersion::v11);
        CHECK(std::holds_alternative<DecodedEvent>(r) == (i % 2 == 1));
    }
}

namespace {

/// Limits the output of the thread's codec for one test, and lifts the limit however it ends.
struct OutputLimit {
    IciServerCodec& codec;
    OutputLimit(IciServerCodec& c, std::size_t bytes) : codec(c) { codec.limit_output(bytes); }
    ~OutputLimit() { codec.limit_output(std::nullopt); }
};

ReplyContext decoded_reply(IciServerCodec& codec, const std::string& ns, SoapVersion v) {
    auto r = codec.decode(envelope(ns, call_body(kCallFields),
                                   "<ici:context><messageId>m-3</messageId></ici:context>"),
                          "CMS-A", {}, v);
    REQUIRE(std::holds_alternative<DecodedEvent>(r));
    return std::get<DecodedEvent>(r).reply;
}

}  // namespace

TEST_CASE("a status that cannot be written whole is not returned, and the codec works on") {
    auto& codec = IciServerCodec::for_this_thread();
    const std::pair<std::string, SoapVersion> versions[] = {{kSoap11, SoapVersion::v11},
                                                            {kSoap12, SoapVersion::v12}};
    for (auto& [ns, v] : versions) {
        auto reply = decoded_reply(codec, ns, v);
        auto whole = codec.encode_status(reply, ch::Outcome::duplicate);
        REQUIRE(whole);
        for (std::size_t cut : {std::size_t{0}, whole->size() / 2, whole->size() - 1}) {
            CAPTURE(cut);
            OutputLimit limit(codec, cut);
            CHECK_FALSE(codec.encode_status(reply, ch::Outcome::duplicate));
        }
        {
            OutputLimit limit(codec, whole->size());  // exactly enough
            CHECK(codec.encode_status(reply, ch::Outcome::duplicate) == whole);
        }
        CHECK(codec.encode_status(reply, ch::Outcome::duplicate) == whole);
    }
}

TEST_CASE("a fault that cannot be written whole is not returned, and the codec works on") {
    auto& codec = IciServerCodec::for_this_thread();
    auto reply = decoded_reply(codec, kSoap11, SoapVersion::v11);
    Fault fault{FaultCode::invalid_transition, "not from connected", "state"};
    auto whole = codec.encode_fault(reply, fault);
    REQUIRE(whole);
    {
        OutputLimit limit(codec, whole->size() / 2);
        CHECK_FALSE(codec.encode_fault(reply, fault));
    }
    CHECK(codec.encode_fault(reply, fault) == whole);
}

TEST_CASE("multi-references are refused: the port is document/literal, not SOAP-encoded") {
    auto& codec = IciServerCodec::for_this_thread();
    auto with = [](std::string fields, const std::string& caps_attr,
                   const std::string& numbers_attr) {
        auto at = fields.find("<remoteNumbers>");
        fields.replace(at, fields.find("</remoteNumbers>") + 16 - at,
                       "<remoteNumbers" + numbers_attr + "/>");
        fields.replace(fields.find("<capabilityList>"), 16, "<capabilityList" + caps_attr + ">");
        return fields;
    };
    const std::string enc11 = " xmlns:enc=\"http://schemas.xmlsoap.org/soap/encoding/\"";
    const std::string enc12 = " xmlns:enc=\"http://www.w3.org/2003/05/soap-encoding\"";
    const std::pair<std::string, std::string> refused[] = {
        {kSoap11, with(kCallFields, " id=\"caps\"", " href=\"#caps\"")},
        {kSoap12, with(kCallFields, enc12 + " enc:id=\"caps\"", enc12 + " enc:ref=\"caps\"")},
        {kSoap12, with(kCallFields, " id=\"caps\"", " ref=\"caps\"")},
        {kSoap11, with(kCallFields, "", enc11 + " enc:arrayType=\"xsd:string[1]\"")},
    };
    for (auto& [ns, body] : refused) {
        const std::string& fields = body;  // CAPTURE cannot name a structured binding
        CAPTURE(fields);
        auto r = codec.decode(envelope(ns, call_body(fields)), "CMS-A", {}, SoapVersion::v11);
        REQUIRE(std::holds_alternative<DecodeFailed>(r));
        auto& f = std::get<DecodeFailed>(r).fault;
        CHECK(f.code == FaultCode::invalid_field);
        CHECK(f.message.find("multi-reference") != std::string::npos);
    }
    // A prefix bound to an encoding namespace by an ancestor counts; bound again to another
    // namespace, it no longer does.
    auto inherited = envelope(kSoap12, "<ici:phoneCallChanged" + enc12 + "><call>" +
                                           with(kCallFields, "", " enc:ref=\"caps\"") +
                                           "</call></ici:phoneCallChanged>");
    CHECK(std::holds_alternative<DecodeFailed>(
        codec.decode(inherited, "CMS-A", {}, SoapVersion::v11)));
    auto rebound =
        envelope(kSoap12, "<ici:phoneCallChanged" + enc12 + "><call>" +
                              with(kCallFields, "", " xmlns:enc=\"urn:other\" enc:note=\"x\"") +
                              "</call></ici:phoneCallChanged>");
    CHECK(
        std::holds_alternative<DecodedEvent>(codec.decode(rebound, "CMS-A", {}, SoapVersion::v11)));

    // A plain id refers to nothing, and namespace declarations are not references.
    auto r = codec.decode(envelope(kSoap11, call_body(with(kCallFields, " id=\"caps\"", enc11))),
                          "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodedEvent>(r));
    auto& item = std::get<ch::Item>(std::get<DecodedEvent>(r).event);
    CHECK(item.capabilities == std::vector<std::string>{"hangup", "hold"});
    CHECK(item.remote_numbers.empty());
}

TEST_CASE("a decode or an encode that fails leaves nothing behind for the next one") {
    auto& codec = IciServerCodec::for_this_thread();
    auto reply = decoded_reply(codec, kSoap11, SoapVersion::v11);
    auto status = codec.encode_status(reply, ch::Outcome::accepted);
    REQUIRE(status);
    Fault fault{FaultCode::invalid_field, "missing <id>", "id"};
    auto fault_text = codec.encode_fault(reply, fault);
    REQUIRE(fault_text);

    // Failures inside gSOAP (a list item without an element it needs, a bad enumeration) and an
    // encode cut short.
    std::string no_role = kCallFields;
    no_role.erase(no_role.find("<role>agent</role>"), 18);
    auto r = codec.decode(envelope(kSoap11, call_body(no_role)), "CMS-A", {}, SoapVersion::v11);
    CHECK(std::holds_alternative<DecodeFailed>(r));
    CHECK(codec.encode_status(reply, ch::Outcome::accepted) == status);
    CHECK(codec.encode_fault(reply, fault) == fault_text);

    std::string bad_state = kCallFields;
    bad_state.replace(bad_state.find("connected"), 9, "sideways");
    r = codec.decode(envelope(kSoap11, call_body(bad_state)), "CMS-A", {}, SoapVersion::v11);
    CHECK(std::holds_alternative<DecodeFailed>(r));
    CHECK(codec.encode_fault(reply, fault) == fault_text);
    CHECK(codec.encode_status(reply, ch::Outcome::accepted) == status);

    {
        OutputLimit limit(codec, status->size() / 3);
        CHECK_FALSE(codec.encode_status(reply, ch::Outcome::accepted));
    }
    r = codec.decode(envelope(kSoap11, call_body(kCallFields)), "CMS-A", {}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodedEvent>(r));
    CHECK(std::get<ch::Item>(std::get<DecodedEvent>(r).event).id == "c-1");
    CHECK(codec.encode_status(reply, ch::Outcome::accepted) == status);
}
