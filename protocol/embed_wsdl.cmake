# Writes OUT, a C++ source defining the two WSDLs as string constants.
file(READ ${BROKER} broker)
file(READ ${CMS} cms)
file(WRITE ${OUT} "// Generated from protocol/ici.h by soapcpp2; do not edit.\n#include \"protocol/wsdl.hpp\"\n")
file(APPEND ${OUT} "namespace cb::protocol {\n")
file(APPEND ${OUT} "const std::string_view kBrokerWsdl = R\"__wsdl__(${broker})__wsdl__\";\n")
file(APPEND ${OUT} "const std::string_view kCmsWsdl = R\"__wsdl__(${cms})__wsdl__\";\n")
file(APPEND ${OUT} "}\n")
