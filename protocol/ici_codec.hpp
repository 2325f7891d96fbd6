// The in-memory SOAP codec of the IciBroker port: gate, then gSOAP (strict, UTF-8 strings, SOAP
// 1.1 and 1.2), then conversion to domain events; and the encoding of responses and faults.
//
// gSOAP contexts are not thread-safe: each thread uses its own codec (for_this_thread()), and a
// call never suspends, so nothing of a context outlives the call that used it. No gSOAP type
// appears in this header.
#pragma once

#include "channels/item.hpp"
#include "channels/registry.hpp"
#include "protocol/fault.hpp"
#include "protocol/xml_gate.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace cb::protocol {

enum class Operation {
    phone_call_changed,
    chat_changed,
    chat_new_posting,
    message_changed,
    user_changed,
    subscription_ended,
    count,  ///< not an operation: how many there are. A new one goes above.
};
inline constexpr std::size_t kOperationCount = static_cast<std::size_t>(Operation::count);
std::string_view to_string(Operation op);
std::optional<Operation> operation_from_name(std::string_view local_name);

/// What a response needs to know of its request.
struct ReplyContext {
    SoapVersion version = SoapVersion::v11;
    std::optional<Operation> operation;
    std::optional<std::string> message_id;
};

struct DecodedEvent {
    ReplyContext reply;
    channels::Event event;
};

struct DecodeFailed {
    ReplyContext reply;
    Fault fault;
};

struct CodecLimits {
    GateLimits gate;
    std::size_t max_string = 65536;  ///< longest string content
    std::size_t max_occurs = 10000;  ///< longest list
};

class IciServerCodec {
  public:
    IciServerCodec();
    ~IciServerCodec();
    IciServerCodec(const IciServerCodec&) = delete;
    IciServerCodec& operator=(const IciServerCodec&) = delete;

    /// The codec of the calling thread.
    static IciServerCodec& for_this_thread();

    /// Gate, decode and convert one request body. `system` is the CMS the request comes from
    /// (from its credentials); `assumed` is the version to answer in if the body does not say.
    std::variant<DecodedEvent, DecodeFailed> decode(std::string_view body,
                                                    const std::string& system,
                                                    const CodecLimits& limits, SoapVersion assumed);

    /// The response to an event that was taken (HTTP 200). nullopt if gSOAP could not write it:
    /// the caller then answers with server_fault(); a partial message is never returned.
    std::optional<std::string> encode_status(const ReplyContext& reply, channels::Outcome outcome);
    /// A fault response (HTTP status from http_status()). nullopt if gSOAP could not write it,
    /// as for encode_status().
    std::optional<std::string> encode_fault(const ReplyContext& reply, const Fault& fault);
    /// The answer when a response could not be encoded (HTTP 500): a fixed soap:Server (SOAP 1.2:
    /// Receiver) fault without detail. Written by hand, not by gSOAP, so it cannot fail.
    static std::string_view server_fault(SoapVersion version);

    /// Makes every later encode fail once its output passes `bytes`, as a failed write would;
    /// nullopt for no limit (the default). The seam for tests of the failure paths.
    void limit_output(std::optional<std::size_t> bytes);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cb::protocol
