#include "transport/tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace cb::transport {
namespace ssl = boost::asio::ssl;

namespace {

/// For TLS 1.2: forward secrecy and authenticated encryption only. TLS 1.3's suites are all of
/// that kind; OpenSSL's defaults for them stay.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Asio's message for an error (OpenSSL's reason and library, for an SSL one).
std::string reason(const boost::system::error_code& ec) {
    ERR_clear_error();
    return ec.message();
}

void check(const boost::system::error_code& ec, const std::string& what, const std::string& file) {
    if (ec) throw std::runtime_error("cannot load " + what + " " + file + ": " + reason(ec));
}

/// A PEM key protected by a passphrase ("ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED").
bool encrypted_pem(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.find("ENCRYPTED") != std::string::npos) return true;
    return false;
}

std::string summary_of(ssl::context& ctx) {
    X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
    if (!cert) return {};
    std::string out;
    char name[256] = {};
    X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
    out = name;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
            char* data = nullptr;
            auto n = BIO_get_mem_data(bio, &data);
            out += ", valid until " + std::string(data, static_cast<std::size_t>(n));
        }
        BIO_free(bio);
    }
    return out;
}

TlsContext make(TlsCredentials::Side side, const TlsFiles& f) {
    auto ctx = std::make_shared<ssl::context>(
        side == TlsCredentials::Side::server ? ssl::context::tls_server : ssl::context::tls_client);
    auto* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    if (SSL_CTX_get_security_level(native) < 2) SSL_CTX_set_security_level(native, 2);
    SSL_CTX_set_options(
        native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1)
        throw std::runtime_error("no usable TLS 1.2 cipher in this OpenSSL");
    // Elliptic-curve key exchange only, in TLS 1.3 too (OpenSSL would also accept the far
    // costlier finite-field groups a client may ask for).
    if (SSL_CTX_set1_groups_list(native, "X25519:P-256:P-384") != 1)
        throw std::runtime_error("no usable key exchange group in this OpenSSL");
    // A key with a passphrase is refused, never asked for on a terminal.
    SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });
    boost::system::error_code ec;
    if (!f.certificate.empty()) {
        ctx->use_certificate_chain_file(f.certificate, ec);
        check(ec, "the certificate", f.certificate);
        ctx->use_private_key_file(f.key, ssl::context::pem, ec);
        // Asio keeps OpenSSL's error code in ec (and empties OpenSSL's queue).
        if (ec && ec.category() == boost::asio::error::get_ssl_category() &&
            ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            throw std::runtime_error("the key " + f.key + " does not belong to the certificate " +
                                     f.certificate);
        }
        if (ec && encrypted_pem(f.key))
            throw std::runtime_error("the key " + f.key +
                                     " is encrypted: give the broker an unencrypted key, "
                                     "readable by its user only");
        check(ec, "the key", f.key);
        if (SSL_CTX_check_private_key(native) != 1) {
            ERR_clear_error();
            throw std::runtime_error("the key " + f.key + " does not belong to the certificate " +
                                     f.certificate);
        }
    } else if (side == TlsCredentials::Side::server) {
        throw std::runtime_error("a TLS listener needs a certificate and its key");
    }
    if (side == TlsCredentials::Side::server && !f.ca_file.empty()) {
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        ctx->load_verify_file(f.ca_file, ec);
        check(ec, "the client CA file", f.ca_file);
    }
    if (side == TlsCredentials::Side::client) {
        ctx->set_verify_mode(ssl::verify_peer);
        if (f.ca_file.empty()) {
            ctx->set_default_verify_paths(ec);
            check(ec, "the system's trusted certificates", "");
        } else {
            ctx->load_verify_file(f.ca_file, ec);
            check(ec, "the CA file", f.ca_file);
        }
    }
    return ctx;
}

}  // namespace

std::shared_ptr<TlsCredentials> TlsCredentials::load(Side side, TlsFiles files) {
    auto c = std::shared_ptr<TlsCredentials>(new TlsCredentials(side, std::move(files)));
    c->install(c->prepare());
    return c;
}

TlsContext TlsCredentials::prepare() const {
    return make(side_, files_);
}

void TlsCredentials::install(TlsContext context) {
    auto summary = summary_of(*context);
    std::lock_guard lock(mutex_);
    current_ = std::move(context);
    summary_ = std::move(summary);
}

TlsContext TlsCredentials::current() const {
    std::lock_guard lock(mutex_);
    return current_;
}

std::string TlsCredentials::summary() const {
    std::lock_guard lock(mutex_);
    return summary_;
}

}  // namespace cb::transport
