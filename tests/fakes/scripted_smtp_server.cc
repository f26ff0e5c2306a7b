#include "fakes/scripted_smtp_server.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace herald {
namespace {

using asio::ip::tcp;

constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);

// RFC 5321 §4.5.3.1.4 / RFC 4954 §4 line limits, and a cap on what is buffered without a line end.
constexpr std::size_t kMaxCommandLine = 512;
constexpr std::size_t kMaxAuthLine = 12288;
constexpr std::size_t kMaxBufferedLine = 64 * 1024;

// Google's XOAUTH2 error challenge: {"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}
constexpr std::string_view kXoauth2ErrorChallenge =
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && Lower(s.substr(0, prefix.size())) == Lower(prefix);
}

// Base64 with OpenSSL's own coder, independent of the client's.
std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                  static_cast<int>(in.size()));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  std::size_t padding = 0;
  if (!in.empty() && in.back() == '=') ++padding;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

std::string HmacMd5Hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_md5(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &size);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

// The path between '<' and the matching '>' (quotes respected) after "FROM:" / "TO:", and what
// follows it.
bool ParsePathArgument(std::string_view arg, std::string_view keyword, std::string& path, std::string& rest) {
  if (!StartsWithIgnoreCase(arg, keyword)) return false;
  arg.remove_prefix(keyword.size());
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  if (arg.empty() || arg.front() != '<') return false;
  bool quoted = false;
  for (std::size_t i = 1; i < arg.size(); ++i) {
    if (arg[i] == '\\' && quoted) {
      ++i;
    } else if (arg[i] == '"') {
      quoted = !quoted;
    } else if (arg[i] == '>' && !quoted) {
      path = std::string(arg.substr(1, i - 1));
      std::string_view tail = arg.substr(i + 1);
      while (!tail.empty() && tail.front() == ' ') tail.remove_prefix(1);
      rest = std::string(tail);
      return true;
    }
  }
  return false;
}

// What the connection does next.
struct Step {
  std::string write;
  bool close = false;
  bool stall = false;
  bool starttls = false;  // after writing: discard buffered plaintext, TLS handshake as server
};

Step ReplyStep(std::string text) {
  Step step;
  step.write = std::move(text);
  if (!step.write.empty() && step.write.back() != '\n') step.write += "\r\n";
  return step;
}

Step ActionStep(const SmtpAction& action) {
  Step step = ReplyStep(action.reply);
  step.close = action.close;
  step.stall = action.stall;
  return step;
}

// The protocol side of one connection, without I/O: takes the bytes received, returns what to do.
class FakeSession {
 public:
  FakeSession(const SmtpServerScript& script, bool tls_available, bool tls_active, std::mutex& mu,
              SmtpSessionRecord& record, int connection_number)
      : script_(script),
        tls_available_(tls_available),
        tls_active_(tls_active),
        mu_(mu),
        record_(record),
        connection_number_(connection_number) {}

  Step Greeting() {
    if (const SmtpAction* a = Scripted("GREETING")) return ActionStep(*a);
    return ReplyStep("220 " + script_.host_name + " ESMTP herald fake");
  }

  // RFC 3207 §4.2: after the handshake the server forgets everything it knew from the client.
  void TlsStarted() {
    tls_active_ = true;
    authenticated_ = false;
    transaction_.reset();
    Record([](SmtpSessionRecord& r) { r.tls = true; });
  }

  // Takes one command (or the data of a message) from the front of `in`; nullopt when `in` does
  // not yet hold a complete one.
  std::optional<Step> Process(std::string& in) {
    if (in_data_) return ProcessData(in);
    const std::size_t lf = in.find('\n');
    if (lf == std::string::npos) {
      if (in.size() > kMaxBufferedLine) {
        Step step = ReplyStep("500 5.5.0 Error: line too long");
        step.close = true;
        return step;
      }
      return std::nullopt;
    }
    std::string line = in.substr(0, lf);
    in.erase(0, lf + 1);
    const bool crlf = !line.empty() && line.back() == '\r';
    if (crlf) line.pop_back();
    Record([&](SmtpSessionRecord& r) {
      r.commands.push_back(line);
      if (!crlf) r.bare_lf = true;
    });
    if (auth_state_ != AuthState::kNone) return AuthContinue(line, line.size() + 2);
    return Command(line, line.size() + 2);
  }

