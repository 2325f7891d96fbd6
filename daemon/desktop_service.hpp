// The desktop protocol (PROTOCOL.md section 3) on top of the WebSocket transport: hello and its
// credentials, welcome/snapshot/replay through the hub, and every desktop request turned into a
// request to the agent's CMS, whose answer becomes the `result`. Nothing in the registry changes
// here: the CMS reports the outcome of a command by event.
//
// Ownership: called on each session's strand; everything about sessions, items and agents is
// read or changed on the core (Broker::on_core_state), and CMS requests complete on their link's
// strand.
#pragma once

#include "daemon/desktop_server.hpp"
#include "protocol/desktop_codec.hpp"
#include "transport/admission.hpp"

#include <optional>
#include <string>

namespace cb::daemon {

class Broker;

class DesktopProtocol : public DesktopService {
  public:
    explicit DesktopProtocol(Broker& broker);

    void on_text(const std::shared_ptr<DesktopSession>& session, std::string text) override;
    void on_binary(const std::shared_ptr<DesktopSession>& session) override;
    void on_ping(const std::shared_ptr<DesktopSession>& session, bool pong) override;
    void on_closed(const std::shared_ptr<DesktopSession>& session) override;
    void on_drained(const std::shared_ptr<DesktopSession>& session) override;
    void on_event_written(channels::SteadyTime received) override;

  private:
    void hello(const std::shared_ptr<DesktopSession>& session, protocol::DesktopMessage m);
    /// Hello with its credentials checked: against `checked_hash` (refused if a reload changed
    /// the agent's hash meanwhile), or by a resume key (nullopt).
    void admit(const std::shared_ptr<DesktopSession>& session, protocol::DesktopMessage m,
               std::optional<std::string> checked_hash);
    void request(const std::shared_ptr<DesktopSession>& session, protocol::DesktopMessage m);
    void item_command(const std::shared_ptr<DesktopSession>& session, protocol::DesktopMessage m);

    Broker& broker_;
    // Admitted hellos on their way through the core: at most `limits hellosAtOnce` queue there
    // at once, the rest wait here in order; each one done lets the next onto the core.
    transport::InFlightLimit hellos_;
};

}  // namespace cb::daemon
