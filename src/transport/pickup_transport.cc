#include "transport/pickup_transport.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "transport/internal/atomic_file.h"

namespace herald {
namespace {

using transport_internal::IfExists;
using transport_internal::WriteMessageFile;

// A full disk or a vanished folder is a fault of this machine, not of a recipient or a server:
// the engine stops the run and the recipients wait, unsent, until it is fixed.
Outcome FolderFailure(const Status& status) {
  Outcome outcome;
  outcome.disposition = Disposition::kTemporary;
  outcome.scope = Scope::kLocal;
  outcome.stage = Stage::kWrite;
  outcome.text = status.message();
  return outcome;
}

class PickupConnection final : public Connection {
 public:
  explicit PickupConnection(const std::string& folder) : folder_(folder) {}

  asio::awaitable<std::vector<Outcome>> Send(Envelope envelope, std::shared_ptr<const MessageData> message) override {
    static std::atomic<unsigned long> sequence{0};
    long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::string name = fmt::format("{}-{}-{}.eml", now_ms, ::getpid(), sequence++);
    Result<std::string> written = WriteMessageFile(folder_, "", name, *message, IfExists::kReplace);
    Outcome outcome;
    if (written.ok()) {
      outcome.stage = Stage::kWrite;
      outcome.text = fmt::format("written to {}", *written);
    } else {
      outcome = FolderFailure(written.status());
    }
    co_return std::vector<Outcome>(envelope.recipients.size(), outcome);
  }

  bool reusable() const override { return true; }
  asio::awaitable<void> Close() override { co_return; }

 private:
  const std::string& folder_;
};

}  // namespace

PickupTransport::PickupTransport(std::string folder) : folder_(std::move(folder)) {}

asio::awaitable<ConnectResult> PickupTransport::Connect(std::string) {
  std::error_code ec;
  std::filesystem::create_directories(folder_, ec);
  if (ec || !std::filesystem::is_directory(folder_, ec)) {
    Outcome failure = FolderFailure(IoError(fmt::format("cannot create the pickup folder {}: {}", folder_,
                                                        ec ? ec.message() : "not a folder")));
    failure.stage = Stage::kConnect;
    co_return ConnectResult{nullptr, failure};
  }
  co_return ConnectResult{std::make_unique<PickupConnection>(folder_), {}};
}

}  // namespace herald
