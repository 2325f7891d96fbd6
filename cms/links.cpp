#include "cms/links.hpp"

#include "transport/http_client.hpp"
#include "transport/tls.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

namespace cb::cms {
namespace net = boost::asio;
using protocol::CmsFault;
using protocol::CmsOp;
using protocol::CmsReply;
using protocol::CmsRequest;

struct CmsLinks::Link : std::enable_shared_from_this<CmsLinks::Link> {
    explicit Link(const config::Cms& c) : cms(c) {
        status.id = c.id;
        status.url = c.url;
    }

    config::Cms cms;
    std::shared_ptr<transport::HttpClient> client;
    std::string app_id;
    std::string app_url;
    Subscribed subscribed;
    std::atomic<std::uint64_t> next_message{1};
    std::atomic<bool> stopping{false};

    mutable std::mutex mutex;  // guards status and the reply limits
    SystemStatus status;
    protocol::GateLimits gate;          // what a reply must keep to
    std::size_t max_fault_text = 1024;  // bytes of a CMS's fault text passed on

    std::chrono::milliseconds timeout() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(cms.request_timeout);
    }

    void send(CmsRequest r, Done done, std::chrono::milliseconds timeout, bool may_retry) {
        if (r.message_id.empty())
            r.message_id = app_id + "-" + cms.id + "-" + std::to_string(next_message++);
        auto body = protocol::CmsCodec::for_this_thread().encode_request(r);
        auto action = std::string(protocol::to_string(r.op));
        {
            std::lock_guard lock(mutex);
            ++status.requests;
        }
        client->post(std::move(body), action, timeout,
                     [self = shared_from_this(), r = std::move(r), done = std::move(done), timeout,
                      may_retry](transport::HttpReply reply) mutable {
                         auto result = self->interpret(r, reply, timeout);
                         bool transport = !reply.ok;
                         if (transport && may_retry && protocol::idempotent(r.op) &&
                             !self->stopping.load()) {
                             spdlog::debug("cms {}: {} failed ({}), once more", self->cms.id,
                                           protocol::to_string(r.op), reply.error);
                             return self->send(std::move(r), std::move(done), timeout, false);
                         }
                         if (std::holds_alternative<CmsFault>(result)) {
                             std::lock_guard lock(self->mutex);
                             ++self->status.failures;
                         }
                         done(std::move(result));
                     });
    }

    CmsResult interpret(const CmsRequest& r, const transport::HttpReply& reply,
                        std::chrono::milliseconds timeout) {
        if (!reply.ok) {
            if (reply.timed_out)
                return CmsFault{
                    "timeout",
                    "no answer from " + cms.id + " within " + config::format_duration(timeout),
                    {},
                    false};
            return CmsFault{
                "unavailable", cms.id + " cannot be reached: " + reply.error, {}, false};
        }
        if (reply.status == 401 || reply.status == 403)
            return CmsFault{"unauthorized",
                            cms.id + " refused the broker's credentials (HTTP " +
                                std::to_string(reply.status) + ")",
                            {},
                            false};
        protocol::GateLimits limits;
        std::size_t fault_text = 0;
        {
            std::lock_guard lock(mutex);
            limits = gate;
            fault_text = max_fault_text;
        }
        auto result =
            protocol::CmsCodec::for_this_thread().decode_reply(r.op, reply.body, cms.id, limits);
        if (auto* f = std::get_if<CmsFault>(&result)) {
            if (f->code == "malformed")
                f->message = cms.id + " answered HTTP " + std::to_string(reply.status) +
                             " with no SOAP reply (" + f->message + ")";
            // A CMS's own words go to desktops and logs: never more of them than the limit.
            f->message = channels::cut_utf8(std::move(f->message), fault_text);
        }
        return result;
    }

    void stop() { stopping.store(true); }

    /// Sends getSystemInfo and keeps what it says in the status; `done(ok)` runs on an I/O
    /// thread. Whether the system is available is the broker's call (heartbeat::CmsProbes): an
    /// answer here only subscribes again where a subscription is missing while available.
    void probe(std::function<void(bool)> done) {
        CmsRequest r;
        r.op = CmsOp::get_system_info;
        auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::min(cms.request_timeout, cms.probe_timeout));
        send(
            std::move(r),
            [self = shared_from_this(), done = std::move(done)](CmsResult result) {
                bool ok = std::holds_alternative<CmsReply>(result);
                bool subscribe_now = false;
                {
                    std::lock_guard lock(self->mutex);
                    self->status.last_probe = std::chrono::system_clock::now();
                    if (auto* reply = std::get_if<CmsReply>(&result)) {
                        self->status.name = reply->name;
                        self->status.version = reply->version;
                        self->status.state = reply->state;
                        self->status.last_error.clear();
                        subscribe_now = self->status.available == true &&
                                        !self->status.subscribed && !self->stopping.load();
                    } else {
                        auto& f = std::get<CmsFault>(result);
                        self->status.last_error = f.code + ": " + f.message;
                    }
                }
                if (subscribe_now) self->subscribe({});
                done(ok);
            },
            timeout, false);
    }

    /// What follows from the broker's decision (the status was set by CmsLinks::set_available):
    /// available: subscribe first, then `then`, so that what the broker asks of the CMS next is
    /// already reported back by event; unavailable: `then`.
    void set_available(bool available, std::function<void()> then) {
        if (available) {
            spdlog::info("cms {}: available", cms.id);
            if (client && !stopping.load()) return subscribe(std::move(then));
        } else {
            spdlog::warn("cms {}: unavailable ({})", cms.id, status_error());
        }
        if (then) then();
    }

    std::string status_error() const {
        std::lock_guard lock(mutex);
        return status.last_error;
    }

    void subscribe(std::function<void()> then) {
        CmsRequest r;
        r.op = CmsOp::subscribe;
        r.app_id = app_id;
        r.app_url = app_url;
        r.channels = {"phone", "chat", "email"};
        send(
            std::move(r),
            [self = shared_from_this(), then = std::move(then)](CmsResult result) {
                bool accepted = false;
                {
                    std::lock_guard lock(self->mutex);
                    if (auto* reply = std::get_if<CmsReply>(&result)) {
                        self->status.subscribed = true;
                        spdlog::info("cms {}: subscribed ({}) for {}", self->cms.id,
                                     reply->subscription_id, self->app_url);
                        accepted = true;
                    } else {
                        auto& f = std::get<CmsFault>(result);
                        self->status.last_error = "subscribe: " + f.code + ": " + f.message;
                        spdlog::warn(
                            "cms {}: subscribe failed: {}: {}; tried again at the "
                            "next probe",
                            self->cms.id, f.code, f.message);
                    }
                }
                if (accepted && self->subscribed) self->subscribed(self->cms.id);
                if (then) then();
            },
            timeout(), true);
    }
};

