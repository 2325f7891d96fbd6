// TLS for the listeners and for the broker's requests to CMSs: Asio's SSL stream over OpenSSL.
//
// Defaults, not settings: TLS 1.2 or later; for TLS 1.2 only ECDHE key exchange with AEAD
// ciphers (AES-GCM, ChaCha20-Poly1305); no compression, no renegotiation; OpenSSL's security
// level 2 at least. A client verifies the server's chain (against `caFile`, or the system's
// store) and its name or address.
//
// TlsCredentials holds the context new connections are made with; reload() reads the files
// again and replaces it, while connections already open keep the context they were made with.
// Thread-safe: current() and reload() may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace cb::transport {

using TlsContext = std::shared_ptr<boost::asio::ssl::context>;

struct TlsFiles {
    std::string certificate;  ///< PEM: the certificate chain, leaf first (a client's: optional)
    std::string key;          ///< PEM: its private key, unencrypted
    /// A client's: PEM CAs trusted for the server (empty: the system's). A server's: if given,
    /// every client must present a certificate these CAs signed.
    std::string ca_file;
};

class TlsCredentials {
  public:
    enum class Side { server, client };

    /// Loads the files; throws std::runtime_error naming the file and OpenSSL's reason.
    static std::shared_ptr<TlsCredentials> load(Side side, TlsFiles files);

    TlsContext current() const;
    /// A context made from the files as they are now, without installing it (throws like
    /// load()): a reload checks every file before it changes anything.
    TlsContext prepare() const;
    /// Installs a context prepare() made: new connections use it from now on.
    void install(TlsContext context);
    /// "CN=…, valid until …" of the certificate in use, for the log; empty for none.
    std::string summary() const;
    Side side() const { return side_; }
    const TlsFiles& files() const { return files_; }

  private:
    TlsCredentials(Side side, TlsFiles files) : side_(side), files_(std::move(files)) {}
    const Side side_;
    const TlsFiles files_;
    mutable std::mutex mutex_;
    TlsContext current_;
    std::string summary_;
};

}  // namespace cb::transport
