// The simulator's control API (/control/...), its scenario and --preload.
#include "sim/state.hpp"

namespace cb::sim {

void Simulator::State::preload(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("--preload " + path + ": cannot be read");
    std::stringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    auto doc = json::parse(text.str(), ec);
    if (ec || !doc.is_array())
        throw std::runtime_error("--preload " + path + ": not a JSON array of calls");
    for (auto& v : doc.as_array()) {
        auto* o = v.if_object();
        auto* id = o ? o->if_contains("id") : nullptr;
        auto* agent = o ? o->if_contains("agent") : nullptr;
        auto* version = o ? o->if_contains("version") : nullptr;
        if (!id || !id->is_string() || !ch::valid_item_id(id->as_string()) || !agent ||
            !agent->is_string() || (version && !version->is_int64()))
            throw std::runtime_error("--preload " + path + ": not a call: " + json::serialize(v));
        auto i = new_item(ch::Channel::phone, std::string(agent->as_string()), {},
                          std::string(id->as_string()));
        i.state = ch::State::connected;
        i.capabilities = capabilities(i);
        i.version = version ? static_cast<std::uint64_t>(version->as_int64()) : 1;
        items[i.id] = std::move(i);
    }
    spdlog::info("{} call(s) preloaded from {}", doc.as_array().size(), path);
}

json::value Simulator::State::state_json() const {
    json::array as, is;
    for (auto& [id, a] : agents)
        as.push_back({{"id", id},
                      {"state", ch::to_string(a.state.state)},
                      {"reasonCode", a.state.reason_code}});
    for (auto& [id, i] : items)
        is.push_back({{"id", id},
                      {"channel", ch::to_string(i.channel)},
                      {"state", ch::to_string(i.state)},
                      {"version", i.version},
                      {"agentId", i.agent_id.value_or("")}});
    json::object reqs;
    for (auto& [op, n] : requests)
        reqs[op] = n;
    json::object acks;
    for (auto& [id, a] : acked)
        acks[id] = json::object{{"version", a.version}, {"state", ch::to_string(a.state)}};
    return json::object{{"offerRate", offer_rate},   {"acked", std::move(acks)},
                        {"system", options.system},  {"subscribed", static_cast<bool>(broker)},
                        {"brokerUrl", broker_url},   {"agents", std::move(as)},
                        {"items", std::move(is)},    {"requests", std::move(reqs)},
                        {"eventsSent", events_sent}, {"eventsFailed", events_failed},
                        {"stalled", stalled}};
}

json::value Simulator::State::control(std::string_view action, const json::object& body) {
    auto text = [&](const char* key, bool required) -> std::string {
        auto* v = body.if_contains(key);
        if (!v) {
            if (required) throw std::invalid_argument(std::string("missing \"") + key + "\"");
            return {};
        }
        if (!v->is_string())
            throw std::invalid_argument(std::string("\"") + key + "\" must be a string");
        return std::string(v->as_string());
    };
    if (action == "offer") {
        auto c = ch::channel_from_string(text("channel", true));
        if (!c) throw std::invalid_argument("\"channel\" must be phone, chat or email");
        auto id = text("id", false);
        if (!id.empty() && !ch::valid_item_id(id))
            throw std::invalid_argument("\"id\" is not a valid item ID");
        auto offered = offer(*c, text("agent", false), text("from", false), id);
        if (offered.empty()) throw std::runtime_error("no agent is ready for it");
        return json::object{{"id", offered}};
    }
    if (action == "post") {
        customer_posts(text("chat", true), text("text", true));
        return json::object{{"ok", true}};
    }
    if (action == "end") {
        auto id = text("item", true);
        if (!items.count(id)) throw std::runtime_error("no item " + id);
        customer_ends(id);
        return json::object{{"ok", true}};
    }
    if (action == "fail") {
        auto op = text("op", true);
        if (!protocol::cms_op_from_name(op))
            throw std::invalid_argument("\"op\" is not an IciCms operation");
        unsigned count = 1;
        if (auto* n = body.if_contains("count"); n && n->is_int64())
            count = static_cast<unsigned>(n->as_int64());
        auto code = text("code", false);
        fail[op] = {count, code.empty() ? "rejected" : code};
        return json::object{{"ok", true}};
    }
    if (action == "stall") {
        auto* on = body.if_contains("on");
        if (!on || !on->is_bool()) throw std::invalid_argument("\"on\" must be true or false");
        stalled = on->as_bool();
        if (!stalled) {
            auto waiting = std::move(held);
            held.clear();
            for (auto& h : waiting)
                answer(std::move(h.body), std::move(h.respond));
        }
        return json::object{{"ok", true}};
    }
    if (action == "rate") {
        auto* n = body.if_contains("offersPerSecond");
        double rate = n && n->is_number() ? n->to_number<double>() : -1;
        if (rate < 0 || rate > 100000)
            throw std::invalid_argument("\"offersPerSecond\" must be a number, 0 to 100000");
        offer_rate = rate;
        ++offer_round;  // the timer's pending round, if any, ends
        offer_timer.cancel();
        schedule_offers();
        return json::object{{"ok", true}};
    }
    if (action == "drop") {
        auto id = text("item", true);
        if (!items.erase(id)) throw std::runtime_error("no item " + id);
        return json::object{{"ok", true}};
    }
    throw std::invalid_argument("no control action " + std::string(action));
}

void Simulator::State::play_scenario() {
    std::ifstream in(options.scenario);
    std::stringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    auto doc = json::parse(text.str(), ec);
    if (ec || !doc.is_array()) {
        spdlog::error("scenario {}: not a JSON array of steps", options.scenario);
        return;
    }
    for (auto& step : doc.as_array()) {
        if (!step.is_object() || !step.as_object().contains("do")) {
            spdlog::error("scenario {}: a step without \"do\" is skipped", options.scenario);
            continue;
        }
        auto& o = step.as_object();
        std::chrono::milliseconds at{0};
        if (auto* a = o.if_contains("at"); a && a->is_string())
            if (auto d = config::parse_duration(std::string(a->as_string())))
                at = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
        auto run = [this, o] {
            try {
                control(std::string(o.at("do").as_string()), o);
            } catch (const std::exception& e) {
                spdlog::warn("scenario step {}: {}", json::serialize(o), e.what());
            }
        };
        if (at.count() == 0)
            net::post(ioc, run);
        else
            after(at, run);
    }
}

}  // namespace cb::sim
