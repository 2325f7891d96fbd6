// The IciCms codec: what the broker encodes a CMS decodes the same, and back.
#include "protocol/cms_codec.hpp"
#include "protocol/ici_codec.hpp"
#include "sample_items.hpp"

#include <doctest/doctest.h>

using namespace cb::protocol;
namespace ch = cb::channels;

TEST_CASE("a logon request carries its fields and the context header to the CMS") {
    CmsCodec codec;
    CmsRequest r;
    r.op = CmsOp::logon;
    r.message_id = "m-7";
    r.user_id = "alice";
    r.address = "+49301111";
    r.channels = {"phone", "chat", "bogus"};
    auto xml = codec.encode_request(r);
    auto decoded = codec.decode_request(xml, GateLimits{});
    REQUIRE(std::holds_alternative<CmsRequest>(decoded));
    auto& d = std::get<CmsRequest>(decoded);
    CHECK(d.op == CmsOp::logon);
    CHECK(d.message_id == "m-7");
    CHECK(d.user_id == "alice");
    CHECK(d.address == "+49301111");
    CHECK(d.channels == std::vector<std::string>{"phone", "chat"});
}

TEST_CASE("item commands, transfer and work mode keep their arguments") {
    CmsCodec codec;
    CmsRequest r;
    r.op = CmsOp::transfer_call;
    r.item_id = "c-1";
    r.to = "+4930999";
    r.mode = "consult";
    auto d = std::get<CmsRequest>(codec.decode_request(codec.encode_request(r), GateLimits{}));
    CHECK(d.op == CmsOp::transfer_call);
    CHECK(d.item_id == "c-1");
    CHECK(d.to == "+4930999");
    CHECK(d.mode == "consult");

    r = {};
    r.op = CmsOp::set_work_mode;
    r.user_id = "bob";
    r.state = "wrapUp";
    r.reason_code = 1001;
    d = std::get<CmsRequest>(codec.decode_request(codec.encode_request(r), GateLimits{}));
    CHECK(d.state == "wrapUp");
    CHECK(d.reason_code == 1001);
}

TEST_CASE("a getItems reply brings every channel's items back") {
    CmsCodec codec;
    CmsRequest req;
    req.op = CmsOp::get_items;
    req.all_users = true;
    auto decoded_req =
        std::get<CmsRequest>(codec.decode_request(codec.encode_request(req), GateLimits{}));
    CHECK(decoded_req.all_users);

    CmsReply reply;
    reply.items.push_back(cb::testing::sample_call("c-1", 3, ch::State::connected));
    ch::Item chat;
    chat.channel = ch::Channel::chat;
    chat.id = "ch-1";
    chat.version = 1;
    chat.state = ch::State::offered;
    chat.changed_at = "2026-11-22T10:00:00Z";
    chat.topic = "Rechnung €";
    chat.customer_name = "Eve";
    reply.items.push_back(chat);
    auto xml = codec.encode_reply(req, reply);
    auto back = codec.decode_reply(CmsOp::get_items, xml, "CMS-B");
    REQUIRE(std::holds_alternative<CmsReply>(back));
    auto& items = std::get<CmsReply>(back).items;
    REQUIRE(items.size() == 2);
    CHECK(items[0].system == "CMS-B");
    CHECK(items[0].state == ch::State::connected);
    CHECK(items[0].remote_numbers == std::vector<std::string>{"+493012345678"});
    CHECK(items[1].topic == "Rechnung €");
}

TEST_CASE("a getItems reply of a large contact centre (more than 10,000 calls) is read whole") {
    CmsCodec codec;
    CmsRequest req;
    req.op = CmsOp::get_items;
    req.all_users = true;
    CmsReply reply;
    for (int i = 0; i < 25000; ++i)
        reply.items.push_back(
            cb::testing::sample_call("c-" + std::to_string(i), 3, ch::State::connected));
    auto back = codec.decode_reply(CmsOp::get_items, codec.encode_reply(req, reply), "CMS-A");
    REQUIRE(std::holds_alternative<CmsReply>(back));
    auto& items = std::get<CmsReply>(back).items;
    REQUIRE(items.size() == 25000);
    CHECK(items.back().id == "c-24999");
}

TEST_CASE("a CMS fault reaches the broker with its code and message") {
    CmsCodec codec;
    auto xml =
        codec.encode_fault("m-1", CmsFault{"notAllowed", "the call is not alerting", {}, true});
    auto back = codec.decode_reply(CmsOp::answer_call, xml, "CMS-A");
    REQUIRE(std::holds_alternative<CmsFault>(back));
    CHECK(std::get<CmsFault>(back).code == "notAllowed");
    CHECK(std::get<CmsFault>(back).message == "the call is not alerting");
}

