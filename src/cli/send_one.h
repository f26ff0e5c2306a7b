// SendOneMessage: one message through a transport, start to finish, on a private event loop —
// connect, send, close — for `herald test-account`. Blocks the calling thread.
#pragma once

#include <memory>
#include <string>

#include "transport/transport.h"

namespace herald {

// The outcome for the envelope's first recipient: the connect failure, or the send's result.
// `destination`: the transport's Destination() of that recipient.
Outcome SendOneMessage(Transport& transport, std::string destination, Envelope envelope,
                       std::shared_ptr<const MessageData> message);

}  // namespace herald
