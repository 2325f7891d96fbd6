#include "daemon/desktop_service.hpp"

#include "channels/item_json.hpp"
#include "daemon/broker.hpp"
#include "daemon/logging.hpp"

#include <boost/json.hpp>

#include <spdlog/spdlog.h>

namespace cb::daemon {
namespace ch = cb::channels;
namespace proto = cb::protocol;
namespace json = boost::json;
using protocol::CmsFault;
using protocol::CmsOp;
using protocol::CmsReply;
using protocol::CmsRequest;
using protocol::DesktopMessage;
using protocol::DesktopType;

namespace {

/// The result frame of a finished CMS request.
std::string result_of(const std::string& id, const cms::CmsResult& r) {
    if (auto* f = std::get_if<CmsFault>(&r))
        return proto::result_error_frame(id, f->code, f->message);
    auto& reply = std::get<CmsReply>(r);
    if (!reply.call_id.empty()) {
        json::object o{{"type", "result"},
                       {"id", json::parse(id.empty() ? "null" : id)},
                       {"ok", true},
                       {"data", {{"callId", reply.call_id}}}};
        return json::serialize(o);
    }
    return proto::result_ok_frame(id);
}

}  // namespace

void DesktopProtocol::on_text(const std::shared_ptr<DesktopSession>& session, std::string text) {
    auto parsed = proto::parse_desktop_message(text);
    bool authed = !session->agent().empty();
    if (auto* e = std::get_if<proto::DesktopError>(&parsed)) {
        if (!authed) {
            bool was_hello = e->type == "hello";
            static LogLimit limit;
            if (std::uint64_t left_out = 0; limit.allow(left_out))
                spdlog::info("desktop {}: {} before hello: {}{}", session->peer(),
                             was_hello ? "a bad hello" : "a message", e->message,
                             left_out_note(left_out));
            return session->close(was_hello ? ch::ByeReason::auth_failed
                                            : ch::ByeReason::auth_required);
        }
        if (e->fatal) {
            static LogLimit limit;
            if (std::uint64_t left_out = 0; limit.allow(left_out))
                spdlog::info("desktop {} {}: {}{}", session->peer(), session->agent(), e->message,
                             left_out_note(left_out));
            return session->close(ch::ByeReason::protocol_error);
        }
        return session->send_frame(proto::result_error_frame(e->id, e->code, e->message));
    }
    auto& m = std::get<DesktopMessage>(parsed);
    // While a hello is pending the session holds what comes next (DesktopSession::take_requests).
    if (!authed) {
        if (m.type != DesktopType::hello) return session->close(ch::ByeReason::auth_required);
        return hello(session, std::move(m));
    }
    // Any request after hello counts as contact (a refused one too: the desktop is there).
    broker_.contact(session->agent(), heartbeat::Contact{std::chrono::steady_clock::now(),
                                                         m.type == DesktopType::heartbeat
                                                             ? heartbeat::ContactKind::heartbeat
                                                             : heartbeat::ContactKind::request,
                                                         session->peer()});
    request(session, std::move(m));
}

void DesktopProtocol::on_binary(const std::shared_ptr<DesktopSession>& session) {
    static LogLimit limit;
    if (std::uint64_t left_out = 0; limit.allow(left_out))
        spdlog::info("desktop {} {}: a binary frame{}", session->peer(), session->agent(),
                     left_out_note(left_out));
    session->close(session->agent().empty() ? ch::ByeReason::auth_required
                                            : ch::ByeReason::protocol_error);
}

void DesktopProtocol::on_ping(const std::shared_ptr<DesktopSession>& session, bool pong) {
    // Contact for the heartbeat monitor; a ping needs no answer beyond Beast's pong. Before
    // hello there is nobody to credit it to.
    if (session->agent().empty()) return;
    broker_.contact(session->agent(), heartbeat::Contact{std::chrono::steady_clock::now(),
                                                         pong ? heartbeat::ContactKind::pong
                                                              : heartbeat::ContactKind::ping,
                                                         session->peer()});
}

void DesktopProtocol::on_closed(const std::shared_ptr<DesktopSession>& session) {
    if (session->agent().empty()) return;
    broker_.on_core_state([session](Broker::CoreState& core) {
        // A replaced connection closing changes nothing; one the hub cut off (too slow) had
        // already lost its link there: either way the hub says whether a desktop is attached.
        core.hub.detach(session->agent(), session.get());
        if (!core.hub.attached(session->agent()))
            core.monitor.set_attached(session->agent(), false);
    });
}

void DesktopProtocol::on_drained(const std::shared_ptr<DesktopSession>& session) {
    broker_.on_core_state([session](Broker::CoreState& core) {
        core.hub.pump(session->agent(), std::chrono::steady_clock::now());
    });
}

void DesktopProtocol::on_event_written(channels::SteadyTime received) {
    broker_.desktop_latency().observe(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - received));
}

