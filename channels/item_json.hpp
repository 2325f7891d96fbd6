// JSON form of items, postings and agent states: the field names of the SOAP types of PROTOCOL.md
// section 1 plus `system` and `channel`. The admin API, desktop events and the journal all use it.
// Pure functions; any thread.
#pragma once

#include "channels/item.hpp"
#include "channels/registry.hpp"

#include <boost/json/fwd.hpp>

#include <optional>
#include <string>

namespace cb::channels {

boost::json::object to_json(const Item& item);
boost::json::object to_json(const ChatPosting& posting);
boost::json::object to_json(const AgentState& agent);
/// An orphan as operators and supervisors see it: the item plus `reason`, `orphanedAt`,
/// `orphanedFrom` (the agent), `classification` and `checkedAt` (null until classified).
boost::json::object to_json(const Item& item, const OrphanRecord& orphan);

/// nullopt if the object is not an item written by to_json.
std::optional<Item> item_from_json(const boost::json::value& v);
std::optional<ChatPosting> posting_from_json(const boost::json::value& v);
std::optional<AgentState> agent_from_json(const boost::json::value& v);

}  // namespace cb::channels
