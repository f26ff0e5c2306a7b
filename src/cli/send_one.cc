#include "cli/send_one.h"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

namespace herald {
namespace {

Outcome NoOutcome() {
  Outcome outcome;
  outcome.disposition = Disposition::kTemporary;
  outcome.stage = Stage::kData;
  outcome.text = "the transport returned no result";
  return outcome;
}

asio::awaitable<Outcome> Deliver(Transport& transport, std::string destination, Envelope envelope,
                                 std::shared_ptr<const MessageData> message) {
  ConnectResult connected = co_await transport.Connect(std::move(destination));
  if (connected.connection == nullptr) co_return connected.failure;
  std::vector<Outcome> outcomes = co_await connected.connection->Send(std::move(envelope), std::move(message));
  co_await connected.connection->Close();
  co_return outcomes.empty() ? NoOutcome() : outcomes.front();
}

}  // namespace

Outcome SendOneMessage(Transport& transport, std::string destination, Envelope envelope,
                       std::shared_ptr<const MessageData> message) {
  asio::io_context io(1);
  Outcome result = NoOutcome();
  asio::co_spawn(io, Deliver(transport, std::move(destination), std::move(envelope), std::move(message)),
                 [&](std::exception_ptr error, Outcome outcome) {
                   if (!error) result = std::move(outcome);
                 });
  io.run();
  return result;
}

}  // namespace herald
