# Rewrites the WSDL FILE, as soapcpp2 wrote it, so that its <types> hold one <schema> for the
# namespace urn:commbroker:ici:1. soapcpp2 writes one per prefix (ici and cms share that
# namespace), the second importing the first; toolkits that keep one schema per namespace (Node's
# soap package) then lose the other's elements. Both schemas open with the same tag, so the
# merge is textual: the self-imports go, and the boundary between the two schemas goes.
file(READ ${FILE} text)
set(ns "urn:commbroker:ici:1")
string(FIND "${text}" "  <schema targetNamespace=\"${ns}\"" first)
if(first EQUAL -1)
  message(FATAL_ERROR "${FILE}: no schema for ${ns}")
endif()
string(SUBSTRING "${text}" ${first} -1 rest)
string(FIND "${rest}" ">\n" tag_end)
math(EXPR tag_len "${tag_end} + 1")
string(SUBSTRING "${rest}" 0 ${tag_len} open_tag)
string(REPLACE "    <import namespace=\"${ns}\"/>\n" "" text "${text}")
set(boundary "  </schema>\n\n${open_tag}\n    <import namespace=\"http://schemas.xmlsoap.org/soap/encoding/\"/>\n")
string(REPLACE "${boundary}" "" text "${text}")
string(REGEX MATCHALL "<schema targetNamespace=\"${ns}\"" schemas "${text}")
list(LENGTH schemas count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "${FILE}: ${count} schemas for ${ns} after the merge")
endif()
file(WRITE ${FILE} "${text}")
