// Reading secrets (passwords, OAuth2 tokens, client secrets) from where the configuration says
// they are. The secret's value never appears in a Status message; errors describe only where it
// was looked for. Thread-safe.
#pragma once

#include <string>

#include "config/account_config.h"
#include "core/status.h"

namespace herald {

// The secret: the environment variable's value, or the file's content without trailing CR/LF.
// Errors: variable unset or empty, file unreadable, a folder, or empty.
Result<std::string> ReadSecret(const SecretRef& ref);

}  // namespace herald