 private:
  enum class AuthState { kNone, kPlain, kLoginUser, kLoginPassword, kCramMd5, kXoauth2, kXoauth2Error };

  template <typename F>
  void Record(F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    f(record_);
  }

  const SmtpAction* Scripted(const std::string& event) const {
    auto it = script_.on.find(event);
    return it == script_.on.end() ? nullptr : &it->second;
  }

  std::uint64_t DeclaredMaxSize() const {
    for (const std::string& e : script_.extensions) {
      if (StartsWithIgnoreCase(e, "SIZE ")) return std::strtoull(e.c_str() + 5, nullptr, 10);
    }
    return 0;
  }

  Step Command(const std::string& line, std::size_t wire_length) {
    const std::size_t space = line.find(' ');
    const std::string verb = Upper(line.substr(0, space));
    const std::string arg = space == std::string::npos ? std::string() : line.substr(space + 1);
    if (wire_length > (verb == "AUTH" ? kMaxAuthLine : kMaxCommandLine)) {
      return ReplyStep("500 5.5.2 Error: line too long");
    }
    if (verb == "EHLO") return Ehlo(arg);
    if (verb == "HELO") {
      transaction_.reset();
      if (const SmtpAction* a = Scripted("HELO")) return ActionStep(*a);
      return ReplyStep("250 " + script_.host_name);
    }
    if (verb == "STARTTLS") return StartTls();
    if (verb == "AUTH") return Auth(arg);
    if (verb == "MAIL") return Mail(arg);
    if (verb == "RCPT") return Rcpt(arg);
    if (verb == "DATA") return Data();
    if (verb == "RSET") {
      transaction_.reset();
      if (const SmtpAction* a = Scripted("RSET")) return ActionStep(*a);
      return ReplyStep("250 2.0.0 Ok");
    }
    if (verb == "NOOP") {
      if (const SmtpAction* a = Scripted("NOOP")) return ActionStep(*a);
      return ReplyStep("250 2.0.0 Ok");
    }
    if (verb == "QUIT") {
      Record([](SmtpSessionRecord& r) { r.quit = true; });
      if (const SmtpAction* a = Scripted("QUIT")) return ActionStep(*a);
      Step step = ReplyStep("221 2.0.0 Bye");
      step.close = true;
      return step;
    }
    return ReplyStep("502 5.5.2 Error: command not recognized");
  }

