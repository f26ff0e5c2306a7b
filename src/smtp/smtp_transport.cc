#include "smtp/smtp_transport.h"

#include <fmt/format.h>

#include "config/secret.h"
#include "pop3/pop3_client.h"
#include "smtp/classify.h"
#include "smtp/helo_name.h"

namespace herald {
namespace {

std::vector<smtp::Mechanism> Mechanisms(const AccountConfig& account) {
  if (account.auth == AuthMode::kXoauth2) return {smtp::Mechanism::kXoauth2};
  std::vector<smtp::Mechanism> mechanisms;
  for (PasswordMechanism mechanism : account.password_mechanisms) {
    switch (mechanism) {
      case PasswordMechanism::kPlain: mechanisms.push_back(smtp::Mechanism::kPlain); break;
      case PasswordMechanism::kLogin: mechanisms.push_back(smtp::Mechanism::kLogin); break;
      case PasswordMechanism::kCramMd5: mechanisms.push_back(smtp::Mechanism::kCramMd5); break;
    }
  }
  return mechanisms;
}

Outcome PopFailure(const Status& status) {
  Outcome outcome;
  outcome.disposition =
      status.code() == StatusCode::kUnavailable ? Disposition::kTemporary : Disposition::kPermanent;
  outcome.scope = Scope::kAccount;
  outcome.stage = Stage::kAuth;
  outcome.text = "POP-before-SMTP: " + status.message();
  return outcome;
}

class SmtpConnection final : public Connection {
 public:
  explicit SmtpConnection(std::unique_ptr<smtp::Session> session) : session_(std::move(session)) {}

  asio::awaitable<std::vector<Outcome>> Send(Envelope envelope, std::shared_ptr<const MessageData> message) override {
    co_return co_await session_->Send(std::move(envelope), std::move(message));
  }
  bool reusable() const override { return session_->usable(); }
  asio::awaitable<void> Close() override { co_await session_->Quit(); }

 private:
  std::unique_ptr<smtp::Session> session_;
};

}  // namespace

Result<std::unique_ptr<SmtpTransport>> SmtpTransport::Create(const AccountConfig& account,
                                                             std::function<void(std::string_view)> transcript) {
  smtp::SessionOptions options;
  options.host = account.host;
  options.port = account.port;
  options.security = account.security;
  options.tls.verify = account.verify_certificate;
  options.tls.ca_file = account.ca_file;
  options.helo_name = account.helo_name.empty() ? LocalHostName() : account.helo_name;
  options.local_address = account.local_address;
  options.timeouts = smtp::Timeouts::FromAccount(account.timeout);
  options.allow_plaintext_auth = account.allow_plaintext_auth;
  options.transcript = std::move(transcript);
  auto where = [&](const Status& status) {
    return status.WithContext(fmt::format("{}: account \"{}\"", account.origin, account.name));
  };
  if (account.auth != AuthMode::kNone) {
    options.username = account.username;
    options.mechanisms = Mechanisms(account);
    const SecretRef& ref = account.auth == AuthMode::kXoauth2 ? account.oauth2_token : account.password;
    Result<std::string> secret = ReadSecret(ref);
    if (!secret.ok()) return where(secret.status());
    options.secret = std::move(*secret);
  }
  std::string pop_password;
  if (account.pop_before_smtp) {
    Result<std::string> secret = ReadSecret(account.pop_before_smtp->password);
    if (!secret.ok()) return where(secret.status());
    pop_password = std::move(*secret);
  }
  return std::unique_ptr<SmtpTransport>(new SmtpTransport(account, std::move(options), std::move(pop_password)));
}

SmtpTransport::SmtpTransport(const AccountConfig& account, smtp::SessionOptions options, std::string pop_password)
    : account_(account), options_(std::move(options)), pop_password_(std::move(pop_password)) {}

asio::awaitable<std::optional<Outcome>> SmtpTransport::LogInToPop3() {
  const PopBeforeSmtp& pop = *account_.pop_before_smtp;
  auto now = std::chrono::steady_clock::now();
  if (pop_login_at_ && now - *pop_login_at_ < pop.valid_for) co_return std::nullopt;
  Pop3Options options;
  options.host = pop.host;
  options.port = pop.port;
  options.security = pop.security;
  options.tls.verify = pop.verify_certificate;
  options.tls.ca_file = pop.ca_file;
  options.local_address = account_.local_address;
  options.username = pop.username;
  options.password = pop_password_;
  options.allow_plaintext_auth = account_.allow_plaintext_auth;
  options.timeout = account_.timeout;
  Status login = co_await Pop3Login(std::move(options));
  if (!login.ok()) co_return PopFailure(login);
  pop_login_at_ = now;
  co_return std::nullopt;
}

asio::awaitable<ConnectResult> SmtpTransport::Connect(std::string) {
  if (account_.pop_before_smtp) {
    if (std::optional<Outcome> failure = co_await LogInToPop3()) co_return ConnectResult{nullptr, *failure};
  }
  smtp::OpenResult opened = co_await smtp::Session::Open(options_);
  if (opened.session == nullptr) co_return ConnectResult{nullptr, std::move(opened.failure)};
  co_return ConnectResult{std::make_unique<SmtpConnection>(std::move(opened.session)), {}};
}

}  // namespace herald
