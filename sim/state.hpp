// The simulator's state: its agents and items, the IciCms port it serves, the events it sends to
// the broker and the offers it makes (defined here); the control API, the scenario and --preload
// are in control.cpp. Included by simulator.cpp and control.cpp only. The state belongs to the
// simulator's one thread.
#pragma once

#include "sim/simulator.hpp"

#include "config/config.hpp"
#include "daemon/auth.hpp"
#include "protocol/cms_codec.hpp"
#include "transport/http_client.hpp"
#include "transport/tls.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

namespace cb::sim {
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace ch = cb::channels;
using protocol::CmsFault;
using protocol::CmsOp;
using protocol::CmsReply;
using protocol::CmsRequest;

struct Simulator::State {
    struct Agent {
        ch::AgentState state;
        bool logged_on() const { return state.state != ch::AgentStateValue::logged_off; }
    };
    struct FailRule {
        unsigned count;
        std::string code;
    };
    struct Stalled {
        transport::Respond respond;
        std::string body;
    };

    net::io_context& ioc;
    const Options& options;
    std::map<std::string, Agent> agents;
    std::map<std::string, ch::Item> items;  // live items by ID
    std::map<std::string, FailRule> fail;   // by operation name
    std::map<std::string, std::uint64_t> requests;
    bool stalled = false;
    std::vector<Stalled> held;
    std::shared_ptr<transport::HttpClient> broker;
    std::string broker_url;
    std::uint64_t next_id = 1;
    std::uint64_t next_message = 1;
    std::uint64_t events_sent = 0, events_failed = 0;
    struct Acked {
        std::uint64_t version = 0;
        ch::State state = ch::State::initiated;
    };
    std::map<std::string, Acked> acked;  // by item ID; only with --record-acks
    double offer_rate = 0;               // offers per second; the control action "rate" sets it
    std::uint64_t offer_round = 0;       // a new rate starts a new round of the offer timer
    std::size_t round_robin = 0;
    bool scenario_played = false;
    std::mt19937 rng{std::random_device{}()};
    net::steady_timer offer_timer;

    State(net::io_context& i, const Options& o)
        : ioc(i), options(o), offer_rate(o.offer_rate), offer_timer(i) {
        for (auto& a : o.agents) {
            Agent ag;
            ag.state.system = o.system;
            ag.state.user_id = a;
            agents[a] = ag;
        }
    }

    // ---- events to the broker ----

    void send(ch::Event event) {
        if (!broker) {
            ++events_failed;
            spdlog::warn("no broker has subscribed: an event is not delivered");
            return;
        }
        auto id = options.system + "-m" + std::to_string(next_message++);
        auto body = protocol::CmsCodec::for_this_thread().encode_event(event, id);
        std::optional<std::pair<std::string, Acked>> item;
        if (auto* i = std::get_if<ch::Item>(&event); i && options.record_acks)
            item.emplace(i->id, Acked{i->version, i->state});
        broker->post(std::move(body), "", options.request_timeout,
                     [this, id, item](transport::HttpReply r) {
                         if (r.ok && r.status == 200) {
                             ++events_sent;
                             // Answered 200 (accepted, duplicate or stale): the broker holds this
                             // version or a newer one.
                             if (item && item->second.version >= acked[item->first].version)
                                 acked[item->first] = item->second;
                             return;
                         }
                         ++events_failed;
                         spdlog::warn("event {} not taken by the broker: {} {}", id,
                                      r.ok ? std::to_string(r.status) : r.error,
                                      r.ok ? r.body.substr(0, 300) : "");
                     });
    }

    void changed(ch::Item& item) {
        ++item.version;
        item.changed_at = ch::iso_utc();
        ch::Item copy = item;
        if (ch::is_terminal(item.state)) items.erase(item.id);
        send(std::move(copy));
    }

    void agent_changed(Agent& a) { send(a.state); }

    // ---- items ----

