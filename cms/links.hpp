// The broker as a SOAP client of every configured CMS (PROTOCOL.md section 2): one pooled HTTP
// client per system, requests with the context header (a fresh messageId and the userId), a
// timeout per request, automatic retry only for getSystemInfo, getItems and subscribe; the
// probes (getSystemInfo) the broker sends when heartbeat::CmsProbes says they are due, and what
// follows from the availability it decides: subscribed whenever a system comes (back) up, and
// again when it reports that its subscription ended or a probe finds it unsubscribed.
//
// Ownership: a system's link state (status) is guarded by its own mutex. request()
// may be called from any thread, the core included: it only posts, and the request is encoded
// (CmsCodec::for_this_thread()) and sent from an I/O thread. Completions run on an I/O thread,
// never inside request(): on the HTTP client's strand once the request went out. Nothing here
// touches the registry: availability changes are reported through the callback given to start().
#pragma once

#include "config/config.hpp"
#include "protocol/cms_codec.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cb::transport {
class TlsCredentials;
}

namespace cb::cms {

struct SystemStatus {
    std::string id;
    std::string url;
    std::optional<bool> available;  ///< nullopt until the first probe has an answer or times out
    bool subscribed = false;
    std::string name;     ///< from getSystemInfo
    std::string version;  ///< from getSystemInfo
    std::string state;    ///< up | degraded | maintenance
    std::optional<std::chrono::system_clock::time_point> last_probe;
    std::string last_error;
    std::uint64_t requests = 0;
    std::uint64_t failures = 0;
};

using CmsResult = std::variant<protocol::CmsReply, protocol::CmsFault>;

class CmsLinks {
  public:
    using Done = std::function<void(CmsResult)>;
    using Subscribed = std::function<void(const std::string& system)>;

    explicit CmsLinks(boost::asio::io_context& ioc);
    ~CmsLinks();

    /// Creates a link per configured CMS. `app_id` and `app_url` are what subscribe tells each
    /// CMS. `subscribed` runs (on an I/O thread) after every subscribe the CMS accepted.
    void start(const config::Config& config, std::string app_id, std::string app_url,
               Subscribed subscribed = {});
    /// Closes the connections; no probe or subscribe leaves after this.
    void stop();
    /// The TLS of every https link, by system (set by start()): reloaded with the config.
    const std::vector<std::pair<std::string, std::shared_ptr<transport::TlsCredentials>>>& tls()
        const {
        return tls_;
    }
    /// Sends getSystemInfo to `system` (any thread); `done(answered)` runs on an I/O thread,
    /// never inside this call: true if the CMS answered it with a reply (not a fault, a timeout
    /// or a transport error). The answer's name, version and state go into status().
    void probe(const std::string& system, std::function<void(bool answered)> done);
    /// The broker decided that `system` is available (it subscribes at the CMS, then runs
    /// `then`) or unavailable (no longer subscribed; `then` runs). The status changes at once,
    /// so calls from one thread (the core) take effect in their order; `then` runs on an I/O
    /// thread.
    void set_available(const std::string& system, bool available, std::function<void()> then);

    bool known(const std::string& system) const;
    /// The CMS said its subscription ended (subscriptionEnded): the link subscribes again now,
    /// and at every probe after that until the CMS accepts. Any thread.
    void subscription_ended(const std::string& system);
    /// Sends a request from an I/O thread; `done` runs there exactly once, never inside this
    /// call, with the reply or a fault (a CMS fault, or code "timeout" / "unavailable" /
    /// "malformed" / "unauthorized" / "unknownSystem").
    void request(const std::string& system, protocol::CmsRequest request, Done done);
    std::vector<SystemStatus> status() const;
    /// What every CMS reply must keep to (limits maxXmlDepth, maxAttributes) and how much of a
    /// CMS's fault text is passed on (limits maxFaultTextBytes): set by start() and again on
    /// each reload. Any thread.
    void set_reply_limits(const config::Limits& limits);

    struct Link;

  private:
    boost::asio::io_context& ioc_;
    std::map<std::string, std::shared_ptr<Link>> links_;
    std::vector<std::pair<std::string, std::shared_ptr<transport::TlsCredentials>>> tls_;
};

}  // namespace cb::cms
