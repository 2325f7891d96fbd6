// The ICI service definition: the single source of both SOAP ports of PROTOCOL.md and their WSDLs.
// soapcpp2 reads this file at build time; nothing it generates is committed.
//
//   ici__  IciBroker: served by commbrokerd at /ici, called by CMSs (events, section 1)
//   cms__  IciCms:    served by each CMS, called by commbrokerd (requests, section 2)
//
// Both ports share the namespace urn:commbroker:ici:1 and its types (declared with ici__).
// Elements inside operations are unqualified; a list is a wrapper element holding one <item> per
// entry. Member order is the field order of PROTOCOL.md.

// What follows is soapcpp2's language (//gsoap directives, occurrence bounds), not C++:
// clang-format off

//gsoap ici schema namespace: urn:commbroker:ici:1
//gsoap ici schema form: unqualified
//gsoap ici service name: IciBroker
//gsoap ici service style: document
//gsoap ici service encoding: literal
//gsoap ici service namespace: urn:commbroker:ici:1
//gsoap ici service location: http://localhost:8450/ici
//gsoap ici service documentation: Events from a CMS to the broker. Each response is sent after the change is durable.

//gsoap cms schema namespace: urn:commbroker:ici:1
//gsoap cms schema form: unqualified
//gsoap cms service name: IciCms
//gsoap cms service style: document
//gsoap cms service encoding: literal
//gsoap cms service namespace: urn:commbroker:ici:1
//gsoap cms service location: http://localhost:8460/cms
//gsoap cms service documentation: Requests from the broker to a CMS. Outcomes come back as IciBroker events.

#import "stlvector.h"

// ---- simple types -------------------------------------------------------------------------------

typedef std::string xsd__dateTime;
typedef std::string ici__ItemId "[A-Za-z0-9._:@-]+" 1:128;
typedef std::string ici__AttachedData 0:65536;
typedef std::string ici__PostingText 0:16384;

enum ici__CallState { ici__CallState__initiated, ici__CallState__alerting, ici__CallState__connected,
                      ici__CallState__held, ici__CallState__disconnected, ici__CallState__failed };
enum ici__ChatState { ici__ChatState__offered, ici__ChatState__active, ici__ChatState__ended };
enum ici__MailState { ici__MailState__offered, ici__MailState__active, ici__MailState__closed };
enum ici__Direction { ici__Direction__inbound, ici__Direction__outbound, ici__Direction__internal };
enum ici__Role { ici__Role__agent, ici__Role__customer, ici__Role__supervisor, ici__Role__system };
enum ici__AgentStateValue { ici__AgentStateValue__loggedOff, ici__AgentStateValue__ready,
                            ici__AgentStateValue__notReady, ici__AgentStateValue__wrapUp };
enum ici__WorkMode { ici__WorkMode__ready, ici__WorkMode__notReady, ici__WorkMode__wrapUp };
enum ici__ChannelName { ici__ChannelName__phone, ici__ChannelName__chat, ici__ChannelName__email };
enum ici__EventStatus { ici__EventStatus__accepted, ici__EventStatus__duplicate, ici__EventStatus__stale };
enum ici__SystemState { ici__SystemState__up, ici__SystemState__degraded, ici__SystemState__maintenance };
enum ici__TransferMode { ici__TransferMode__blind, ici__TransferMode__consult };

// ---- lists (wrapper element, one <item> per entry) ----------------------------------------------

class ici__StringList { public:
  std::vector<std::string> item 0:64;
};
class ici__ChannelList { public:
  std::vector<enum ici__ChannelName> item 0:3;
};
class ici__Participant { public:
  std::string userId 1;
  enum ici__Role role 1;
  std::string address 1;
};
class ici__ParticipantList { public:
  std::vector<ici__Participant> item 0:64;
};

// ---- items ----------------------------------------------------------------------------------------

class ici__PhoneCall { public:
  ici__ItemId id 1;
  ULONG64 version 1;
  enum ici__CallState state 1;
  std::string *agentId 0;
  std::string *containerId 0;
  ici__ParticipantList *participants 0;
  ici__StringList *capabilityList 0;
  ici__AttachedData *attachedData 0;
  xsd__dateTime changedAt 1;
  enum ici__Direction direction 1;
  ici__StringList *remoteNumbers 1;
  std::string localAddress 1;
  std::string *queue 0;
};

class ici__ChatSession { public:
  ici__ItemId id 1;
  ULONG64 version 1;
  enum ici__ChatState state 1;
  std::string *agentId 0;
  std::string *containerId 0;
  ici__ParticipantList *participants 0;
  ici__StringList *capabilityList 0;
  ici__AttachedData *attachedData 0;
  xsd__dateTime changedAt 1;
  std::string topic 1;
  std::string customerName 1;
};

class ici__ChatPosting { public:
  ici__ItemId chatSessionId 1;
  std::string chatParticipant 1;
  ici__PostingText contentText 1;
  bool systemMessage 1;
  xsd__dateTime postDate 1;
};

class ici__MailItem { public:
  ici__ItemId id 1;
  ULONG64 version 1;
  enum ici__MailState state 1;
  std::string *agentId 0;
  std::string *containerId 0;
  ici__ParticipantList *participants 0;
  ici__StringList *capabilityList 0;
  ici__AttachedData *attachedData 0;
  xsd__dateTime changedAt 1;
  std::string folder 1;
  std::string originator 1;
  std::string subject 1;
  bool read 1;
  bool answered 1;
};

class ici__AgentState { public:
  std::string userId 1;
  enum ici__AgentStateValue state 1;
  unsigned int reasonCode 1;
  ici__StringList *addresses 0;
  ici__ChannelList *channels 0;
};

