// The SOAP codec alone, in a loop on one thread: what the gate, the gSOAP decode and the encode
// of the answer cost per request, without HTTP or sockets. The message is the one
// bench/post.lua sends (a phoneCallChanged snapshot, with a messageId header in half of them).
// usage: codec_bench [REQUESTS] (default 200000); prints microseconds per request.
#include "protocol/ici_codec.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace cb;

namespace {

std::string message(int n, bool with_header) {
    std::string header = with_header
                             ? "<soap:Header><ici:context><messageId>m-" + std::to_string(n) +
                                   "</messageId></ici:context></soap:Header>"
                             : "";
    return "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
           "xmlns:ici=\"urn:commbroker:ici:1\">" +
           header + "<soap:Body><ici:phoneCallChanged><call><id>bench-" + std::to_string(n % 1000) +
           "</id><version>" + std::to_string(n) +
           "</version><state>connected</state><agentId>alice</agentId><containerId>line-1"
           "</containerId><participants><item><userId>alice</userId><role>agent</role><address>"
           "+49301111</address></item></participants><capabilityList><item>hangup</item><item>"
           "hold</item></capabilityList><changedAt>2026-11-22T10:00:00Z</changedAt><direction>"
           "inbound</direction><remoteNumbers><item>+493012345678</item></remoteNumbers>"
           "<localAddress>+49301111</localAddress></call></ici:phoneCallChanged></soap:Body>"
           "</soap:Envelope>";
}

}  // namespace

int main(int argc, char** argv) {
    int requests = argc > 1 ? std::atoi(argv[1]) : 200000;
    if (requests <= 0) {
        std::fprintf(stderr, "usage: codec_bench [REQUESTS]\n");
        return 2;
    }
    auto& codec = protocol::IciServerCodec::for_this_thread();
    std::string bodies[2] = {message(1, false), message(2, true)};
    std::size_t bytes = 0;
    using Clock = std::chrono::steady_clock;
    double decode_s = 0, encode_s = 0;
    for (int i = 0; i < requests; ++i) {
        auto t0 = Clock::now();
        auto decoded = codec.decode(bodies[i & 1], "CMS-A", {}, protocol::SoapVersion::v11);
        auto t1 = Clock::now();
        auto* ok = std::get_if<protocol::DecodedEvent>(&decoded);
        if (!ok) {
            std::fprintf(stderr, "codec_bench: the message did not decode: %s\n",
                         std::get<protocol::DecodeFailed>(decoded).fault.message.c_str());
            return 1;
        }
        auto out = codec.encode_status(ok->reply, channels::Outcome::accepted);
        auto t2 = Clock::now();
        if (!out) {
            std::fprintf(stderr, "codec_bench: the answer did not encode\n");
            return 1;
        }
        bytes += out->size();
        decode_s += std::chrono::duration<double>(t1 - t0).count();
        encode_s += std::chrono::duration<double>(t2 - t1).count();
    }
    std::printf("requests=%d decode_us=%.2f encode_us=%.2f total_us=%.2f answer_bytes=%zu\n",
                requests, decode_s / requests * 1e6, encode_s / requests * 1e6,
                (decode_s + encode_s) / requests * 1e6, bytes / static_cast<std::size_t>(requests));
}