  Step Ehlo(const std::string& arg) {
    transaction_.reset();
    if (const SmtpAction* a = Scripted("EHLO")) return ActionStep(*a);
    std::vector<std::string> lines;
    lines.push_back(script_.host_name + " greets " + arg);
    for (const std::string& e : script_.extensions) lines.push_back(e);
    if (tls_available_ && script_.offer_starttls && !tls_active_) lines.push_back("STARTTLS");
    std::string reply;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      reply += (i + 1 < lines.size() ? "250-" : "250 ") + lines[i] + "\r\n";
    }
    return ReplyStep(reply);
  }

  Step StartTls() {
    const SmtpAction* a = Scripted("STARTTLS");
    const bool possible = tls_available_ && !tls_active_;
    if (a == nullptr && (!possible || !script_.offer_starttls)) {
      return ReplyStep(tls_active_ ? "503 5.5.1 Error: TLS already active" : "502 5.5.1 Error: STARTTLS not available");
    }
    Step step = a != nullptr ? ActionStep(*a) : ReplyStep("220 2.0.0 Ready to start TLS");
    step.starttls = possible && step.write.starts_with("220") && !step.close && !step.stall;
    return step;
  }

  bool CredentialsOk(const std::string& user, const std::string& password) const {
    return script_.auth_user.empty() || (user == script_.auth_user && password == script_.auth_password);
  }

  Step AuthResult(const std::string& mechanism, const std::string& user, const std::string& password) {
    auth_state_ = AuthState::kNone;
    if (!CredentialsOk(user, password)) {
      if (mechanism == "XOAUTH2") {
        auth_state_ = AuthState::kXoauth2Error;
        return ReplyStep("334 " + std::string(kXoauth2ErrorChallenge));
      }
      return ReplyStep("535 5.7.8 Error: authentication failed: credentials invalid");
    }
    authenticated_ = true;
    Record([&](SmtpSessionRecord& r) {
      r.authenticated_user = user;
      r.auth_mechanism = mechanism;
    });
    return ReplyStep("235 2.7.0 Authentication successful");
  }

  // RFC 4616: [authzid] NUL authcid NUL passwd.
  Step CheckPlain(const std::string& base64) {
    std::optional<std::string> decoded = Base64Decode(base64);
    if (!decoded) {
      auth_state_ = AuthState::kNone;
      return ReplyStep("501 5.5.2 Error: invalid base64");
    }
    const std::size_t first = decoded->find('\0');
    const std::size_t second = first == std::string::npos ? first : decoded->find('\0', first + 1);
    if (second == std::string::npos) {
      auth_state_ = AuthState::kNone;
      return ReplyStep("501 5.5.2 Error: malformed PLAIN response");
    }
    return AuthResult("PLAIN", decoded->substr(first + 1, second - first - 1), decoded->substr(second + 1));
  }

  // user=<user> \x01 auth=Bearer <token> \x01 \x01
  Step CheckXoauth2(const std::string& base64) {
    std::optional<std::string> decoded = Base64Decode(base64);
    const std::string prefix = "user=";
    const std::string middle = "\x01" "auth=Bearer ";
    const std::string suffix = "\x01\x01";
    std::string user, token;
    if (decoded && decoded->starts_with(prefix) && decoded->ends_with(suffix)) {
      const std::size_t m = decoded->find(middle);
      if (m != std::string::npos) {
        user = decoded->substr(prefix.size(), m - prefix.size());
        token = decoded->substr(m + middle.size(), decoded->size() - suffix.size() - m - middle.size());
      }
    }
    if (user.empty()) {
      auth_state_ = AuthState::kNone;
      return ReplyStep("501 5.5.2 Error: malformed XOAUTH2 response");
    }
    return AuthResult("XOAUTH2", user, token);
  }

  Step Auth(const std::string& arg) {
    if (const SmtpAction* a = Scripted("AUTH")) return ActionStep(*a);
    if (script_.require_tls && !tls_active_) return ReplyStep("530 5.7.0 Must issue a STARTTLS command first");
    if (authenticated_) return ReplyStep("503 5.5.1 Error: already authenticated");
    if (transaction_) return ReplyStep("503 5.5.1 Error: MAIL transaction in progress");
    const std::size_t space = arg.find(' ');
    const std::string mechanism = Upper(arg.substr(0, space));
    std::optional<std::string> initial;
    if (space != std::string::npos) initial = arg.substr(space + 1) == "=" ? std::string() : arg.substr(space + 1);
    if (mechanism == "PLAIN") {
      if (initial) return CheckPlain(*initial);
      auth_state_ = AuthState::kPlain;
      return ReplyStep("334 ");
    }
    if (mechanism == "LOGIN") {
      if (initial) {
        std::optional<std::string> user = Base64Decode(*initial);
        if (!user) return ReplyStep("501 5.5.2 Error: invalid base64");
        login_user_ = *user;
        auth_state_ = AuthState::kLoginPassword;
        return ReplyStep("334 UGFzc3dvcmQ6");
      }
      auth_state_ = AuthState::kLoginUser;
      return ReplyStep("334 VXNlcm5hbWU6");
    }
    if (mechanism == "CRAM-MD5") {
      cram_challenge_ = "<" + std::to_string(1000 + connection_number_) + "." + std::to_string(std::time(nullptr)) +
                        "@" + script_.host_name + ">";
      auth_state_ = AuthState::kCramMd5;
      return ReplyStep("334 " + Base64Encode(cram_challenge_));
    }
    if (mechanism == "XOAUTH2") {
      if (initial) return CheckXoauth2(*initial);
      auth_state_ = AuthState::kXoauth2;
      return ReplyStep("334 ");
    }
    return ReplyStep("504 5.5.4 Error: unsupported authentication mechanism");
  }

  Step AuthContinue(const std::string& line, std::size_t wire_length) {
    if (wire_length > kMaxAuthLine) {
      auth_state_ = AuthState::kNone;
      return ReplyStep("500 5.5.2 Error: line too long");
    }
    if (const SmtpAction* a = Scripted("AUTH_STEP")) {
      auth_state_ = AuthState::kNone;
      return ActionStep(*a);
    }
    if (line == "*") {
      auth_state_ = AuthState::kNone;
      return ReplyStep("501 5.7.0 Authentication aborted");
    }
    switch (auth_state_) {
      case AuthState::kPlain:
        return CheckPlain(line);
      case AuthState::kLoginUser: {
        std::optional<std::string> user = Base64Decode(line);
        if (!user) break;
        login_user_ = *user;
        auth_state_ = AuthState::kLoginPassword;
        return ReplyStep("334 UGFzc3dvcmQ6");
      }
      case AuthState::kLoginPassword: {
        std::optional<std::string> password = Base64Decode(line);
        if (!password) break;
        return AuthResult("LOGIN", login_user_, *password);
      }
      case AuthState::kCramMd5: {
        std::optional<std::string> response = Base64Decode(line);
        if (!response) break;
        const std::size_t space = response->rfind(' ');
        if (space == std::string::npos) break;
        const std::string user = response->substr(0, space);
        const std::string digest = response->substr(space + 1);
        // The expected digest is computed with the scripted password; any user passes when no
        // credentials are scripted.
        const bool ok = script_.auth_user.empty() ||
                        (user == script_.auth_user && digest == HmacMd5Hex(script_.auth_password, cram_challenge_));
        auth_state_ = AuthState::kNone;
        if (!ok) return ReplyStep("535 5.7.8 Error: authentication failed: credentials invalid");
        return AuthResult("CRAM-MD5", user, script_.auth_password);
      }
      case AuthState::kXoauth2:
        return CheckXoauth2(line);
      case AuthState::kXoauth2Error:
        auth_state_ = AuthState::kNone;
        return ReplyStep("535 5.7.8 Username and Password not accepted");
      case AuthState::kNone:
        break;
    }
    auth_state_ = AuthState::kNone;
    return ReplyStep("501 5.5.2 Error: invalid base64 or response");
  }

  Step Mail(const std::string& arg) {
    std::string path, parameters;
    const bool parsed = ParsePathArgument(arg, "FROM:", path, parameters);
    Step step;
    if (const SmtpAction* a = Scripted("MAIL")) {
      step = ActionStep(*a);
    } else if (script_.require_tls && !tls_active_) {
      step = ReplyStep("530 5.7.0 Must issue a STARTTLS command first");
    } else if (script_.require_auth && !authenticated_) {
      step = ReplyStep("530 5.7.0 Authentication required");
    } else if (transaction_) {
      step = ReplyStep("503 5.5.1 Error: nested MAIL command");
    } else if (!parsed) {
      step = ReplyStep("501 5.5.4 Syntax: MAIL FROM:<address>");
    } else {
      const std::uint64_t max = DeclaredMaxSize();
      std::uint64_t size = 0;
      for (std::size_t pos = 0; pos < parameters.size();) {
        std::size_t end = parameters.find(' ', pos);
        if (end == std::string::npos) end = parameters.size();
        const std::string p = parameters.substr(pos, end - pos);
        if (StartsWithIgnoreCase(p, "SIZE=")) size = std::strtoull(p.c_str() + 5, nullptr, 10);
        pos = end + 1;
      }
      step = max > 0 && size > max ? ReplyStep("552 5.3.4 Message size exceeds fixed limit") : ReplyStep("250 2.1.0 Ok");
    }
    if (step.write.starts_with("2") && parsed) {
      transaction_.emplace();
      transaction_->mail_from = path;
      transaction_->mail_parameters = parameters;
    }
    return step;
  }

  Step Rcpt(const std::string& arg) {
    std::string path, parameters;
    const bool parsed = ParsePathArgument(arg, "TO:", path, parameters);
    Step step;
    const SmtpAction* by_address = nullptr;
    for (const auto& [address, action] : script_.on_rcpt) {
      if (parsed && Lower(address) == Lower(path)) by_address = &action;
    }
    if (!transaction_) {
      step = ReplyStep("503 5.5.1 Error: need MAIL command");
    } else if (!parsed) {
      step = ReplyStep("501 5.5.4 Syntax: RCPT TO:<address>");
    } else if (by_address != nullptr) {
      step = ActionStep(*by_address);
    } else if (script_.max_recipients > 0 &&
               transaction_->recipients.size() >= static_cast<std::size_t>(script_.max_recipients)) {
      step = ReplyStep("452 4.5.3 Error: too many recipients");
    } else if (const SmtpAction* a = Scripted("RCPT")) {
      step = ActionStep(*a);
    } else {
      step = ReplyStep("250 2.1.5 Ok");
    }
    if (transaction_ && parsed && step.write.starts_with("2")) transaction_->recipients.push_back(path);
    return step;
  }

  Step Data() {
    Step step;
    if (const SmtpAction* a = Scripted("DATA")) {
      step = ActionStep(*a);
    } else if (!transaction_) {
      step = ReplyStep("503 5.5.1 Error: need MAIL command");
    } else if (transaction_->recipients.empty()) {
      step = ReplyStep("554 5.5.1 Error: no valid recipients");
    } else {
      step = ReplyStep("354 End data with <CR><LF>.<CR><LF>");
    }
    if (transaction_ && step.write.starts_with("3") && !step.close && !step.stall) {
      in_data_ = true;
      scan_from_ = 0;
    }
    return step;
  }

  // RFC 5321 §4.1.1.4: the data ends with the line "." — "\r\n.\r\n", or ".\r\n" right at the start.
  std::optional<Step> ProcessData(std::string& in) {
    std::string& data = transaction_->data;
    data.append(in);
    in.clear();
    std::size_t end = std::string::npos;
    if (data.starts_with(".\r\n")) {
      end = 3;
    } else {
      const std::size_t marker = data.find("\r\n.\r\n", scan_from_);
      if (marker != std::string::npos) end = marker + 5;
    }
    if (end == std::string::npos) {
      scan_from_ = data.size() >= 4 ? data.size() - 4 : 0;
      return std::nullopt;
    }
    in = data.substr(end);  // pipelined commands after the data
    data.resize(end);
    in_data_ = false;
    ++messages_;
    Step step;
    if (const SmtpAction* a = Scripted("DATA_END")) {
      step = ActionStep(*a);
    } else {
      step = ReplyStep("250 2.0.0 Ok: queued as FAKE" + std::to_string(connection_number_) + "M" +
                       std::to_string(messages_));
    }
    transaction_->accepted = step.write.starts_with("2");
    Record([&](SmtpSessionRecord& r) { r.messages.push_back(std::move(*transaction_)); });
    transaction_.reset();
    return step;
  }

  const SmtpServerScript& script_;
  const bool tls_available_;
  bool tls_active_;
  std::mutex& mu_;
  SmtpSessionRecord& record_;
  const int connection_number_;

  AuthState auth_state_ = AuthState::kNone;
  std::string login_user_;
  std::string cram_challenge_;
  bool authenticated_ = false;
  std::optional<SmtpReceivedMessage> transaction_;
  bool in_data_ = false;
  std::size_t scan_from_ = 0;
  int messages_ = 0;
};