DesktopProtocol::DesktopProtocol(Broker& broker)
    : broker_(broker), hellos_([&broker] { return broker.config()->limits.hellos_at_once; }) {}

void DesktopProtocol::hello(const std::shared_ptr<DesktopSession>& session, DesktopMessage m) {
    auto config = broker_.config();
    auto* agent = config->find_agent(m.agent);
    // A resume with the key of the session's last welcome costs a SHA-256; anything else goes
    // through the desktop LogonDoor: a credential verified before passes at once, a guessing
    // source or user is refused (bye tooManyAttempts), and the rest is checked off this thread,
    // an unknown agent against a stand-in of the same cost, a failure answered late.
    if (agent && m.resume_key && m.resume_session &&
        broker_.resume_keys().check(m.agent, *m.resume_session, *m.resume_key))
        return admit(session, std::move(m), {});
    // Until the hello is answered, anything more from this desktop waits (take_requests()).
    session->hold_requests();
    auto password = std::exchange(m.password, std::string());
    std::optional<std::string> checked;
    if (agent) checked = agent->password_hash;
    auto user = m.agent;
    broker_.desktop_door().check(
        session->ip(), std::move(user), std::move(password),
        agent ? &agent->password_hash : nullptr,
        [this, session, m = std::move(m), checked](LogonDoor::Result r) mutable {
            session->post(
                [this, session, m = std::move(m), checked = std::move(checked), r]() mutable {
                    if (session->closing()) return;
                    switch (r.verdict) {
                        case LogonDoor::Verdict::ok:
                            return admit(session, std::move(m), std::move(checked));
                        case LogonDoor::Verdict::wrong:
                            return session->close(ch::ByeReason::auth_failed);
                        case LogonDoor::Verdict::locked:
                            return session->close(ch::ByeReason::too_many_attempts);
                        case LogonDoor::Verdict::busy:
                            return session->close(ch::ByeReason::busy);
                    }
                });
        });
}