    static std::vector<std::string> capabilities(const ch::Item& i) {
        switch (i.state) {
            case ch::State::alerting:
                return {"answer", "reject"};
            case ch::State::connected:
                return {"hangup", "hold", "transfer"};
            case ch::State::held:
                return {"retrieve", "hangup"};
            case ch::State::initiated:
                return {"hangup"};
            case ch::State::offered:
                return {"accept"};
            case ch::State::active:
                return i.channel == ch::Channel::chat ? std::vector<std::string>{"post", "end"}
                                                      : std::vector<std::string>{"close"};
            default:
                return {};
        }
    }

    void set_state(ch::Item& i, ch::State s) {
        i.state = s;
        i.capabilities = capabilities(i);
        changed(i);
    }

    std::string random_number() {
        std::uniform_int_distribution<int> d(1000000, 9999999);
        return "+4930" + std::to_string(d(rng));
    }

    /// Offers a new item to `agent` (or the next ready agent); the ID, or "" if nobody is ready.
    std::string offer(ch::Channel channel, std::string agent, std::string from, std::string id) {
        if (agent.empty()) agent = next_ready(channel);
        if (agent.empty()) return {};
        auto i = new_item(channel, agent, from, id);
        auto& stored = items[i.id] = i;
        changed(stored);
        auto item_id = stored.id;
        after(options.ring_time, [this, item_id] {
            auto it = items.find(item_id);
            if (it == items.end()) return;
            auto& i = it->second;
            if (i.state == ch::State::alerting) set_state(i, ch::State::disconnected);
        });
        return item_id;
    }

    /// A new item (not yet held or announced): offered to `agent`, from `from` (a random
    /// number if empty), with the ID `id` or the next number.
    ch::Item new_item(ch::Channel channel, const std::string& agent, const std::string& from,
                      const std::string& id) {
        ch::Item i;
        i.system = options.system;
        i.channel = channel;
        i.id = !id.empty() ? id
                           : std::string(channel == ch::Channel::phone  ? "call-"
                                         : channel == ch::Channel::chat ? "chat-"
                                                                        : "mail-") +
                                 std::to_string(next_id++);
        i.agent_id = agent;
        std::string customer = from.empty() ? random_number() : from;
        i.participants = {{agent, "agent", agent}, {"customer", "customer", customer}};
        switch (channel) {
            case ch::Channel::phone:
                i.state = ch::State::alerting;
                i.direction = "inbound";
                i.remote_numbers = {customer};
                i.local_address = agent_address(agent);
                i.container_id = "line-1";
                break;
            case ch::Channel::chat:
                i.state = ch::State::offered;
                i.topic = "Question about an order";
                i.customer_name = "Customer " + customer.substr(customer.size() - 4);
                i.container_id = "chat-queue";
                break;
            case ch::Channel::email:
                i.state = ch::State::offered;
                i.folder = "inbox";
                i.originator = "customer" + customer.substr(customer.size() - 4) + "@example.com";
                i.subject = "Invoice";
                i.container_id = "mail-queue";
                break;
        }
        i.capabilities = capabilities(i);
        return i;
    }

    /// Holds the calls listed in `path` (a JSON array of {"id", "agent", "version"?}) as
    /// connected from the start, without telling the broker: what a CMS has after a broker
    /// crash. Throws std::runtime_error for a file it cannot use.
    void preload(const std::string& path);

    std::string agent_address(const std::string& agent) {
        auto it = agents.find(agent);
        if (it != agents.end() && !it->second.state.addresses.empty())
            return it->second.state.addresses.front();
        return "+49301000";
    }

    std::string next_ready(ch::Channel channel) {
        std::vector<std::string> ready;
        for (auto& [id, a] : agents) {
            if (a.state.state != ch::AgentStateValue::ready) continue;
            auto& cs = a.state.channels;
            if (!cs.empty() &&
                std::find(cs.begin(), cs.end(), std::string(ch::to_string(channel))) == cs.end())
                continue;
            ready.push_back(id);
        }
        if (ready.empty()) return {};
        return ready[round_robin++ % ready.size()];
    }