// The script and TLS context a connection runs with (a snapshot taken when it was accepted).
struct ServerConfig {
  SmtpServerScript script;
  std::shared_ptr<asio::ssl::context> tls;
};

std::shared_ptr<const ServerConfig> MakeConfig(SmtpServerScript script) {
  auto config = std::make_shared<ServerConfig>();
  if (!script.certificate_file.empty()) {
    config->tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    config->tls->use_certificate_chain_file(script.certificate_file);
    config->tls->use_private_key_file(script.key_file, asio::ssl::context::pem);
  } else if (script.implicit_tls) {
    throw std::runtime_error("ScriptedSmtpServer: implicit_tls needs certificate_file and key_file");
  }
  config->script = std::move(script);
  return config;
}

struct Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  asio::steady_timer timer;
  std::string in;
};

void CloseConnection(Connection& c) {
  std::error_code ignored;
  c.timer.cancel();
  c.socket.shutdown(tcp::socket::shutdown_both, ignored);
  c.socket.close(ignored);
}

}  // namespace

struct ScriptedSmtpServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::promise<void> finished;

  mutable std::mutex mu;
  mutable std::condition_variable changed;
  std::shared_ptr<const ServerConfig> config;  // guarded by mu
  std::deque<SmtpSessionRecord> records;       // guarded by mu; a deque keeps references stable
  int connections = 0;                         // guarded by mu

  std::vector<std::weak_ptr<Connection>> live;  // io thread only

  void MarkEnded(SmtpSessionRecord& record) {
    {
      std::lock_guard<std::mutex> lock(mu);
      record.ended = true;
    }
    changed.notify_all();
  }

  void RecordTlsError(SmtpSessionRecord& record, const std::error_code& error) {
    std::lock_guard<std::mutex> lock(mu);
    record.tls_error = error.message();
  }

  void RecordPlaintextAfterStartTls(SmtpSessionRecord& record, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu);
    record.plaintext_after_starttls += n;
  }

  // Registers a new connection; returns its record and number.
  std::pair<SmtpSessionRecord*, int> Register(const std::shared_ptr<Connection>& c,
                                              std::shared_ptr<const ServerConfig>& config_out) {
    live.erase(std::remove_if(live.begin(), live.end(), [](const auto& w) { return w.expired(); }), live.end());
    live.push_back(c);
    std::lock_guard<std::mutex> lock(mu);
    config_out = config;
    records.emplace_back();
    ++connections;
    return {&records.back(), connections};
  }

  void Shutdown() {
    std::error_code ignored;
    acceptor.close(ignored);
    for (const std::weak_ptr<Connection>& w : live) {
      if (std::shared_ptr<Connection> c = w.lock()) CloseConnection(*c);
    }
  }
};

