// JSON form of items, postings and agent states as desktops and the admin API see them: the field
// names of the SOAP types of PROTOCOL.md section 1 plus `system` and `channel`. The journal has a
// format of its own (recovery/stored_format.hpp). Pure functions; any thread.
#pragma once

#include "channels/item.hpp"
#include "channels/registry.hpp"

#include <boost/json/fwd.hpp>

#include <string>

namespace cb::channels {

/// A chat with its postings (`with_postings`), as snapshots and the admin API show it, or without
/// them, as a chatChanged event carries it (desktops get each posting as chatNewPosting).
boost::json::object to_json(const Item& item, bool with_postings = true);
boost::json::object to_json(const ChatPosting& posting);
boost::json::object to_json(const AgentState& agent);
/// An orphan as operators and supervisors see it: the item plus `reason`, `orphanedAt`,
/// `orphanedFrom` (the agent), `classification` and `checkedAt` (null until classified).
boost::json::object to_json(const Item& item, const OrphanRecord& orphan);

}  // namespace cb::channels
