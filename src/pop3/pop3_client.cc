#include "pop3/pop3_client.h"

#include <fmt/format.h>

#include "core/text.h"

namespace herald {
namespace {

// Text building outside the coroutine (g++ 12 and arrays in coroutine temporaries).
std::string Line(std::string_view verb, std::string_view argument) {
  std::string line(verb);
  if (!argument.empty()) {
    line += ' ';
    line += argument;
  }
  line += "\r\n";
  return line;
}

Status Refused(const std::string& host, std::string_view what, std::string_view reply) {
  return Status(StatusCode::kPermissionDenied,
                fmt::format("POP3 server {} refused {}: {}", host, what, Printable(reply, 300)));
}

Status NoStls(const std::string& host) {
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("POP3 server {} does not offer STLS and the account requires TLS", host));
}

Status PlaintextRefused(const std::string& host) {
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("the POP3 password would cross the network to {} unencrypted; set security to \"stls\" "
                            "or \"tls\"",
                            host));
}

class Pop3Conversation {
 public:
  Pop3Conversation(std::unique_ptr<Stream> stream, Duration timeout) : stream_(std::move(stream)), timeout_(timeout) {}

  // One status line: "+OK ..." or "-ERR ...". RFC 1939 §3: lines end in CRLF, at most 512 octets.
  asio::awaitable<Result<std::string>> ReadLine() {
    while (true) {
      std::size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        co_return line;
      }
      if (buffer_.size() > 4096) co_return Status(StatusCode::kUnavailable, OverlongLine());
      char chunk[1024];
      Result<std::size_t> got = co_await stream_->ReadSome(std::span<char>(chunk, sizeof chunk), timeout_);
      if (!got.ok()) co_return got.status();
      buffer_.append(chunk, *got);
    }
  }

  asio::awaitable<Result<std::string>> Command(std::string line) {
    std::string_view piece(line);
    Status written = co_await stream_->Write(std::span<const std::string_view>(&piece, 1), timeout_);
    if (!written.ok()) co_return written;
    co_return co_await ReadLine();
  }

  bool HasBufferedInput() const { return !buffer_.empty(); }
  Stream& stream() { return *stream_; }

 private:
  static std::string OverlongLine() { return "the POP3 server sent an overlong line"; }

  std::unique_ptr<Stream> stream_;
  Duration timeout_;
  std::string buffer_;
};

Status InjectedAfterStls() {
  return Status(StatusCode::kUnavailable, "the POP3 server sent more after +OK to STLS; session aborted");
}

bool Ok(const std::string& line) { return line.rfind("+OK", 0) == 0; }

}  // namespace

asio::awaitable<Status> Pop3Login(Pop3Options options) {
  ConnectOptions connect{options.host, options.port, options.local_address, options.timeout};
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(std::move(connect));
  if (!stream.ok()) co_return stream.status();
  TlsOptions tls = options.tls;
  if (tls.server_name.empty()) tls.server_name = options.host;
  if (options.security == Security::kTls) {
    Status handshake = co_await (*stream)->StartTls(tls, options.timeout);
    if (!handshake.ok()) co_return handshake;
  }
  Pop3Conversation pop(std::move(*stream), options.timeout);
  Result<std::string> greeting = co_await pop.ReadLine();
  if (!greeting.ok()) co_return greeting.status();
  if (!Ok(*greeting)) co_return Refused(options.host, "the connection", *greeting);

  if (options.security == Security::kStartTls) {
    Result<std::string> stls = co_await pop.Command(Line("STLS", ""));
    if (!stls.ok()) co_return stls.status();
    if (!Ok(*stls)) co_return NoStls(options.host);
    // RFC 2595 §4 (like RFC 3207 for SMTP): nothing read before the handshake may be used.
    if (pop.HasBufferedInput()) {
      co_return InjectedAfterStls();
    }
    Status handshake = co_await pop.stream().StartTls(tls, options.timeout);
    if (!handshake.ok()) co_return handshake;
  } else if (options.security == Security::kNone && !options.allow_plaintext_auth) {
    co_return PlaintextRefused(options.host);
  }
  if (HasLineBreakOrNul(options.username) || HasLineBreakOrNul(options.password)) {
    co_return InvalidArgument("the POP3 user name or password contains a line break or NUL");
  }
  Result<std::string> user = co_await pop.Command(Line("USER", options.username));
  if (!user.ok()) co_return user.status();
  if (!Ok(*user)) co_return Refused(options.host, "the user name", *user);
  Result<std::string> pass = co_await pop.Command(Line("PASS", options.password));
  if (!pass.ok()) co_return pass.status();
  if (!Ok(*pass)) co_return Refused(options.host, "the login", *pass);
  Result<std::string> quit = co_await pop.Command(Line("QUIT", ""));
  (void)quit;  // logged in is what counts; the server may close without answering QUIT
  co_return Status::Ok();
}

}  // namespace herald