namespace {

asio::awaitable<std::size_t> ReadSome(Connection& c, char* data, std::size_t size, std::error_code& error) {
  if (c.tls) {
    auto [e, n] = co_await c.tls->async_read_some(asio::buffer(data, size), kAsTuple);
    error = e;
    co_return n;
  }
  auto [e, n] = co_await c.socket.async_read_some(asio::buffer(data, size), kAsTuple);
  error = e;
  co_return n;
}

asio::awaitable<bool> WriteBytes(Connection& c, const char* data, std::size_t size) {
  if (c.tls) {
    auto [e, n] = co_await asio::async_write(*c.tls, asio::buffer(data, size), kAsTuple);
    co_return !e;
  }
  auto [e, n] = co_await asio::async_write(c.socket, asio::buffer(data, size), kAsTuple);
  co_return !e;
}

asio::awaitable<bool> Write(Connection& c, std::string bytes, std::chrono::milliseconds byte_delay) {
  // Every co_await is a statement of its own: g++ 12 miscompiles co_await inside && and ||.
  if (byte_delay.count() <= 0) {
    const bool ok = co_await WriteBytes(c, bytes.data(), bytes.size());
    co_return ok;
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const bool ok = co_await WriteBytes(c, bytes.data() + i, 1);
    if (!ok) co_return false;
    c.timer.expires_after(byte_delay);
    auto [e] = co_await c.timer.async_wait(kAsTuple);
    if (e) co_return false;
  }
  co_return true;
}

// Reads and ignores everything until the connection ends.
asio::awaitable<void> Drain(Connection& c) {
  std::string buffer(16 * 1024, '\0');
  for (;;) {
    std::error_code error;
    co_await ReadSome(c, buffer.data(), buffer.size(), error);
    if (error) co_return;
  }
}

asio::awaitable<bool> Handshake(ScriptedSmtpServer::Impl* impl, Connection& c, asio::ssl::context& context,
                                SmtpSessionRecord& record) {
  c.tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(c.socket, context);
  auto [e] = co_await c.tls->async_handshake(asio::ssl::stream_base::server, kAsTuple);
  if (e) {
    impl->RecordTlsError(record, e);
    co_return false;
  }
  co_return true;
}

// Carries out one step; false when the connection is over.
asio::awaitable<bool> Perform(ScriptedSmtpServer::Impl* impl, Connection& c, const ServerConfig& config,
                              FakeSession& session, SmtpSessionRecord& record, Step step) {
  if (!step.write.empty()) {
    const bool ok = co_await Write(c, std::move(step.write), config.script.byte_delay);
    if (!ok) co_return false;
  }
  if (step.close) co_return false;
  if (step.stall) {
    co_await Drain(c);
    co_return false;
  }
  if (step.starttls) {
    // Whatever the client sent after STARTTLS in plain text is discarded (RFC 3207 §4.2 asks the
    // client not to send it; a test can check that it did not).
    impl->RecordPlaintextAfterStartTls(record, c.in.size());
    c.in.clear();
    const bool ok = co_await Handshake(impl, c, *config.tls, record);
    if (!ok) co_return false;
    session.TlsStarted();
  }
  co_return true;
}

asio::awaitable<void> Serve(ScriptedSmtpServer::Impl* impl, std::shared_ptr<Connection> c,
                            std::shared_ptr<const ServerConfig> config, SmtpSessionRecord* record, int number) {
  const bool implicit = config->script.implicit_tls;
  FakeSession session(config->script, config->tls != nullptr, implicit, impl->mu, *record, number);
  bool open = true;
  if (implicit) {
    open = co_await Handshake(impl, *c, *config->tls, *record);
    if (open) session.TlsStarted();
  }
  if (open) {
    Step greeting = session.Greeting();
    open = co_await Perform(impl, *c, *config, session, *record, std::move(greeting));
  }
  std::string buffer(64 * 1024, '\0');
  while (open) {
    std::error_code error;
    const std::size_t n = co_await ReadSome(*c, buffer.data(), buffer.size(), error);
    if (error) break;
    c->in.append(buffer.data(), n);
    while (open) {
      std::optional<Step> step = session.Process(c->in);
      if (!step) break;
      open = co_await Perform(impl, *c, *config, session, *record, std::move(*step));
    }
  }
  CloseConnection(*c);
  impl->MarkEnded(*record);
}

asio::awaitable<void> Accept(ScriptedSmtpServer::Impl* impl) {
  for (;;) {
    // Accepting into a socket made first: g++ 12 mishandles a socket moved out of a structured
    // binding of the awaited tuple.
    tcp::socket socket(impl->io);
    auto [e] = co_await impl->acceptor.async_accept(socket, kAsTuple);
    if (e) {
      if (!impl->acceptor.is_open()) co_return;
      continue;
    }
    auto c = std::make_shared<Connection>(std::move(socket));
    std::shared_ptr<const ServerConfig> config;
    auto [record, number] = impl->Register(c, config);
    asio::co_spawn(impl->io, Serve(impl, c, config, record, number), asio::detached);
  }
}

}  // namespace