    template <typename F>
    void after(std::chrono::milliseconds d, F f) {
        if (d.count() <= 0) return;
        auto t = std::make_shared<net::steady_timer>(ioc, d);
        t->async_wait([t, f = std::move(f)](const boost::system::error_code& ec) {
            if (!ec) f();
        });
    }

    void customer_ends(const std::string& id) {
        auto it = items.find(id);
        if (it == items.end()) return;
        auto& i = it->second;
        switch (i.channel) {
            case ch::Channel::phone:
                return set_state(i, ch::State::disconnected);
            case ch::Channel::chat:
                return set_state(i, ch::State::ended);
            case ch::Channel::email:
                return set_state(i, ch::State::closed);
        }
    }

    void customer_posts(const std::string& chat, const std::string& text) {
        send(ch::PostingEvent{options.system,
                              ch::ChatPosting{chat, "customer", text, false, ch::iso_utc()}});
    }

    void talk_timer(const std::string& id) {
        after(options.talk_time, [this, id] { customer_ends(id); });
    }

    void schedule_offers() {
        if (offer_rate <= 0) return;
        auto gap = std::chrono::microseconds(static_cast<long long>(1e6 / offer_rate));
        offer_timer.expires_after(gap);
        offer_timer.async_wait([this, round = offer_round](const boost::system::error_code& ec) {
            if (ec || round != offer_round) return;
            std::uniform_int_distribution<std::size_t> d(0, options.offer_channels.size() - 1);
            auto c = ch::channel_from_string(options.offer_channels[d(rng)]);
            offer(*c, {}, {}, {});
            schedule_offers();
        });
    }

    // ---- the IciCms port ----

