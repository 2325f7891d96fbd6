#include "protocol/xml_gate.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace cb::protocol {
namespace {

bool allowed_char(std::uint32_t c) {
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

/// Checks a numeric character reference starting at `s[i] == '&'`, `s[i+1] == '#'`.
bool valid_char_ref(std::string_view s, std::size_t i) {
    std::size_t j = i + 2;
    int base = 10;
    if (j < s.size() && s[j] == 'x') {
        base = 16;
        ++j;
    }
    std::uint64_t v = 0;
    std::size_t digits = 0;
    for (; j < s.size() && s[j] != ';'; ++j, ++digits) {
        char c = s[j];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
        if (v > 0x10FFFF) return false;
    }
    return digits > 0 && j < s.size() && allowed_char(static_cast<std::uint32_t>(v));
}

const char* local_name(const char* qname) {
    const char* colon = std::strchr(qname, ':');
    return colon ? colon + 1 : qname;
}

/// The namespace URI bound to the prefix of `qname` at element `n`, or nullptr if unbound.
const char* namespace_of(pugi::xml_node n, const char* qname) {
    const char* colon = std::strchr(qname, ':');
    std::string attr =
        colon ? "xmlns:" + std::string(qname, static_cast<std::size_t>(colon - qname)) : "xmlns";
    for (auto e = n; e && e.type() == pugi::node_element; e = e.parent())
        if (auto a = e.attribute(attr.c_str())) return a.value();
    return colon ? nullptr : "";
}

/// The prefixes bound to a SOAP-encoding namespace (1.1 or 1.2) at an element: its parent's,
/// with the element's own declarations applied. Shared with the children unless they declare
/// otherwise; empty (null) in almost every message.
using EncodingPrefixes = std::shared_ptr<const std::vector<std::string>>;

EncodingPrefixes encoding_prefixes(pugi::xml_node n, const EncodingPrefixes& inherited) {
    EncodingPrefixes out = inherited;
    for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
        if (std::strncmp(a.name(), "xmlns:", 6) != 0) continue;
        std::string prefix = a.name() + 6;
        bool encoding =
            kSoap11EncodingNamespace == a.value() || kSoap12EncodingNamespace == a.value();
        bool listed = out && std::find(out->begin(), out->end(), prefix) != out->end();
        if (encoding == listed) continue;
        auto changed = out ? std::make_shared<std::vector<std::string>>(*out)
                           : std::make_shared<std::vector<std::string>>();
        if (encoding)
            changed->push_back(prefix);
        else
            changed->erase(std::find(changed->begin(), changed->end(), prefix));
        out = std::move(changed);
    }
    return out;
}

/// True if `a` is a SOAP-encoding multi-reference: `href` or `ref` without a namespace, or any
/// attribute in a SOAP-encoding namespace (`enc:id`, `enc:ref`), given the prefixes bound to
/// one where it stands. The ports are document/literal: such a reference would make one
/// element stand for another.
bool multi_reference(pugi::xml_attribute a, const EncodingPrefixes& encoding) {
    const char* name = a.name();
    const char* colon = std::strchr(name, ':');
    if (!colon) return std::strcmp(name, "href") == 0 || std::strcmp(name, "ref") == 0;
    if (!encoding) return false;
    std::string_view prefix(name, static_cast<std::size_t>(colon - name));
    return std::find(encoding->begin(), encoding->end(), prefix) != encoding->end();
}

GateRefused refuse(SoapVersion v, FaultCode code, std::string message) {
    return GateRefused{v, Fault{code, std::move(message), {}}};
}

}  // namespace

std::size_t find_invalid_xml_text(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t n = s.size();
    for (std::size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) return i;
            if (c == '&' && i + 1 < n && p[i + 1] == '#' && !valid_char_ref(s, i)) return i;
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if ((c & 0xE0) == 0xC0)
            len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, cp = c & 0x07;
        else
            return i;
        if (i + len > n) return i;
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        // Overlong forms, surrogates and code points beyond Unicode are refused.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            !allowed_char(cp))
            return i;
        i += len;
    }
    return std::string_view::npos;
}