void DesktopProtocol::admit(const std::shared_ptr<DesktopSession>& session, DesktopMessage m,
                            std::optional<std::string> checked_hash) {
    bool by_key = !checked_hash;
    // Looked up again: a reload may have removed the agent, or changed its password, while the
    // password was checked.
    auto config = broker_.config();
    auto* agent = config->find_agent(m.agent);
    if (!agent || (checked_hash && *checked_hash != agent->password_hash)) {
        spdlog::info("desktop {}: hello refused for {}", session->peer(), m.agent);
        return session->close(ch::ByeReason::auth_failed);
    }
    session->set_agent(m.agent);
    std::optional<ch::ResumeRequest> resume;
    if (m.resume_session) resume = ch::ResumeRequest{*m.resume_session, m.resume_last_seq};
    auto interval =
        std::chrono::duration_cast<std::chrono::seconds>(config->profile_of(*agent).interval)
            .count();
    // The hello is contact now, whatever the wait below: an agent watched since the restart is
    // not judged silent while its hello waits for its turn.
    auto said = std::chrono::steady_clock::now();
    broker_.contact(m.agent,
                    heartbeat::Contact{said, heartbeat::ContactKind::hello, session->peer()});
    // Until the core has attached it, anything more from this desktop waits (take_requests()).
    session->hold_requests();
    // Through the core a few at a time: a storm of thousands of hellos (a restart) waits here,
    // not on the core strand ahead of the CMSs' events.
    hellos_.run([this, session, resume, interval, by_key, default_system = agent->cms,
                 profile = config->profile_of(*agent), agent_id = m.agent, said] {
        broker_.on_core_state([this, session, resume, interval, by_key, default_system, profile,
                               agent_id, said](Broker::CoreState& core) {
            // However this ends, the next hello waiting gets its turn.
            struct Turn {
                transport::InFlightLimit& limit;
                ~Turn() { limit.done(); }
            } turn{hellos_};
            // Closed while it waited: its detach has passed already, and attaching it now would
            // replace a live connection of the agent with a dead one.
            if (session->closing()) return;
            // A hello that reaches the core once the broker is stopping gets what the others got.
            if (broker_.stopping()) return session->close(ch::ByeReason::shutdown);
            // Let in by a resume key, which only ever opens the session it was issued for: if that
            // session ended meanwhile (a heartbeat logoff), the key is no good for a new one.
            if (by_key && !core.hub.holds(agent_id, resume->token)) {
                spdlog::info("desktop {}: resume key of {} for a session that has ended",
                             session->peer(), agent_id);
                return session->close(ch::ByeReason::auth_failed);
            }
            // The resume key rotates with every welcome.
            auto key = ResumeKeys::make();
            auto a = core.hub.attach(agent_id, resume, session, default_system, key.hash);
            broker_.resume_keys().set(agent_id, a.token, key.hash);
            // The agent is back: items orphaned from them are theirs again.
            broker_.agent_back(agent_id);
            // A hello is contact: a resume inside the window clears any suspicion.
            core.actions = core.monitor.watch(
                agent_id, a.system, profile,
                heartbeat::Contact{said, heartbeat::ContactKind::hello, session->peer()});
            if (a.replaced) {
                spdlog::info("desktop {}: a new hello replaces the connection of {}",
                             session->peer(), agent_id);
                a.replaced->close(ch::ByeReason::replaced);
            }
            session->send_frame(proto::welcome_frame(
                a.token, a.seq, a.resumed,
                static_cast<std::uint64_t>(std::max<long long>(1, interval)), key.key));
            if (!a.replay.empty()) session->send_events(std::move(a.replay));
            if (a.snapshot) {
                // Lookups by key only: a hello must not cost a pass over every agent or item.
                std::string agent_json;
                if (auto* state = core.registry.find_agent(
                        a.system.empty() ? default_system : a.system, agent_id))
                    agent_json = json::serialize(ch::to_json(*state));
                ch::ItemFilter filter;
                filter.agent = agent_id;
                json::array items;
                for (auto& i : core.registry.items(filter))
                    items.push_back(ch::to_json(i));
                session->send_frame(
                    proto::snapshot_frame(a.seq, agent_json, json::serialize(items), a.resync));
            }
            // Attached: the session takes requests, the one it held first. Posted behind the
            // welcome (and the replay and snapshot), so an answer comes after them.
            session->post([session] { session->take_requests(); });
            spdlog::info("desktop {}: {} {} (session seq {}{})", session->peer(), agent_id,
                         a.resumed ? "resumed" : "logged in", a.seq, a.resync ? ", resync" : "");
            core.hub.pump(agent_id, std::chrono::steady_clock::now());
        });
    });
}

