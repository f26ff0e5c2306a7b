// herald's entry point, and the one place that picks concrete implementations (the store, the
// transport of each account kind, the clock); everything else works through interfaces.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "dns/caching_resolver.h"
#include "dns/unbound_resolver.h"
#include "engine/transport_factory.h"
#include "smtp/direct_transport.h"
#include "smtp/smtp_transport.h"
#include "store/sqlite_store.h"
#include "transport/pickup_transport.h"

namespace herald {
namespace {

class DefaultTransportFactory final : public TransportFactory {
 public:
  explicit DefaultTransportFactory(const Clock& clock) : clock_(clock) {}

  Result<std::unique_ptr<Transport>> Create(const AccountConfig& account, Transcript transcript) override {
    switch (account.kind) {
      case AccountKind::kPickup:
        return std::unique_ptr<Transport>(std::make_unique<PickupTransport>(account.folder));
      case AccountKind::kSmtp:
      case AccountKind::kGmail: {
        Result<std::unique_ptr<SmtpTransport>> transport = SmtpTransport::Create(account, std::move(transcript));
        if (!transport.ok()) return transport.status();
        return std::unique_ptr<Transport>(std::move(*transport));
      }
      case AccountKind::kDirect: {
        // The account's DNS server (or the system's), with answers kept for their TTL.
        Result<std::unique_ptr<dns::UnboundResolver>> unbound =
            dns::UnboundResolver::Create(dns::UnboundOptions{.server = account.dns_server});
        if (!unbound.ok()) {
          return unbound.status().WithContext(fmt::format("{}: account \"{}\"", account.origin, account.name));
        }
        auto resolver = std::make_unique<dns::CachingResolver>(std::move(*unbound), clock_);
        DirectOptions options;
        options.transcript = std::move(transcript);
        // What MTA-STS testing mode would have refused (RFC 8461 §5: to be reported).
        options.report = [](std::string_view line) { fmt::print(stderr, "herald: {}\n", line); };
        options.clock = &clock_;
        Result<std::unique_ptr<DirectTransport>> transport =
            DirectTransport::Create(account, std::move(resolver), std::move(options));
        if (!transport.ok()) return transport.status();
        for (const std::string& warning : (*transport)->warnings()) fmt::print(stderr, "warning: {}\n", warning);
        return std::unique_ptr<Transport>(std::move(*transport));
      }
      case AccountKind::kEws:
      case AccountKind::kGraph:
        break;
    }
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("{}: account \"{}\": this build of herald cannot send through {} accounts yet",
                              account.origin, account.name, AccountKindName(account.kind)));
  }

 private:
  const Clock& clock_;
};

}  // namespace
}  // namespace herald

int main(int argc, char** argv) {
  herald::SystemClock clock;
  herald::DefaultTransportFactory transports(clock);
  herald::CliDependencies dependencies{
      .open_store = [](const std::string& path,
                       herald::StoreOpening opening) -> herald::Result<std::unique_ptr<herald::Store>> {
        herald::SqliteStore::Options options;
        options.create_if_missing = opening == herald::StoreOpening::kCreateIfMissing;
        herald::Result<std::unique_ptr<herald::SqliteStore>> store = herald::SqliteStore::Open(path, options);
        if (!store.ok()) return store.status();
        return std::unique_ptr<herald::Store>(std::move(*store));
      },
      .transports = &transports,
      .clock = &clock,
  };
  return herald::RunCli(argc, argv, dependencies);
}
