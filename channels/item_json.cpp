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

}  // namespace

json::object to_json(const ChatPosting& p) {
    return json::object{{"chatSessionId", p.chat_session_id},
                        {"chatParticipant", p.chat_participant},
                        {"contentText", p.content_text},
                        {"systemMessage", p.system_message},
                        {"postDate", p.post_date}};
}

json::object to_json(const Item& i, bool with_postings) {
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
            if (with_postings) {
                json::array posts;
                for (auto& p : i.postings)
                    posts.push_back(to_json(p));
                o["postings"] = std::move(posts);
            }
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