std::variant<GatePassed, GateRefused> check_envelope(std::string_view body,
                                                     const GateLimits& limits,
                                                     SoapVersion assumed) {
    SoapVersion version = assumed;
    if (auto bad = find_invalid_xml_text(body); bad != std::string_view::npos)
        return refuse(
            version, FaultCode::malformed,
            "invalid UTF-8 or a character XML does not allow at byte " + std::to_string(bad));

    pugi::xml_document doc;
    auto parsed = doc.load_buffer(
        body.data(), body.size(),
        pugi::parse_default | pugi::parse_doctype | pugi::parse_pi | pugi::parse_fragment,
        pugi::encoding_utf8);
    if (!parsed)
        return refuse(version, FaultCode::malformed,
                      std::string("not well-formed XML at byte ") + std::to_string(parsed.offset) +
                          ": " + parsed.description());

    pugi::xml_node envelope;
    for (auto n : doc.children()) {
        switch (n.type()) {
            case pugi::node_doctype:
                return refuse(version, FaultCode::malformed, "a DOCTYPE is not allowed");
            case pugi::node_element:
                if (envelope)
                    return refuse(version, FaultCode::malformed, "content after the envelope");
                envelope = n;
                break;
            case pugi::node_pcdata:
            case pugi::node_cdata:
                return refuse(version, FaultCode::malformed, "text outside the envelope");
            default:
                break;  // comments and processing instructions
        }
    }
    if (!envelope) return refuse(version, FaultCode::malformed, "no document element");

    // Limits first: everything below walks the tree.
    struct Frame {
        pugi::xml_node node;
        unsigned depth;
        EncodingPrefixes encoding;  // the parent's
    };
    std::vector<Frame> stack{{envelope, 1, nullptr}};
    pugi::xml_node referring;  // the first element with a multi-reference attribute
    pugi::xml_attribute reference;
    while (!stack.empty()) {
        auto frame = std::move(stack.back());
        stack.pop_back();
        auto node = frame.node;
        if (frame.depth > limits.max_depth)
            return refuse(version, FaultCode::too_large,
                          "elements nested deeper than " + std::to_string(limits.max_depth));
        unsigned attributes = 0;
        for (auto a = node.first_attribute(); a; a = a.next_attribute())
            if (++attributes > limits.max_attributes)
                return refuse(version, FaultCode::too_large,
                              "more than " + std::to_string(limits.max_attributes) +
                                  " attributes on <" + node.name() + ">");
        auto encoding = encoding_prefixes(node, frame.encoding);
        for (auto a = node.first_attribute(); a && !reference; a = a.next_attribute())
            if (multi_reference(a, encoding)) {
                referring = node;
                reference = a;
            }
        for (auto c = node.first_child(); c; c = c.next_sibling())
            if (c.type() == pugi::node_element) stack.push_back({c, frame.depth + 1, encoding});
    }

    const char* env_ns = namespace_of(envelope, envelope.name());
    if (std::strcmp(local_name(envelope.name()), "Envelope") != 0 || !env_ns)
        return refuse(version, FaultCode::malformed, "not a SOAP envelope");
    if (kSoap11Namespace == env_ns)
        version = SoapVersion::v11;
    else if (kSoap12Namespace == env_ns)
        version = SoapVersion::v12;
    else
        return refuse(version, FaultCode::malformed,
                      std::string("unknown SOAP envelope namespace ") + env_ns);

    if (reference)
        return GateRefused{
            version, Fault{FaultCode::invalid_field,
                           std::string("multi-reference attribute ") + reference.name() + " on <" +
                               referring.name() + ">: the port is document/literal",
                           local_name(referring.name())}};

    auto same_ns = [&](pugi::xml_node n) {
        const char* ns = namespace_of(n, n.name());
        return ns && std::strcmp(ns, env_ns) == 0;
    };
    pugi::xml_node body_el;
    bool header_seen = false;
    for (auto c : envelope.children()) {
        if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata)
            return refuse(version, FaultCode::malformed, "text inside the envelope");
        if (c.type() != pugi::node_element) continue;
        const char* ln = local_name(c.name());
        if (!body_el && !header_seen && std::strcmp(ln, "Header") == 0 && same_ns(c)) {
            header_seen = true;
        } else if (!body_el && std::strcmp(ln, "Body") == 0 && same_ns(c)) {
            body_el = c;
        } else {
            return refuse(version, FaultCode::malformed,
                          std::string("unexpected <") + c.name() + "> in the envelope");
        }
    }
    if (!body_el) return refuse(version, FaultCode::malformed, "the envelope has no Body");

    pugi::xml_node op;
    for (auto c : body_el.children()) {
        if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata)
            return refuse(version, FaultCode::malformed, "text inside the Body");
        if (c.type() != pugi::node_element) continue;
        if (op) return refuse(version, FaultCode::malformed, "more than one element in the Body");
        op = c;
    }
    if (!op) return refuse(version, FaultCode::malformed, "the Body is empty");
    const char* op_ns = namespace_of(op, op.name());
    if (!op_ns)
        return refuse(version, FaultCode::malformed,
                      std::string("undeclared prefix on <") + op.name() + ">");
    return GatePassed{version, op_ns, local_name(op.name())};
}

}  // namespace cb::protocol

#include "protocol/wsdl.hpp"

namespace cb::protocol {

std::string wsdl_with_location(std::string_view wsdl, std::string_view url) {
    std::string out(wsdl);
    constexpr std::string_view kAttr = "location=\"";
    auto at = out.find("<SOAP:address");
    if (at == std::string::npos || url.empty()) return out;
    auto start = out.find(kAttr, at);
    if (start == std::string::npos) return out;
    start += kAttr.size();
    auto end = out.find('"', start);
    if (end == std::string::npos) return out;
    std::string escaped;
    for (char c : url)
        escaped += c == '&'   ? std::string("&amp;")
                   : c == '"' ? std::string("&quot;")
                              : std::string(1, c);
    out.replace(start, end - start, escaped);
    return out;
}

}  // namespace cb::protocol