CmsLinks::CmsLinks(net::io_context& ioc) : ioc_(ioc) {}
CmsLinks::~CmsLinks() = default;

void CmsLinks::start(const config::Config& config, std::string app_id, std::string app_url,
                     Subscribed subscribed) {
    for (auto& c : config.cms) {
        auto url = transport::HttpUrl::parse(c.url);
        auto link = std::make_shared<Link>(c);
        link->app_id = app_id;
        link->app_url = app_url;
        link->subscribed = subscribed;
        if (!url) {
            spdlog::error(
                "cms {}: url {} is not an http:// or https:// URL; the system stays unavailable",
                c.id, c.url);
            link->status.available = false;
            link->status.last_error = "url is not an http:// or https:// URL";
            links_[c.id] = link;
            continue;
        }
        transport::HttpClientOptions o;
        if (url->tls) {
            try {
                o.tls =
                    transport::TlsCredentials::load(transport::TlsCredentials::Side::client,
                                                    {c.tls_certificate, c.tls_key, c.tls_ca_file});
            } catch (const std::exception& e) {
                throw std::runtime_error("cms " + c.id + ": " + e.what());
            }
            tls_.emplace_back(c.id, o.tls);
        }
        o.url = *url;
        o.user = c.user;
        o.password = c.password;
        o.max_connections = c.connections;
        o.max_response_bytes = c.max_response_bytes;
        o.max_waiting = c.max_queued_requests;
        link->client = transport::HttpClient::create(ioc_, o);
        links_[c.id] = link;
    }
    set_reply_limits(config.limits);
}

void CmsLinks::probe(const std::string& system, std::function<void(bool)> done) {
    auto it = links_.find(system);
    auto link = it == links_.end() ? nullptr : it->second;
    net::post(ioc_, [link = std::move(link), done = std::move(done)]() mutable {
        if (!link || !link->client || link->stopping.load()) return done(false);
        link->probe(std::move(done));
    });
}

void CmsLinks::set_available(const std::string& system, bool available,
                             std::function<void()> then) {
    auto it = links_.find(system);
    if (it == links_.end()) {
        if (then) net::post(ioc_, std::move(then));
        return;
    }
    auto link = it->second;
    // The status changes here, in the order the broker decides (its callers are on the core);
    // only the subscribe and `then` go to an I/O thread.
    {
        std::lock_guard lock(link->mutex);
        link->status.available = available;
        if (!available) link->status.subscribed = false;
    }
    net::post(ioc_, [link, available, then = std::move(then)]() mutable {
        link->set_available(available, std::move(then));
    });
}

void CmsLinks::stop() {
    for (auto& [id, link] : links_) {
        link->stop();
        if (link->client) link->client->close();
    }
}

bool CmsLinks::known(const std::string& system) const {
    return links_.count(system) > 0;
}

void CmsLinks::request(const std::string& system, CmsRequest r, Done done) {
    auto it = links_.find(system);
    auto link = it == links_.end() ? nullptr : it->second;
    // The caller may be the core: everything else, the encoding included, runs on an I/O thread.
    // The handler holds the link, never this.
    net::post(
        ioc_, [link = std::move(link), system, r = std::move(r), done = std::move(done)]() mutable {
            if (!link)
                return done(CmsFault{
                    "unknownSystem", "no CMS system " + system + " is configured", {}, true});
            if (!link->client)
                return done(CmsFault{"unavailable", system + " has no usable url", {}, false});
            link->send(std::move(r), std::move(done), link->timeout(), true);
        });
}

void CmsLinks::subscription_ended(const std::string& system) {
    auto it = links_.find(system);
    if (it == links_.end() || !it->second->client) return;
    auto link = it->second;
    {
        std::lock_guard lock(link->mutex);
        link->status.subscribed = false;
        if (link->stopping.load() || link->status.available != true) return;  // at the next probe
    }
    net::post(ioc_, [link] { link->subscribe({}); });
}

void CmsLinks::set_reply_limits(const config::Limits& limits) {
    for (auto& [id, link] : links_) {
        std::lock_guard lock(link->mutex);
        link->gate = {limits.max_xml_depth, limits.max_attributes};
        link->max_fault_text = limits.max_fault_text_bytes;
    }
}

std::vector<SystemStatus> CmsLinks::status() const {
    std::vector<SystemStatus> out;
    for (auto& [id, link] : links_) {
        std::lock_guard lock(link->mutex);
        out.push_back(link->status);
    }
    return out;
}

}  // namespace cb::cms
