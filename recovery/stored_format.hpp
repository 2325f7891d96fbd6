// The journal's own record format for items, chat postings and agent states: JSON objects whose
// field names belong to the journal, not to the desktop protocol or the SOAP types, so that a
// rename on either side never changes what is on disk. Format 1 keeps the names that journals of
// schemas 1 to 4 wrote (then borrowed from the desktop JSON), so their rows are read unchanged.
// A new format needs a new number and a migration. Pure functions; any thread.
#pragma once

#include "channels/item.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace cb::recovery::stored {

inline constexpr int kFormat = 1;

/// The item without its chat postings (they are stored one by one).
std::string encode(const channels::Item& item);
std::string encode(const channels::ChatPosting& posting);
std::string encode(const channels::AgentState& agent);

/// nullopt if `text` is not a record of that kind in this format.
std::optional<channels::Item> decode_item(std::string_view text);
std::optional<channels::ChatPosting> decode_posting(std::string_view text);
std::optional<channels::AgentState> decode_agent(std::string_view text);

}  // namespace cb::recovery::stored