std::string UnstuffSmtpData(std::string_view data) {
  std::string out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    std::size_t end = data.find("\r\n", pos);
    std::string_view line = data.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (line == "." && (end == std::string_view::npos || end + 2 == data.size())) break;
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    out.append(line);
    if (end == std::string_view::npos) break;
    out.append("\r\n");
    pos = end + 2;
  }
  return out;
}

ScriptedSmtpServer::ScriptedSmtpServer(SmtpServerScript script) : impl_(std::make_unique<Impl>()) {
  impl_->config = MakeConfig(std::move(script));
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, Accept(impl_.get()), asio::detached);
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->io.run();
    impl->finished.set_value();
  });
}

ScriptedSmtpServer::~ScriptedSmtpServer() {
  std::future<void> done = impl_->finished.get_future();
  asio::post(impl_->io, [impl = impl_.get()] { impl->Shutdown(); });
  // Every coroutine ends once its socket is closed; if one does not, stop the loop anyway.
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) impl_->io.stop();
  impl_->thread.join();
}

void ScriptedSmtpServer::SetScript(SmtpServerScript script) {
  std::shared_ptr<const ServerConfig> config = MakeConfig(std::move(script));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->config = std::move(config);
}

int ScriptedSmtpServer::connection_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections;
}

std::vector<SmtpSessionRecord> ScriptedSmtpServer::sessions() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return std::vector<SmtpSessionRecord>(impl_->records.begin(), impl_->records.end());
}

bool ScriptedSmtpServer::WaitForEndedSessions(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->changed.wait_for(lock, timeout, [&] {
    return std::count_if(impl_->records.begin(), impl_->records.end(),
                         [](const SmtpSessionRecord& r) { return r.ended; }) >= count;
  });
}

}  // namespace herald
