// SmtpTransport: the `smtp` and `gmail` account kinds — the provider's or company's relay. Each
// Connection is one Session (smtp/session.h) set up from the account: host, port, security,
// certificate checks, HELO name, local address, authentication (password mechanisms or XOAUTH2),
// and POP-before-SMTP (a POP3 login before connecting, repeated when its window has passed).
// Threading: the io_context's thread.
#pragma once

#include <memory>
#include <string>

#include "config/account_config.h"
#include "smtp/session.h"
#include "transport/transport.h"

namespace herald {

class SmtpTransport final : public Transport {
 public:
  // Reads the account's secrets now, so that a missing one is found before the first message.
  // `transcript` (may be empty) receives the dialogue of every session, AUTH redacted.
  static Result<std::unique_ptr<SmtpTransport>> Create(const AccountConfig& account,
                                                       std::function<void(std::string_view)> transcript = {});

  std::string Destination(const Address&) const override { return {}; }
  asio::awaitable<ConnectResult> Connect(std::string destination) override;

  const smtp::SessionOptions& session_options() const { return options_; }

 private:
  SmtpTransport(const AccountConfig& account, smtp::SessionOptions options, std::string pop_password);
  asio::awaitable<std::optional<Outcome>> LogInToPop3();

  const AccountConfig& account_;
  smtp::SessionOptions options_;
  std::string pop_password_;
  std::optional<std::chrono::steady_clock::time_point> pop_login_at_;
};

}  // namespace herald