    /// Carries out one request; the reply, or the fault to answer with.
    std::variant<CmsReply, CmsFault> serve(const CmsRequest& r) {
        auto refuse = [](std::string code, std::string message) {
            return CmsFault{std::move(code), std::move(message), {}, true};
        };
        CmsReply reply;
        auto item_for = [&](ch::Channel c) -> std::variant<ch::Item*, CmsFault> {
            auto it = items.find(r.item_id);
            if (it == items.end() || it->second.channel != c)
                return refuse("unknownItem",
                              "no " + std::string(ch::to_string(c)) + " item " + r.item_id);
            if (!r.user_id.empty() && it->second.agent_id && *it->second.agent_id != r.user_id)
                return refuse("forbidden", r.item_id + " belongs to another agent");
            return &it->second;
        };
        auto move = [&](ch::Channel c, std::initializer_list<ch::State> from,
                        ch::State to) -> std::variant<CmsReply, CmsFault> {
            auto found = item_for(c);
            if (auto* f = std::get_if<CmsFault>(&found)) return *f;
            auto* i = std::get<ch::Item*>(found);
            if (std::find(from.begin(), from.end(), i->state) == from.end())
                return refuse("invalidState",
                              r.item_id + " is " + std::string(ch::to_string(i->state)));
            auto id = i->id;
            bool starts_talk = to == ch::State::connected || to == ch::State::active;
            net::post(ioc, [this, id, to, starts_talk] {
                auto it = items.find(id);
                if (it == items.end()) return;
                set_state(it->second, to);
                if (starts_talk && it != items.end()) talk_timer(id);
            });
            return reply;
        };
        auto agent_for = [&]() -> Agent* {
            auto it = agents.find(r.user_id);
            if (it == agents.end()) {
                if (!options.agents.empty()) return nullptr;
                Agent a;
                a.state.system = options.system;
                a.state.user_id = r.user_id;
                it = agents.emplace(r.user_id, a).first;
            }
            return &it->second;
        };
        auto agent_event = [&](const std::string& user) {
            net::post(ioc, [this, user] { agent_changed(agents[user]); });
        };

        switch (r.op) {
            case CmsOp::get_system_info:
                reply.name = "commbroker-cmss " + options.system;
                reply.version = COMMBROKER_VERSION;
                reply.state = "up";
                return reply;
            case CmsOp::subscribe: {
                auto url = transport::HttpUrl::parse(r.app_url);
                if (!url) return refuse("invalidField", "appURL is not an http:// or https:// URL");
                if (r.app_url != broker_url || !broker) {
                    transport::HttpClientOptions o;
                    if (url->tls) {
                        try {
                            o.tls = transport::TlsCredentials::load(
                                transport::TlsCredentials::Side::client,
                                {{}, {}, options.broker_ca});
                        } catch (const std::exception& e) {
                            return refuse("invalidField",
                                          std::string("cannot reach an https appURL: ") + e.what());
                        }
                    }
                    if (broker) broker->close();
                    o.url = *url;
                    o.user = options.broker_user;
                    o.password = options.broker_password;
                    o.max_connections = options.connections;
                    broker = transport::HttpClient::create(ioc, o);
                    broker_url = r.app_url;
                }
                spdlog::info("{} subscribed from {}", r.app_id, r.app_url);
                reply.subscription_id = options.system + "-sub-" + r.app_id;
                if (!scenario_played && !options.scenario.empty()) {
                    scenario_played = true;
                    net::post(ioc, [this] { play_scenario(); });
                }
                return reply;
            }
            case CmsOp::unsubscribe:
                if (broker) broker->close();
                broker.reset();
                broker_url.clear();
                return reply;
            case CmsOp::logon: {
                auto* a = agent_for();
                if (!a) return refuse("unknownUser", "no agent " + r.user_id);
                a->state.state = ch::AgentStateValue::ready;
                a->state.addresses = r.address.empty() ? std::vector<std::string>{}
                                                       : std::vector<std::string>{r.address};
                a->state.channels = r.channels;
                a->state.reason_code = 0;
                agent_event(r.user_id);
                return reply;
            }
            case CmsOp::logoff: {
                auto* a = agent_for();
                if (!a) return refuse("unknownUser", "no agent " + r.user_id);
                a->state.state = ch::AgentStateValue::logged_off;
                agent_event(r.user_id);
                return reply;
            }
            case CmsOp::set_work_mode: {
                auto* a = agent_for();
                if (!a || !a->logged_on())
                    return refuse("notLoggedOn", r.user_id + " is not logged on");
                a->state.state = *ch::agent_state_from_string(r.state);
                a->state.reason_code = r.reason_code;
                agent_event(r.user_id);
                return reply;
            }
            case CmsOp::wrap_up_required: {
                auto* a = agent_for();
                if (!a || !a->logged_on())
                    return refuse("notLoggedOn", r.user_id + " is not logged on");
                a->state.state = ch::AgentStateValue::wrap_up;
                agent_event(r.user_id);
                return reply;
            }
            case CmsOp::make_call: {
                auto* a = agent_for();
                if (!a || !a->logged_on())
                    return refuse("notLoggedOn", r.user_id + " is not logged on");
                if (!ch::valid_e164(r.to)) return refuse("invalidField", "to is not E.164");
                ch::Item i;
                i.system = options.system;
                i.channel = ch::Channel::phone;
                i.id = "call-" + std::to_string(next_id++);
                i.state = ch::State::initiated;
                i.agent_id = r.user_id;
                i.direction = "outbound";
                i.remote_numbers = {r.to};
                i.local_address = r.from.empty() ? agent_address(r.user_id) : r.from;
                i.attached_data = r.attached_data;
                i.participants = {{r.user_id, "agent", i.local_address}};
                i.capabilities = capabilities(i);
                items[i.id] = i;
                reply.call_id = i.id;
                auto id = i.id;
                net::post(ioc, [this, id] {
                    auto it = items.find(id);
                    if (it != items.end()) changed(it->second);
                });
                after(std::chrono::milliseconds(500), [this, id] {
                    auto it = items.find(id);
                    if (it == items.end() || it->second.state != ch::State::initiated) return;
                    set_state(it->second, ch::State::connected);
                    talk_timer(id);
                });
                return reply;
            }
            case CmsOp::answer_call:
                return move(ch::Channel::phone, {ch::State::alerting}, ch::State::connected);
            case CmsOp::hangup_call:
                return move(ch::Channel::phone,
                            {ch::State::initiated, ch::State::alerting, ch::State::connected,
                             ch::State::held},
                            ch::State::disconnected);
            case CmsOp::hold_call:
                return move(ch::Channel::phone, {ch::State::connected}, ch::State::held);
            case CmsOp::retrieve_call:
                return move(ch::Channel::phone, {ch::State::held}, ch::State::connected);
            case CmsOp::transfer_call:
                if (!ch::valid_e164(r.to) && agents.find(r.to) == agents.end())
                    return refuse("invalidField", "to is neither an E.164 number nor an agent");
                return move(ch::Channel::phone, {ch::State::connected, ch::State::held},
                            ch::State::disconnected);
            case CmsOp::reject_call:
                return move(ch::Channel::phone, {ch::State::alerting}, ch::State::disconnected);
            case CmsOp::accept_chat:
                return move(ch::Channel::chat, {ch::State::offered}, ch::State::active);
            case CmsOp::end_chat:
                return move(ch::Channel::chat, {ch::State::offered, ch::State::active},
                            ch::State::ended);
            case CmsOp::post_chat_message: {
                auto found = item_for(ch::Channel::chat);
                if (auto* f = std::get_if<CmsFault>(&found)) return *f;
                auto* i = std::get<ch::Item*>(found);
                if (i->state != ch::State::active)
                    return refuse("invalidState", r.item_id + " is not active");
                auto posting = ch::ChatPosting{i->id, r.user_id, r.text, false, ch::iso_utc()};
                net::post(ioc, [this, posting] {
                    send(ch::PostingEvent{options.system, posting});
                });
                return reply;
            }
            case CmsOp::accept_message:
                return move(ch::Channel::email, {ch::State::offered}, ch::State::active);
            case CmsOp::close_message:
                return move(ch::Channel::email, {ch::State::offered, ch::State::active},
                            ch::State::closed);
            case CmsOp::set_attached_data: {
                auto it = items.find(r.item_id);
                if (it == items.end()) return refuse("unknownItem", "no item " + r.item_id);
                it->second.attached_data = r.attached_data;
                auto id = r.item_id;
                net::post(ioc, [this, id] {
                    auto it = items.find(id);
                    if (it != items.end()) changed(it->second);
                });
                return reply;
            }
            case CmsOp::get_items:
                for (auto& [id, i] : items)
                    if (r.all_users || (i.agent_id && *i.agent_id == r.user_id))
                        reply.items.push_back(i);
                return reply;
        }
        return refuse("unknownOperation", "not served");
    }

