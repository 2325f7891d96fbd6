// The in-memory SOAP codec of the IciCms port (PROTOCOL.md section 2), for both of its ends:
// - the broker, a client of each CMS: encode_request() and decode_reply();
// - a CMS (commbroker-cmss): decode_request(), encode_reply(), encode_fault(), and, as a client
//   of the broker's IciBroker port, encode_event() and decode_event_reply().
//
// Like IciServerCodec, one codec per thread (for_this_thread()); no call suspends, and no gSOAP
// type appears in this header.
#pragma once

#include "channels/item.hpp"
#include "channels/registry.hpp"
#include "protocol/xml_gate.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cb::protocol {

/// The operations of the IciCms port.
enum class CmsOp {
    get_system_info,
    subscribe,
    unsubscribe,
    logon,
    logoff,
    set_work_mode,
    make_call,
    answer_call,
    hangup_call,
    hold_call,
    retrieve_call,
    transfer_call,
    reject_call,
    accept_chat,
    end_chat,
    post_chat_message,
    accept_message,
    close_message,
    set_attached_data,
    wrap_up_required,
    get_items,
};
/// The operation's element name, e.g. "answerCall".
std::string_view to_string(CmsOp op);
std::optional<CmsOp> cms_op_from_name(std::string_view name);
/// True for the operations that only read and may be repeated safely.
bool idempotent(CmsOp op);

/// One request of the IciCms port. Which fields count depends on `op` (PROTOCOL.md section 2);
/// the others stay empty.
struct CmsRequest {
    CmsOp op = CmsOp::get_system_info;
    std::string message_id;  ///< context header
    std::string user_id;     ///< context header, and the userId field of the operations with one
    std::string item_id;     ///< callId, chatId, messageId or itemId
    std::string app_id;
    std::string app_url;
    std::vector<std::string> channels;
    std::string address;
    std::string reason;
    std::string from;
    std::string to;
    std::string mode;   ///< transferCall: blind | consult
    std::string state;  ///< setWorkMode: ready | notReady | wrapUp
    std::uint32_t reason_code = 0;
    std::string text;
    std::optional<std::string> attached_data;
    bool all_users = false;  ///< getItems without a userId
};

/// The content of a successful response (only the fields of its operation are set).
struct CmsReply {
    std::string name;  ///< getSystemInfo
    std::string version;
    std::string state;  ///< up | degraded | maintenance
    std::string subscription_id;
    std::string call_id;
    std::vector<channels::Item> items;  ///< getItems, with `system` set by the caller
};

/// A SOAP fault, from either end, or a response that could not be read.
struct CmsFault {
    std::string code;  ///< detail/iciFault/code, or "malformed" for an unreadable response
    std::string message;
    std::string field;
    bool sender = true;  ///< soap:Client (else soap:Server)
};

class CmsCodec {
  public:
    CmsCodec();
    ~CmsCodec();
    CmsCodec(const CmsCodec&) = delete;
    CmsCodec& operator=(const CmsCodec&) = delete;

    static CmsCodec& for_this_thread();

    // ---- the broker's side ----
    std::string encode_request(const CmsRequest& request);
    /// `system` is written into the items of a getItems reply. Invalid UTF-8 or XML
    /// characters, or a DOCTYPE, make the reply a `malformed` fault unread; nesting deeper than
    /// `limits.max_depth` makes it `malformed` as it is read. (Unlike requests to the broker's
    /// own port, no tree is built first: a reply may be tens of MB.)
    std::variant<CmsReply, CmsFault> decode_reply(CmsOp op, std::string_view body,
                                                  const std::string& system,
                                                  const GateLimits& limits = {});

    // ---- a CMS's side ----
    std::variant<CmsRequest, CmsFault> decode_request(std::string_view body,
                                                      const GateLimits& limits);
    std::string encode_reply(const CmsRequest& request, const CmsReply& reply);
    std::string encode_fault(const std::string& message_id, const CmsFault& fault);

    /// An event of the IciBroker port, as a CMS sends it.
    std::string encode_event(const channels::Event& event, const std::string& message_id);
    std::variant<channels::Outcome, CmsFault> decode_event_reply(std::string_view body);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cb::protocol
