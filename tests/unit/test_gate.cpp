#include "protocol/xml_gate.hpp"

#include <doctest/doctest.h>

using namespace cb::protocol;

namespace {

const std::string kEnv11 =
    R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:i="urn:commbroker:ici:1">)";
const std::string kEnv12 =
    R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:i="urn:commbroker:ici:1">)";

std::variant<GatePassed, GateRefused> gate(const std::string& body, GateLimits limits = {}) {
    return check_envelope(body, limits, SoapVersion::v11);
}

Fault refused(const std::string& body, GateLimits limits = {}) {
    auto r = gate(body, limits);
    REQUIRE(std::holds_alternative<GateRefused>(r));
    return std::get<GateRefused>(r).fault;
}

}  // namespace

TEST_CASE("a SOAP 1.1 and a SOAP 1.2 envelope pass and name their operation") {
    auto r = gate(kEnv11 + "<s:Body><i:phoneCallChanged/></s:Body></s:Envelope>");
    REQUIRE(std::holds_alternative<GatePassed>(r));
    CHECK(std::get<GatePassed>(r).version == SoapVersion::v11);
    CHECK(std::get<GatePassed>(r).operation == "phoneCallChanged");
    CHECK(std::get<GatePassed>(r).operation_namespace == "urn:commbroker:ici:1");
    auto r12 = gate(kEnv12 +
                    "<s:Header/><s:Body><x:userChanged "
                    "xmlns:x=\"urn:commbroker:ici:1\"/></s:Body></s:Envelope>");
    REQUIRE(std::holds_alternative<GatePassed>(r12));
    CHECK(std::get<GatePassed>(r12).version == SoapVersion::v12);
    CHECK(std::get<GatePassed>(r12).operation == "userChanged");
}

TEST_CASE("a DOCTYPE is refused") {
    auto f = refused("<!DOCTYPE x [<!ENTITY a \"b\">]>" + kEnv11 +
                     "<s:Body><i:x/></s:Body></s:Envelope>");
    CHECK(f.code == FaultCode::malformed);
    CHECK(f.message.find("DOCTYPE") != std::string::npos);
}

TEST_CASE("not well-formed XML, trailing content and a second Body child are refused") {
    CHECK(refused("hello").code == FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x></i:y></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x/></s:Body></s:Envelope><more/>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x/></s:Body></s:Envelope>junk").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x/><i:y/></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "</s:Envelope>").code == FaultCode::malformed);
    CHECK(refused("<Envelope><Body><x/></Body></Envelope>").code == FaultCode::malformed);
}

TEST_CASE("invalid UTF-8 and forbidden characters are refused") {
    CHECK(refused(kEnv11 + "<s:Body><i:x>\xC3\x28</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x>\xC0\xAF</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);  // overlong
    CHECK(refused(kEnv11 + "<s:Body><i:x>\xED\xA0\x80</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);  // surrogate
    CHECK(refused(kEnv11 + "<s:Body><i:x>&#0;</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x>&#x1;</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(refused(kEnv11 + "<s:Body><i:x>a\x01</i:x></s:Body></s:Envelope>").code ==
          FaultCode::malformed);
    CHECK(std::holds_alternative<GatePassed>(
        gate(kEnv11 + "<s:Body><i:x>€ &#8364; &#x20AC;</i:x></s:Body></s:Envelope>")));
}

TEST_CASE("too many attributes or too deep nesting is refused quickly") {
    std::string attrs;
    for (int i = 0; i < 6400; ++i)
        attrs += " a" + std::to_string(i) + "=\"1\"";
    auto f = refused(kEnv11 + "<s:Body><i:x" + attrs + "/></s:Body></s:Envelope>");
    CHECK(f.code == FaultCode::too_large);
    std::string ns;
    for (int i = 0; i < 100; ++i)
        ns += " xmlns:p" + std::to_string(i) + "=\"urn:" + std::to_string(i) + "\"";
    CHECK(refused(kEnv11 + "<s:Body><i:x" + ns + "/></s:Body></s:Envelope>").code ==
          FaultCode::too_large);
    std::string deep;
    for (int i = 0; i < 40; ++i)
        deep += "<d>";
    for (int i = 0; i < 40; ++i)
        deep += "</d>";
    CHECK(refused(kEnv11 + "<s:Header>" + deep + "</s:Header><s:Body><i:x/></s:Body></s:Envelope>")
              .code == FaultCode::too_large);
    GateLimits loose{100, 64};
    CHECK(std::holds_alternative<GatePassed>(gate(
        kEnv11 + "<s:Header>" + deep + "</s:Header><s:Body><i:x/></s:Body></s:Envelope>", loose)));
}

TEST_CASE("an unknown envelope namespace is refused") {
    CHECK(refused(R"(<s:Envelope xmlns:s="urn:other"><s:Body><x/></s:Body></s:Envelope>)").code ==
          FaultCode::malformed);
}
