// The WSDLs of both ports, as generated from ici.h at build time.
#pragma once

#include <string>
#include <string_view>

namespace cb::protocol {

extern const std::string_view kBrokerWsdl;  ///< IciBroker, served by commbrokerd
extern const std::string_view kCmsWsdl;     ///< IciCms, to be served by each CMS

/// The WSDL with its soap:address location replaced by `url` (the broker's public /ici URL).
std::string wsdl_with_location(std::string_view wsdl, std::string_view url);

}  // namespace cb::protocol
