// The XML gate: every SOAP request passes it before the codec sees it. It is linear in the size
// of the body and refuses what the codec handles badly or lets through (DESIGN.md section 4):
// invalid UTF-8 or XML characters, a DOCTYPE, more than `max_attributes` attributes (namespace
// declarations included) on one element, depth over `max_depth`, anything but one element after
// the envelope's Body, trailing content. It finds the SOAP version and the operation's name.
// Pure function; any thread.
#pragma once

#include "protocol/fault.hpp"

#include <string>
#include <string_view>
#include <variant>

namespace cb::protocol {

inline constexpr std::string_view kIciNamespace = "urn:commbroker:ici:1";
inline constexpr std::string_view kSoap11Namespace = "http://schemas.xmlsoap.org/soap/envelope/";
inline constexpr std::string_view kSoap12Namespace = "http://www.w3.org/2003/05/soap-envelope";
inline constexpr std::string_view kSoap11EncodingNamespace =
    "http://schemas.xmlsoap.org/soap/encoding/";
inline constexpr std::string_view kSoap12EncodingNamespace =
    "http://www.w3.org/2003/05/soap-encoding";

struct GateLimits {
    unsigned max_depth = 32;
    unsigned max_attributes = 64;
};

struct GatePassed {
    SoapVersion version = SoapVersion::v11;
    std::string operation_namespace;  ///< namespace URI of the Body child
    std::string operation;            ///< local name of the Body child
};

struct GateRefused {
    SoapVersion version = SoapVersion::v11;  ///< as far as it could be told
    Fault fault;
};

std::variant<GatePassed, GateRefused> check_envelope(std::string_view body,
                                                     const GateLimits& limits, SoapVersion assumed);

/// The first byte offset of invalid UTF-8, or of a character XML 1.0 forbids, or npos.
std::size_t find_invalid_xml_text(std::string_view text);

}  // namespace cb::protocol
