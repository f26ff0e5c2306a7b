// PickupTransport: the `pickup` account kind. Each message becomes one .eml file in a folder —
// an Exchange or IIS pickup folder, or any folder a user wants to inspect. The file appears
// atomically (see internal/atomic_file.h) and the recipient counts as sent once it is there.
// File names are unique: "<time>-<process>-<sequence>.eml". The folder may itself be a symbolic
// link; a file is created in it without following one.
#pragma once

#include <string>

#include "transport/transport.h"

namespace herald {

class PickupTransport final : public Transport {
 public:
  explicit PickupTransport(std::string folder);

  std::string Destination(const Address&) const override { return {}; }
  // Creates the folder if needed. Fails with scope kAccount when it cannot be created.
  asio::awaitable<ConnectResult> Connect(std::string destination) override;

  const std::string& folder() const { return folder_; }

 private:
  std::string folder_;
};

}  // namespace herald
