// SOAP faults of the IciBroker port (PROTOCOL.md section 1, "Faults and HTTP statuses").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cb::protocol {

enum class SoapVersion { v11 = 1, v12 = 2 };

/// detail/iciFault/code of a fault.
enum class FaultCode {
    malformed,           ///< not well-formed XML, not a SOAP envelope, a DTD, invalid UTF-8
    unknown_operation,   ///< the Body child is not an operation of the port
    invalid_field,       ///< a field is missing, of the wrong type, or breaks a rule
    invalid_transition,  ///< the state move is not allowed
    too_large,           ///< a structural limit (depth, attributes, list length, string length)
    unavailable,         ///< the journal cannot take changes, or the broker is shutting down
    count,               ///< not a code: how many there are. A new code goes above.
};
inline constexpr std::size_t kFaultCodeCount = static_cast<std::size_t>(FaultCode::count);
std::string_view to_string(FaultCode c);

struct Fault {
    FaultCode code = FaultCode::malformed;
    std::string message;
    std::string field;  ///< the field concerned, empty if none
};

/// HTTP status of a fault: 500 for SOAP 1.1, 400 for a SOAP 1.2 Sender fault, 503 when unavailable.
int http_status(SoapVersion v, const Fault& f);

inline std::string_view content_type(SoapVersion v) {
    return v == SoapVersion::v12 ? "application/soap+xml; charset=utf-8"
                                 : "text/xml; charset=utf-8";
}

}  // namespace cb::protocol
