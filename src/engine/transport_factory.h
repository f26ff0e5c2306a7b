// TransportFactory: how the engine gets the Transport of an account without knowing the
// concrete kinds. main.cc implements it (the one place that picks implementations); tests pass
// fakes.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "config/account_config.h"
#include "core/status.h"
#include "transport/transport.h"

namespace herald {

class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // Receives each line of a protocol dialogue, secrets redacted (`herald test-account`).
  using Transcript = std::function<void(std::string_view)>;

  // The transport for `account`. Errors: the kind is not available in this build, or its
  // settings cannot be used (e.g. an unreadable secret); the error names the account.
  virtual Result<std::unique_ptr<Transport>> Create(const AccountConfig& account, Transcript transcript = {}) = 0;
};

}  // namespace herald
