// Conversions between the gSOAP types generated from ici.h and the domain types of channels/.
// Internal to protocol/: only the codecs include it, since it pulls in the generated soapH.h.
//
// to_soap() allocates what it points to in the given context: it lives until that context's
// soap_destroy()/soap_end(). from_soap() copies everything out, so the result outlives it.
#pragma once

#include "channels/item.hpp"

#include "soapH.h"

#include <cassert>
#include <string>
#include <vector>

namespace cb::protocol {

/// A gSOAP context that reads from and writes to memory, never a socket. Not thread-safe: one per
/// thread. reset() frees everything decoded or built since the last reset.
///
/// A reset scans gSOAP's fixed-size id and pointer tables (about a microsecond). The ICI server
/// codec therefore resets only at the end of each use, with a guard that runs however the use
/// ends (Encoding, and the guard in decode()), and not again at the start of the next:
/// gSOAP's soap_begin() and soap_begin_recv() clear the per-message state themselves. The CMS
/// codec, which is not on the hot path, still resets at the start of each use too.
struct MemorySoap {
    struct soap* soap;
    std::string_view in;
    std::size_t pos = 0;
    std::string* out = nullptr;  ///< where an encode writes; null outside one (a write then fails)
    /// Writes past this many bytes of `out` fail, as a failed write would: the seam that lets
    /// tests reach the failure paths of the encoders. No limit by default.
    std::size_t out_limit = static_cast<std::size_t>(-1);
    bool out_failed = false;  ///< a write of the current encode failed

    MemorySoap();
    ~MemorySoap();
    MemorySoap(const MemorySoap&) = delete;
    MemorySoap& operator=(const MemorySoap&) = delete;

    void reset() {
        soap_destroy(soap);
        soap_end(soap);
    }
    /// Nothing decoded or built is held, and no header is set: as reset() leaves it.
    bool is_reset() const { return !soap->alist && !soap->clist && !soap->header && !soap->fault; }
    /// Starts reading `body` (after a reset).
    void read_from(std::string_view body) {
        reset();
        in = body;
        pos = 0;
    }

    /// One encode into `out` on a context left reset by its last use: however the encode ends,
    /// forgets the header and `out` and frees what was built, so nothing points at a string that
    /// is gone.
    class Encoding {
      public:
        Encoding(MemorySoap& m, std::string& out) : m_(m) {
            assert(m_.is_reset());
            m_.out = &out;
            m_.out_failed = false;
        }
        ~Encoding() {
            m_.soap->header = nullptr;
            m_.out = nullptr;
            m_.reset();
        }
        Encoding(const Encoding&) = delete;
        Encoding& operator=(const Encoding&) = delete;

      private:
        MemorySoap& m_;
    };
};

}  // namespace cb::protocol

namespace cb::protocol::soapconv {

channels::Item from_soap(struct soap* s, const ici__PhoneCall& in, const std::string& system);
channels::Item from_soap(struct soap* s, const ici__ChatSession& in, const std::string& system);
channels::Item from_soap(struct soap* s, const ici__MailItem& in, const std::string& system);
channels::ChatPosting from_soap(const ici__ChatPosting& in);
channels::AgentState from_soap(struct soap* s, const ici__AgentState& in,
                               const std::string& system);
std::vector<std::string> channels_from_soap(struct soap* s, const ici__ChannelList* in);

void to_soap(struct soap* s, const channels::Item& in, ici__PhoneCall& out);
void to_soap(struct soap* s, const channels::Item& in, ici__ChatSession& out);
void to_soap(struct soap* s, const channels::Item& in, ici__MailItem& out);
void to_soap(const channels::ChatPosting& in, ici__ChatPosting& out);
void to_soap(struct soap* s, const channels::AgentState& in, ici__AgentState& out);
/// Escapes text for an element's content or an attribute value.
std::string xml_escape(std::string_view in);

/// Names that are not a channel are left out.
ici__ChannelList* channels_to_soap(struct soap* s, const std::vector<std::string>& names);

}  // namespace cb::protocol::soapconv
