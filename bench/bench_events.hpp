// What the benchmark clients share: agent names and the vendor event they send.
#pragma once

#include "protocol/cms_codec.hpp"

#include <cstdint>
#include <cstdio>
#include <string>

namespace cb::bench {

/// The agent IDs the benchmark scripts configure: a00000, a00001, …
inline std::string agent_name(unsigned i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "a%05u", i);
    return buf;
}

/// Event n of a load spread over `agents`: a phoneCallChanged snapshot of agent n % agents's
/// one call (ID prefix + agent), version n, alternating connected and held with each round.
inline std::string call_event(std::uint64_t n, unsigned agents, const std::string& prefix) {
    unsigned agent = static_cast<unsigned>(n % agents);
    channels::Item call;
    call.system = "CMS-A";
    call.channel = channels::Channel::phone;
    call.id = prefix + agent_name(agent);
    call.version = n;  // increasing per item; also the event's number
    call.state = (n / agents) % 2 ? channels::State::held : channels::State::connected;
    call.agent_id = agent_name(agent);
    call.changed_at = "2026-11-22T10:00:00Z";
    call.direction = "inbound";
    call.remote_numbers = {"+493012345678"};
    call.local_address = "+49301111";
    return protocol::CmsCodec::for_this_thread().encode_event(channels::Event{call}, {});
}

}  // namespace cb::bench