TEST_CASE("an unreadable reply is a malformed fault, not a success") {
    CmsCodec codec;
    auto back = codec.decode_reply(CmsOp::logon, "<html>busy</html>", "CMS-A");
    REQUIRE(std::holds_alternative<CmsFault>(back));
    CHECK(std::get<CmsFault>(back).code == "malformed");
}

TEST_CASE("a CMS reply with a DOCTYPE, bad characters or deep nesting is malformed") {
    CmsCodec codec;
    CmsRequest req;
    req.op = CmsOp::get_system_info;
    CmsReply reply;
    reply.name = "CMS-A";
    auto xml = codec.encode_reply(req, reply);
    REQUIRE(std::holds_alternative<CmsReply>(codec.decode_reply(req.op, xml, "CMS-A")));

    auto at = xml.find("<SOAP-ENV:Envelope");
    REQUIRE(at != std::string::npos);
    auto with_doctype = xml;
    with_doctype.insert(at, R"(<!DOCTYPE e [<!ENTITY x "xx">]>)");
    auto back = codec.decode_reply(req.op, with_doctype, "CMS-A");
    REQUIRE(std::holds_alternative<CmsFault>(back));
    CHECK(std::get<CmsFault>(back).code == "malformed");
    CHECK(std::get<CmsFault>(back).message.find("DOCTYPE") != std::string::npos);

    auto bad_utf8 = xml;
    bad_utf8.insert(at, "\xc3(");
    back = codec.decode_reply(req.op, bad_utf8, "CMS-A");
    REQUIRE(std::holds_alternative<CmsFault>(back));
    CHECK(std::get<CmsFault>(back).message.find("invalid UTF-8") != std::string::npos);

    GateLimits shallow;
    shallow.max_depth = 3;  // the reply's name element is deeper
    back = codec.decode_reply(req.op, xml, "CMS-A", shallow);
    REQUIRE(std::holds_alternative<CmsFault>(back));
    CHECK(std::get<CmsFault>(back).code == "malformed");
}

TEST_CASE("an event a CMS encodes is what the broker decodes, and the status comes back") {
    CmsCodec codec;
    auto call = cb::testing::sample_call("c-9", 2, ch::State::alerting);
    call.attached_data = "<ItemAttachedData><Application id=\"x\"/></ItemAttachedData>";
    auto xml = codec.encode_event(ch::Event{call}, "m-9");
    auto decoded =
        IciServerCodec::for_this_thread().decode(xml, "CMS-A", CodecLimits{}, SoapVersion::v11);
    REQUIRE(std::holds_alternative<DecodedEvent>(decoded));
    auto& ev = std::get<DecodedEvent>(decoded);
    CHECK(ev.reply.message_id == "m-9");
    auto& item = std::get<ch::Item>(ev.event);
    CHECK(item.id == "c-9");
    CHECK(item.state == ch::State::alerting);
    CHECK(item.attached_data == call.attached_data);

    auto status =
        IciServerCodec::for_this_thread().encode_status(ev.reply, ch::Outcome::stale).value();
    auto outcome = codec.decode_event_reply(status);
    REQUIRE(std::holds_alternative<ch::Outcome>(outcome));
    CHECK(std::get<ch::Outcome>(outcome) == ch::Outcome::stale);

    auto fault = IciServerCodec::for_this_thread()
                     .encode_fault(ev.reply, Fault{FaultCode::invalid_transition, "no", "state"})
                     .value();
    auto refused = codec.decode_event_reply(fault);
    REQUIRE(std::holds_alternative<CmsFault>(refused));
    CHECK(std::get<CmsFault>(refused).code == "invalidTransition");
    CHECK(std::get<CmsFault>(refused).field == "state");
}

TEST_CASE("the server fault sent when a response cannot be encoded is read as a Server fault") {
    CmsCodec codec;
    for (auto v : {SoapVersion::v11, SoapVersion::v12}) {
        CAPTURE(static_cast<int>(v));
        auto text = IciServerCodec::server_fault(v);
        auto read = codec.decode_event_reply(text);
        REQUIRE(std::holds_alternative<CmsFault>(read));
        auto& f = std::get<CmsFault>(read);
        CHECK(f.code == "failed");  // a Server (Receiver) fault without detail
        CHECK_FALSE(f.sender);
        CHECK(f.message == "the broker could not encode its response");
        CHECK(text.find(v == SoapVersion::v12 ? kSoap12Namespace : kSoap11Namespace) !=
              std::string_view::npos);
    }
}