// A getItems answer lists every live item of a CMS: a large contact centre holds more than
// 10,000 of one kind. The bound that protects the broker is the answer's size in bytes
// (cms maxResponseBytes, default 64 MiB); the count only has to be finite.
class ici__PhoneCallList { public:
  std::vector<ici__PhoneCall> item 0:1000000;
};
class ici__ChatSessionList { public:
  std::vector<ici__ChatSession> item 0:1000000;
};
class ici__MailItemList { public:
  std::vector<ici__MailItem> item 0:1000000;
};

// ---- header and fault detail ----------------------------------------------------------------------

/// Optional on every message: messageId (echoed in the response) and, broker to CMS, userId.
class ici__Context { public:
  std::string *messageId 0;
  std::string *userId 0;
};

/// Fault detail: code is malformed, unknownOperation, invalidField, invalidTransition, tooLarge,
/// unavailable (or, from a CMS, any code of its own); field names the offending field if any.
class _ici__iciFault { public:
  std::string code 1;
  std::string *field 0;
};

struct SOAP_ENV__Header {
  ici__Context *ici__context 0;
};

struct SOAP_ENV__Detail {
  _ici__iciFault *ici__iciFault 0;
  int __type;
  void *fault;
  _XML __any;
};

// ---- IciBroker: events, CMS -> broker ------------------------------------------------------------

//gsoap ici service method-fault: phoneCallChanged ici__iciFault
//gsoap ici service method-fault: chatChanged ici__iciFault
//gsoap ici service method-fault: chatNewPosting ici__iciFault
//gsoap ici service method-fault: messageChanged ici__iciFault
//gsoap ici service method-fault: userChanged ici__iciFault
//gsoap ici service method-fault: subscriptionEnded ici__iciFault

/// A call appeared or changed: the full snapshot.
int ici__phoneCallChanged(ici__PhoneCall *call, struct ici__phoneCallChangedResponse { enum ici__EventStatus status 1; } *r);
/// A chat session appeared or changed.
int ici__chatChanged(ici__ChatSession *chat, struct ici__chatChangedResponse { enum ici__EventStatus status 1; } *r);
/// A new line in an active chat.
int ici__chatNewPosting(ici__ChatPosting *posting, struct ici__chatNewPostingResponse { enum ici__EventStatus status 1; } *r);
/// An e-mail item appeared or changed.
int ici__messageChanged(ici__MailItem *message, struct ici__messageChangedResponse { enum ici__EventStatus status 1; } *r);
/// The CMS changed an agent's state (logoff from the CMS side included).
int ici__userChanged(ici__AgentState *user, struct ici__userChangedResponse { enum ici__EventStatus status 1; } *r);
/// The CMS drops the broker's subscription (maintenance, shutdown).
int ici__subscriptionEnded(std::string reason, struct ici__subscriptionEndedResponse { enum ici__EventStatus status 1; } *r);

// ---- IciCms: requests, broker -> CMS ---------------------------------------------------------------

int cms__getSystemInfo(struct cms__getSystemInfoResponse { std::string name 1; std::string version 1; enum ici__SystemState state 1; } *r);
int cms__subscribe(std::string appId, std::string appURL, ici__ChannelList *channels, struct cms__subscribeResponse { std::string subscriptionId 1; } *r);
int cms__unsubscribe(std::string appId, struct cms__unsubscribeResponse { } *r);
int cms__logon(std::string userId, std::string address, ici__ChannelList *channels, struct cms__logonResponse { } *r);
int cms__logoff(std::string userId, std::string reason, struct cms__logoffResponse { } *r);
int cms__setWorkMode(std::string userId, enum ici__WorkMode state, unsigned int reasonCode, struct cms__setWorkModeResponse { } *r);
int cms__makeCall(std::string userId, std::string from, std::string to, ici__AttachedData *attachedData, struct cms__makeCallResponse { std::string callId 1; } *r);
int cms__answerCall(ici__ItemId callId, struct cms__answerCallResponse { } *r);
int cms__hangupCall(ici__ItemId callId, struct cms__hangupCallResponse { } *r);
int cms__holdCall(ici__ItemId callId, struct cms__holdCallResponse { } *r);
int cms__retrieveCall(ici__ItemId callId, struct cms__retrieveCallResponse { } *r);
int cms__transferCall(ici__ItemId callId, std::string to, enum ici__TransferMode mode, struct cms__transferCallResponse { } *r);
int cms__rejectCall(ici__ItemId callId, std::string reason, struct cms__rejectCallResponse { } *r);
int cms__acceptChat(ici__ItemId chatId, struct cms__acceptChatResponse { } *r);
int cms__endChat(ici__ItemId chatId, struct cms__endChatResponse { } *r);
int cms__postChatMessage(ici__ItemId chatId, ici__PostingText text, struct cms__postChatMessageResponse { } *r);
int cms__acceptMessage(ici__ItemId messageId, struct cms__acceptMessageResponse { } *r);
int cms__closeMessage(ici__ItemId messageId, struct cms__closeMessageResponse { } *r);
int cms__setAttachedData(ici__ItemId itemId, ici__AttachedData attachedData, struct cms__setAttachedDataResponse { } *r);
int cms__wrapUpRequired(ici__ItemId itemId, struct cms__wrapUpRequiredResponse { } *r);
int cms__getItems(std::string *userId, struct cms__getItemsResponse { ici__PhoneCallList *calls 0; ici__ChatSessionList *chats 0; ici__MailItemList *messages 0; } *r);