void DesktopProtocol::request(const std::shared_ptr<DesktopSession>& session, DesktopMessage m) {
    auto config = broker_.config();
    auto* agent = config->find_agent(session->agent());
    if (!agent) return session->close(ch::ByeReason::auth_failed);  // removed by a reload
    auto id = m.id;
    auto reply = [session, id](cms::CmsResult r) { session->send_frame(result_of(id, r)); };
    switch (m.type) {
        case DesktopType::hello:
            return session->send_frame(
                proto::result_error_frame(id, "invalidMessage", "hello was said already"));
        case DesktopType::heartbeat:  // answered from the read, with no post
            return session->reply(proto::heartbeat_frame(ch::iso_utc()));
        case DesktopType::ack:
            return broker_.on_core_state(
                [agent = session->agent(), seq = m.seq](auto& core) { core.hub.ack(agent, seq); });
        case DesktopType::monitor:
            if (agent->role != config::Role::supervisor)
                return session->send_frame(
                    proto::result_error_frame(id, "forbidden", "only supervisors may monitor"));
            if (m.scope != "all" && !broker_.cms().known(m.scope.substr(7)))
                return session->send_frame(proto::result_error_frame(
                    id, "unknownSystem", "no CMS system " + m.scope.substr(7)));
            broker_.on_core_state([agent = session->agent(), scope = m.scope](auto& core) {
                core.hub.monitor(agent, scope);
            });
            return session->send_frame(proto::result_ok_frame(id));
        case DesktopType::command:
            return item_command(session, std::move(m));
        default:
            break;
    }
    // Agent-level requests go to the system the agent is logged on at (logon names it).
    broker_.on_core_state([this, session, m = std::move(m), reply,
                           default_system = agent->cms](Broker::CoreState& core) mutable {
        auto system = core.hub.system_of(session->agent());
        if (m.type == DesktopType::logon) system = m.system.empty() ? default_system : m.system;
        if (system.empty()) system = default_system;
        CmsRequest r;
        r.user_id = session->agent();
        switch (m.type) {
            case DesktopType::logon:
                r.op = CmsOp::logon;
                r.address = m.address;
                r.channels = m.channels.empty() ? std::vector<std::string>{"phone", "chat", "email"}
                                                : m.channels;
                break;
            case DesktopType::logoff:
                r.op = CmsOp::logoff;
                r.reason = m.reason.empty() ? "desktop" : m.reason;
                break;
            case DesktopType::set_state:
                r.op = CmsOp::set_work_mode;
                r.state = m.state;
                r.reason_code = m.reason_code;
                break;
            case DesktopType::make_call:
                r.op = CmsOp::make_call;
                r.to = m.to;
                r.attached_data = m.attached_data;
                break;
            default:
                return;
        }
        auto op = r.op;
        auto agent = session->agent();
        broker_.cms().request(
            system, std::move(r), [this, reply, op, agent, system](cms::CmsResult result) {
                bool ok = std::holds_alternative<CmsReply>(result);
                if (ok && (op == CmsOp::logon || op == CmsOp::logoff))
                    broker_.on_core_state([this, agent, system, op](Broker::CoreState& core) {
                        auto now_on = op == CmsOp::logon ? system : std::string();
                        core.hub.set_system(agent, now_on);
                        core.monitor.set_system(agent, now_on);
                        // Logged on again from the desktop: its orphans are re-adopted.
                        if (op == CmsOp::logon) broker_.agent_back(agent, true);
                    });
                reply(std::move(result));
            });
    });
}

void DesktopProtocol::item_command(const std::shared_ptr<DesktopSession>& session,
                                   DesktopMessage m) {
    auto config = broker_.config();
    auto* agent = config->find_agent(session->agent());
    broker_.on_core_state([this, session, m = std::move(m),
                           default_system = agent ? agent->cms : std::string()](
                              Broker::CoreState& core) mutable {
        auto fail = [&](std::string_view code, std::string message) {
            session->send_frame(proto::result_error_frame(m.id, code, message));
        };
        auto system = !m.system.empty() ? m.system : core.hub.system_of(session->agent());
        if (system.empty()) system = default_system;
        const ch::Item* item = core.registry.find(system, m.item);
        if (!item) return fail("notFound", "no live item " + m.item + " at " + system);
        if (!item->agent_id || *item->agent_id != session->agent())
            return fail("forbidden", m.item + " is not yours");
        auto op_name = proto::cms_operation(m.op, item->channel);
        if (!op_name)
            return fail("invalidField", "\"" + m.op + "\" does not apply to a " +
                                            std::string(ch::to_string(item->channel)) + " item");
        CmsRequest r;
        r.op = *proto::cms_op_from_name(*op_name);
        r.user_id = session->agent();
        r.item_id = m.item;
        r.to = m.to;
        r.mode = m.mode;
        r.text = m.text;
        r.reason = m.reason.empty() ? "rejected" : m.reason;
        r.attached_data = m.attached_data;
        broker_.cms().request(system, std::move(r), [session, id = m.id](cms::CmsResult result) {
            session->send_frame(result_of(id, result));
        });
    });
}

}  // namespace cb::daemon
