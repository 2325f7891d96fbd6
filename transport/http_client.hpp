// An HTTP/1.1 client for SOAP requests to one peer (a CMS, or the broker for the simulator):
// POSTs over a small pool of keep-alive connections, each request alone on its connection (no
// pipelining, so a slow answer never holds up another request), with a deadline per request that
// covers waiting for a connection, connecting, the TLS handshake, writing and reading. Over https
// the server's certificate chain and its name (or address) are verified; a connection made
// after TlsCredentials were renewed uses the new ones.
//
// Ownership: the pool's state lives on its own strand; post() may be called from any thread and
// its completion runs on that strand. Completions never run inside post().
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace cb::transport {

class TlsCredentials;

/// "http://host[:port]/path" or "https://…" split up; nullopt for anything else.
struct HttpUrl {
    bool tls = false;  ///< https
    std::string host;
    std::string port;
    std::string target;
    static std::optional<HttpUrl> parse(const std::string& url);
};

struct HttpClientOptions {
    HttpUrl url;
    std::string user;  ///< HTTP Basic; empty for none
    std::string password;
    unsigned max_connections = 4;
    std::size_t max_response_bytes = 16 * 1024 * 1024;
    /// requests waiting for a connection (all max_connections busy); more fail at once
    std::size_t max_waiting = 1000;
    /// For an https URL: the trusted CAs and the client certificate (TlsCredentials::Side::
    /// client); null: the system's trusted CAs and no client certificate.
    std::shared_ptr<TlsCredentials> tls;
};

struct HttpReply {
    bool ok = false;    ///< a response was read (any status)
    std::string error;  ///< why not, when !ok: "timeout", "connection refused", …
    bool timed_out = false;
    unsigned status = 0;
    std::string body;
};

class HttpClient : public std::enable_shared_from_this<HttpClient> {
  public:
    using Done = std::function<void(HttpReply)>;

    static std::shared_ptr<HttpClient> create(boost::asio::io_context& ioc,
                                              HttpClientOptions options);
    ~HttpClient();

    /// Sends `body` as text/xml with SOAPAction `action`; `done` gets the reply or the failure
    /// (at once, "busy", when max_waiting requests already wait for a connection).
    void post(std::string body, std::string action, std::chrono::milliseconds timeout, Done done);
    /// Fails what is queued and closes every connection.
    void close();

    struct Impl;

  private:
    explicit HttpClient(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace cb::transport
