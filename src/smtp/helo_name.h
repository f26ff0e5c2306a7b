// The name herald gives in EHLO/HELO when an account sets no helo_name: this machine's name, and
// the warning a relay account gets when that name is bare ("vm", "laptop"). Receiving servers
// check the name (RFC 5321 §4.1.1.1 asks for a fully qualified domain name) and many refuse a
// bare one or score it as spam. Direct accounts check their name more strictly themselves
// (smtp/direct_transport.h, LooksLikeFullyQualified).
//
// Threading: pure functions, thread-safe; LocalHostName() asks the system resolver.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/account_config.h"

namespace herald {

// The name this machine gives in EHLO when the account sets none: its fully qualified name
// (gethostname + the resolver's canonical name), or "localhost.localdomain" when it has none.
std::string LocalHostName();

// For an smtp or gmail account without helo_name, when `local_host_name` (what it greets with)
// has no dot: a warning naming the file and line, the account, the name it will use, why it
// matters and the setting to add. Nothing otherwise.
std::optional<std::string> HeloNameWarning(const AccountConfig& account, std::string_view local_host_name);

// HeloNameWarning() with LocalHostName(), looked up only for an account that greets with it.
std::optional<std::string> HeloNameWarningForThisMachine(const AccountConfig& account);

}  // namespace herald
