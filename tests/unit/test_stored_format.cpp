// The journal's record format (recovery/stored_format.hpp) is pinned here byte for byte: a
// change to it must be a new format with a migration, never a side effect of a rename elsewhere.
#include "recovery/stored_format.hpp"

#include "tests/unit/sample_items.hpp"

#include <doctest/doctest.h>

namespace cb {
namespace stored = recovery::stored;

namespace {

// Records as journals of schemas 1 to 5 hold them (format 1).
constexpr const char* kCall =
    R"({"system":"CMS-A","channel":"phone","id":"c-1","version":7,"state":"connected",)"
    R"("agentId":"alice","participants":[{"userId":"alice","role":"agent","address":"+49301111"}],)"
    R"("capabilityList":["hold","hangup"],"attachedData":"<bp>4711</bp>",)"
    R"("changedAt":"2026-11-22T10:00:00Z","direction":"inbound","remoteNumbers":["+493012345678"],)"
    R"("localAddress":"+49301111","queue":"sales"})";
constexpr const char* kChat =
    R"({"system":"CMS-B","channel":"chat","id":"chat-1","version":3,"state":"active",)"
    R"("participants":[],"capabilityList":[],"changedAt":"2026-11-22T10:00:00Z",)"
    R"("topic":"billing","customerName":"Müller €"})";
constexpr const char* kMail =
    R"({"system":"CMS-A","channel":"email","id":"m-1","version":1,"state":"offered",)"
    R"("containerId":"box-2","participants":[],"capabilityList":[],)"
    R"("changedAt":"2026-11-22T10:00:00Z","folder":"inbox","originator":"a@example.com",)"
    R"("subject":"Rechnung","read":true,"answered":false})";
constexpr const char* kAgent =
    R"({"system":"CMS-A","userId":"alice","state":"notReady","reasonCode":12,)"
    R"("addresses":["+49301111"],"channels":["phone","chat"]})";
constexpr const char* kPosting =
    R"({"chatSessionId":"chat-1","chatParticipant":"cust","contentText":"hallo",)"
    R"("systemMessage":false,"postDate":"2026-11-22T10:00:01Z"})";

channels::Item call() {
    auto i = testing::sample_call("c-1", 7, channels::State::connected);
    i.participants = {{"alice", "agent", "+49301111"}};
    i.capabilities = {"hold", "hangup"};
    i.attached_data = "<bp>4711</bp>";
    i.queue = "sales";
    return i;
}

}  // namespace

TEST_CASE("items, agent states and postings are written in format 1, byte for byte") {
    CHECK(stored::encode(call()) == kCall);

    channels::Item chat;
    chat.system = "CMS-B";
    chat.channel = channels::Channel::chat;
    chat.id = "chat-1";
    chat.version = 3;
    chat.state = channels::State::active;
    chat.changed_at = "2026-11-22T10:00:00Z";
    chat.topic = "billing";
    chat.customer_name = "Müller €";
    chat.postings = {{"chat-1", "cust", "hallo", false, "2026-11-22T10:00:01Z"}};
    CHECK(stored::encode(chat) == kChat);  // postings are stored one by one, not with the chat

    channels::Item mail;
    mail.system = "CMS-A";
    mail.channel = channels::Channel::email;
    mail.id = "m-1";
    mail.version = 1;
    mail.state = channels::State::offered;
    mail.container_id = "box-2";
    mail.changed_at = "2026-11-22T10:00:00Z";
    mail.folder = "inbox";
    mail.originator = "a@example.com";
    mail.subject = "Rechnung";
    mail.read = true;
    CHECK(stored::encode(mail) == kMail);

    channels::AgentState agent{"CMS-A", "alice",       channels::AgentStateValue::not_ready,
                               12,      {"+49301111"}, {"phone", "chat"}};
    CHECK(stored::encode(agent) == kAgent);
    CHECK(stored::encode(chat.postings[0]) == kPosting);
}

TEST_CASE("records of format 1 are read back into the same item, agent state and posting") {
    auto item = stored::decode_item(kCall);
    REQUIRE(item);
    CHECK(stored::encode(*item) == kCall);
    CHECK(item->attached_data == "<bp>4711</bp>");
    CHECK(item->participants[0].address == "+49301111");
    CHECK_FALSE(item->container_id);

    auto mail = stored::decode_item(kMail);
    REQUIRE(mail);
    CHECK(mail->channel == channels::Channel::email);
    CHECK(mail->read);
    CHECK(mail->container_id == "box-2");

    auto agent = stored::decode_agent(kAgent);
    REQUIRE(agent);
    CHECK(agent->state == channels::AgentStateValue::not_ready);
    CHECK(agent->reason_code == 12);
    CHECK(agent->channels == std::vector<std::string>{"phone", "chat"});

    auto posting = stored::decode_posting(kPosting);
    REQUIRE(posting);
    CHECK(posting->chat_participant == "cust");
}

TEST_CASE("a record that is damaged or of another kind is not read") {
    CHECK_FALSE(stored::decode_item(""));
    CHECK_FALSE(stored::decode_item("[]"));
    CHECK_FALSE(stored::decode_item(R"({"system":"CMS-A"})"));  // fields missing
    CHECK_FALSE(stored::decode_item(kAgent));
    CHECK_FALSE(stored::decode_agent(kCall));
    CHECK_FALSE(stored::decode_posting(kCall));

    std::string unknown_state = kCall;
    unknown_state.replace(unknown_state.find("connected"), 9, "exploded");
    CHECK_FALSE(stored::decode_item(unknown_state));
    std::string negative = kCall;
    negative.replace(negative.find("\"version\":7"), 11, "\"version\":-7");
    CHECK_FALSE(stored::decode_item(negative));
    std::string mistyped = kMail;
    mistyped.replace(mistyped.find("\"read\":true"), 11, "\"read\":\"yes\"");
    CHECK_FALSE(stored::decode_item(mistyped));
    std::string wide = kAgent;
    wide.replace(wide.find("12"), 2, "4294967296");  // over 32 bits
    CHECK_FALSE(stored::decode_agent(wide));
}

}  // namespace cb
