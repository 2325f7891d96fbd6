// Sample domain items for the unit tests.
#pragma once

#include "channels/item.hpp"

#include <cstdint>
#include <string>

namespace cb::testing {

/// An inbound call of CMS-A owned by alice, valid by every field rule.
inline channels::Item sample_call(const std::string& id, std::uint64_t version,
                                  channels::State state) {
    channels::Item i;
    i.system = "CMS-A";
    i.channel = channels::Channel::phone;
    i.id = id;
    i.version = version;
    i.state = state;
    i.agent_id = "alice";
    i.changed_at = "2026-11-22T10:00:00Z";
    i.direction = "inbound";
    i.remote_numbers = {"+493012345678"};
    i.local_address = "+49301111";
    return i;
}

}  // namespace cb::testing