    // ---- control API and scenario ----

    json::value state_json() const;

    /// One control action; throws std::invalid_argument for a bad body.
    json::value control(std::string_view action, const json::object& body);

    void play_scenario();

    void answer(std::string body, transport::Respond respond) {
        auto& codec = protocol::CmsCodec::for_this_thread();
        auto decoded = codec.decode_request(body, protocol::GateLimits{});
        transport::Response res{http::status::ok, 11};
        res.set(http::field::content_type, "text/xml; charset=utf-8");
        if (auto* f = std::get_if<CmsFault>(&decoded)) {
            res.result(http::status::internal_server_error);
            res.body() = codec.encode_fault({}, *f);
        } else {
            auto& r = std::get<CmsRequest>(decoded);
            auto op = std::string(protocol::to_string(r.op));
            ++requests[op];
            std::variant<CmsReply, CmsFault> result;
            if (auto rule = fail.find(op); rule != fail.end() && rule->second.count > 0) {
                result = CmsFault{rule->second.code, "failed on request (control API)", {}, true};
                if (--rule->second.count == 0) fail.erase(rule);
            } else {
                result = serve(r);
            }
            if (auto* f = std::get_if<CmsFault>(&result)) {
                res.result(http::status::internal_server_error);
                res.body() = codec.encode_fault(r.message_id, *f);
            } else {
                res.body() = codec.encode_reply(r, std::get<CmsReply>(result));
            }
        }
        res.prepare_payload();
        respond(std::move(res));
    }
};

}  // namespace cb::sim
