// SendOneMessage: one message through a transport, start to finish, on a private event loop —
// connect, send, close — for `herald test-account`. Blocks the calling thread.
#pragma once

#include <memory>

#include "transport/transport.h"

namespace herald {

// The outcome for the envelope's first recipient: the connect failure, or the send's result.
Outcome SendOneMessage(Transport& transport, Envelope envelope, std::shared_ptr<const MessageData> message);

}  // namespace herald
