#include "smtp/session.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "core/units.h"
#include "smtp/classify.h"
#include "smtp/command.h"
#include "smtp/dot_stuffer.h"
#include "smtp/reply.h"

namespace herald::smtp {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// Message data is written in blocks of this size, each with the data-block deadline, so that a
// large message on a slow link is not held to one deadline for all of it.
constexpr std::size_t kDataBlockBytes = 1 << 20;
// Transactions one Send() may use for recipients refused as "too many".
constexpr int kMaxTransactions = 16;
// The longest wait for the reply to QUIT: by then every message is accepted or not, and the reply
// changes nothing (RFC 5321 §4.1.1.10 asks the client to wait for it, not for minutes).
constexpr Duration kQuitWait = std::chrono::seconds(5);

// Helpers that build text live outside the coroutines: g++ 12 cannot compile arrays (string
// literals passed to templates, braced lists) as temporaries inside a coroutine body.

Outcome Permanent(Stage stage, Scope scope, std::string text) {
  Outcome outcome;
  outcome.disposition = Disposition::kPermanent;
  outcome.scope = scope;
  outcome.stage = stage;
  outcome.text = std::move(text);
  return outcome;
}

std::string NoStartTls(const std::string& server) {
  return fmt::format("{} does not offer STARTTLS and the account requires TLS; nothing was sent", server);
}

std::string InjectedAfterStartTls() {
  return "the server sent more after its 220 to STARTTLS (a command injection attempt, CVE-2021-38371 class); "
         "session aborted";
}

std::string NoAuthOffered(const std::string& server, bool tls) {
  return fmt::format("{} offers no authentication (AUTH){}", server,
                     tls ? "" : "; many servers offer it only after STARTTLS");
}

std::string TooLarge(std::size_t size, std::uint64_t limit) {
  return fmt::format("the message is {} bytes, larger than the server's limit of {} bytes (SIZE)", size, limit);
}

std::string NoSmtpUtf8(const std::string& server) {
  return fmt::format("an address needs SMTPUTF8 (RFC 6531) and {} does not offer it", server);
}

std::string Unusable() { return "the connection can no longer be used"; }

std::string ResetRefused(const Reply& reply) {
  return fmt::format("RSET answered {} ({}), not 250: the server's transaction state is unknown; session ended",
                     reply.code, reply.Text());
}

// The text of a reply that did not come in time: the wait as configured for the state, not what
// was left of it when the last bytes came.
std::string NoReplyWithin(SessionState state, const std::string& server, Duration timeout) {
  if (state == SessionState::kGreeting) {
    return fmt::format("timed out: no greeting from {} within {}", server, FormatDuration(timeout));
  }
  return fmt::format("timed out: no reply to {}{} from {} within {}", state == SessionState::kDataEnd ? "the " : "",
                     SessionStateName(state), server, FormatDuration(timeout));
}

std::string LostAfterData() {
  return "the connection was lost after the message was sent and before the server answered; it may or may "
         "not have been accepted";
}

std::string DataSummary(std::size_t bytes) { return fmt::format("C: <message, {} bytes>", bytes); }

std::string WithPrefix(std::string_view prefix, std::string_view line) {
  std::string out(prefix);
  out += line;
  return out;
}

// Rounded up, so that a read that times out ends at or after `deadline`.
Duration Remaining(SteadyTime deadline) {
  auto left = std::chrono::ceil<Duration>(deadline - std::chrono::steady_clock::now());
  return std::max(left, Duration(1));
}

}  // namespace

Timeouts Timeouts::FromAccount(Duration account_timeout) {
  Timeouts timeouts;
  timeouts.connect = account_timeout;
  timeouts.greeting = std::min(timeouts.greeting, account_timeout);
  timeouts.command = std::min(timeouts.command, account_timeout);
  timeouts.data_init = std::min(timeouts.data_init, account_timeout);
  timeouts.data_block = std::min(timeouts.data_block, std::max(account_timeout, Duration(std::chrono::seconds(30))));
  return timeouts;
}

std::string_view SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnecting: return "connecting";
    case SessionState::kGreeting: return "greeting";
    case SessionState::kHello: return "EHLO";
    case SessionState::kStartTls: return "STARTTLS";
    case SessionState::kAuth: return "AUTH";
    case SessionState::kReady: return "ready";
    case SessionState::kMailFrom: return "MAIL FROM";
    case SessionState::kRcptTo: return "RCPT TO";
    case SessionState::kData: return "DATA";
    case SessionState::kDataEnd: return "end of data";
    case SessionState::kReset: return "RSET";
    case SessionState::kQuit: return "QUIT";
    case SessionState::kClosed: return "closed";
  }
  return "?";
}

class Session::Impl {
 public:
  explicit Impl(SessionOptions options) : options_(std::move(options)), read_buffer_(16 * 1024) {}

  SessionOptions options_;
  std::unique_ptr<Stream> stream_;
  ReplyParser parser_;
  Capabilities capabilities_;
  SessionState state_ = SessionState::kConnecting;
  bool transaction_open_ = false;  // a MAIL FROM was accepted and not completed: RSET first
  std::uint64_t messages_sent_ = 0;
  std::vector<char> read_buffer_;

  const std::string& server() const { return options_.host; }
  bool usable() const { return state_ != SessionState::kClosed && stream_ != nullptr && stream_->is_open(); }

  void Log(std::string_view prefix, std::string_view line) {
    if (options_.transcript) options_.transcript(WithPrefix(prefix, line));
  }

  void LogCommands(std::string_view commands) {
    if (!options_.transcript) return;
    while (!commands.empty()) {
      std::size_t end = commands.find("\r\n");
      std::string_view line = commands.substr(0, end);
      Log("C: ", RedactForLog(line));
      commands.remove_prefix(end == std::string_view::npos ? commands.size() : end + 2);
    }
  }

  void LogReply(const Reply& reply) {
    if (!options_.transcript) return;
    for (std::size_t i = 0; i < reply.lines.size(); ++i) {
      bool last = i + 1 == reply.lines.size();
      std::string line = fmt::format("{}{}", reply.code, last ? ' ' : '-');
      if (i == 0 && !reply.enhanced_status.empty()) line += reply.enhanced_status + " ";
      line += reply.lines[i];
      Log("S: ", line);
    }
  }

  // Marks the session unusable and closes the connection.
  void Break() {
    state_ = SessionState::kClosed;
    if (stream_) stream_->Close();
  }

  // A failure without a usable reply at `stage`: the session is over.
  Outcome Broken(Stage stage, const Status& why) {
    Break();
    return TemporaryFailure(stage, why.message());
  }

  asio::awaitable<Status> WriteText(std::string text, Duration timeout, bool log = true) {
    if (log) LogCommands(text);
    std::string_view piece(text);
    co_return co_await stream_->Write(std::span<const std::string_view>(&piece, 1), timeout);
  }

  // The next reply, read with one deadline for all of it (a server trickling bytes does not
  // stretch it). Errors: timeout (naming the state and `timeout`), connection closed, malformed
  // reply.
  asio::awaitable<Result<Reply>> ReadReply(Duration timeout) {
    SteadyTime deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      Result<std::optional<Reply>> next = parser_.Next();
      if (!next.ok()) co_return next.status();
      if (next->has_value()) {
        LogReply(**next);
        co_return std::move(**next);
      }
      Result<std::size_t> got =
          co_await stream_->ReadSome(std::span<char>(read_buffer_.data(), read_buffer_.size()), Remaining(deadline));
      if (!got.ok()) {
        if (std::chrono::steady_clock::now() < deadline) co_return got.status();
        co_return Status(StatusCode::kUnavailable, NoReplyWithin(state_, server(), timeout));
      }
      parser_.Feed(std::string_view(read_buffer_.data(), *got));
    }
  }

  // Sends `command` and reads its reply, both within `timeout`.
  asio::awaitable<Result<Reply>> Exchange(std::string command, Duration timeout) {
    Status written = co_await WriteText(std::move(command), timeout);
    if (!written.ok()) co_return written;
    co_return co_await ReadReply(timeout);
  }

  asio::awaitable<std::optional<Outcome>> Hello() {
    state_ = SessionState::kHello;
    Result<std::string> ehlo = EhloCommand(options_.helo_name);
    if (!ehlo.ok()) co_return Permanent(Stage::kHello, Scope::kAccount, ehlo.status().message());
    Result<Reply> reply = co_await Exchange(std::move(*ehlo), options_.timeouts.command);
    if (!reply.ok()) co_return Broken(Stage::kHello, reply.status());
    Classification hello = Classify(Stage::kHello, *reply);
    if (hello.accepted) {
      capabilities_ = ParseCapabilities(*reply);
      co_return std::nullopt;
    }
    // RFC 5321 §3.2: a server that does not know EHLO answers 500/502 (or 504); fall back to HELO
    // and use no extensions.
    if (reply->code == 500 || reply->code == 502 || reply->code == 504) {
      Result<std::string> helo = HeloCommand(options_.helo_name);
      if (!helo.ok()) co_return Permanent(Stage::kHello, Scope::kAccount, helo.status().message());
      reply = co_await Exchange(std::move(*helo), options_.timeouts.command);
      if (!reply.ok()) co_return Broken(Stage::kHello, reply.status());
      hello = Classify(Stage::kHello, *reply);
      if (hello.accepted) {
        capabilities_ = Capabilities{};
        co_return std::nullopt;
      }
    }
    Break();
    co_return hello.outcome;
  }

  asio::awaitable<std::optional<Outcome>> StartTls() {
    state_ = SessionState::kStartTls;
    Result<Reply> reply = co_await Exchange(std::string(kStartTlsCommand), options_.timeouts.command);
    if (!reply.ok()) co_return Broken(Stage::kStartTls, reply.status());
    Classification started = Classify(Stage::kStartTls, *reply);
    if (!started.accepted) {
      Break();
      co_return started.outcome;
    }
    // RFC 3207 §4.2: nothing the server sent before the handshake may be used afterwards. Bytes
    // already waiting after the 220 were injected before TLS: refuse the session.
    if (parser_.HasPendingInput()) {
      Break();
      co_return TemporaryFailure(Stage::kStartTls, InjectedAfterStartTls());
    }
    parser_.Reset();
    Status handshake = co_await stream_->StartTls(TlsSettings(), options_.timeouts.command);
    if (!handshake.ok()) co_return Broken(Stage::kStartTls, handshake);
    capabilities_ = Capabilities{};
    co_return co_await Hello();
  }

  TlsOptions TlsSettings() const {
    TlsOptions tls = options_.tls;
    if (tls.server_name.empty()) tls.server_name = options_.host;
    return tls;
  }

  asio::awaitable<std::optional<Outcome>> Authenticate() {
    state_ = SessionState::kAuth;
    if (capabilities_.auth_mechanisms.empty()) {
      Break();
      co_return Permanent(Stage::kAuth, Scope::kAccount, NoAuthOffered(server(), stream_->tls()));
    }
    AuthPolicy policy{options_.mechanisms, stream_->tls(), options_.allow_plaintext_auth};
    Result<Mechanism> mechanism = ChooseMechanism(capabilities_.auth_mechanisms, policy);
    if (!mechanism.ok()) {
      Break();
      co_return Permanent(Stage::kAuth, Scope::kAccount, mechanism.status().message());
    }
    Result<SaslClient> client = SaslClient::Create(*mechanism, options_.username, options_.secret);
    if (!client.ok()) {
      Break();
      co_return Permanent(Stage::kAuth, Scope::kAccount, client.status().message());
    }
    Result<std::string> line = client->InitialCommand();
    if (!line.ok()) {
      Break();
      co_return Permanent(Stage::kAuth, Scope::kAccount, line.status().message());
    }
    Result<Reply> reply = co_await Exchange(std::move(*line), options_.timeouts.command);
    while (reply.ok() && reply->code == 334) {
      std::string_view challenge = reply->lines.empty() ? std::string_view() : std::string_view(reply->lines[0]);
      Result<std::string> answer = client->Answer(challenge);
      if (!answer.ok()) {
        // RFC 4954 §4: "*" cancels the exchange.
        Status cancelled = co_await WriteText(std::string(kAuthCancelLine), options_.timeouts.command);
        (void)cancelled;  // the session ends either way
        Break();
        co_return Permanent(Stage::kAuth, Scope::kAccount, answer.status().message());
      }
      Log("C: ", "****");
      Status written = co_await WriteText(std::move(*answer), options_.timeouts.command, /*log=*/false);
      if (!written.ok()) co_return Broken(Stage::kAuth, written);
      reply = co_await ReadReply(options_.timeouts.command);
    }
    if (!reply.ok()) co_return Broken(Stage::kAuth, reply.status());
    Classification failure = Classify(Stage::kAuth, *reply);
    if (failure.accepted) co_return std::nullopt;
    if (!client->server_error().empty()) failure.outcome.text += " (" + client->server_error() + ")";
    Break();
    co_return failure.outcome;
  }

  asio::awaitable<std::optional<Outcome>> OpenSteps() {
    state_ = SessionState::kConnecting;
    ConnectOptions connect{options_.host, options_.port, options_.local_address, options_.timeouts.connect};
    Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(std::move(connect));
    if (!stream.ok()) co_return TemporaryFailure(Stage::kConnect, stream.status().message());
    stream_ = std::move(*stream);
    if (options_.security == Security::kTls) {
      Status handshake = co_await stream_->StartTls(TlsSettings(), options_.timeouts.connect);
      if (!handshake.ok()) co_return Broken(Stage::kConnect, handshake);
    }

    state_ = SessionState::kGreeting;
    Result<Reply> greeting = co_await ReadReply(options_.timeouts.greeting);
    if (!greeting.ok()) co_return Broken(Stage::kGreeting, greeting.status());
    Classification greeted = Classify(Stage::kGreeting, *greeting);
    if (!greeted.accepted) {
      Break();
      co_return greeted.outcome;
    }

    if (std::optional<Outcome> failed = co_await Hello()) co_return failed;
    bool want_tls = options_.security == Security::kStartTls || options_.opportunistic_tls;
    if (want_tls && !stream_->tls()) {
      if (capabilities_.starttls) {
        if (std::optional<Outcome> failed = co_await StartTls()) co_return failed;
      } else if (options_.security == Security::kStartTls) {
        Break();
        co_return Permanent(Stage::kStartTls, Scope::kAccount, NoStartTls(server()));
      }
    }
    if (!options_.username.empty()) {
      if (std::optional<Outcome> failed = co_await Authenticate()) co_return failed;
    }
    state_ = SessionState::kReady;
    co_return std::nullopt;
  }

  // The reply to RSET. RFC 5321 §4.1.1.5: its only success reply is 250; after anything else the
  // server's transaction state is unknown and the session ends. Returns the failure for the
  // recipients of the next transaction, or nothing when the server is ready for it.
  asio::awaitable<std::optional<Outcome>> ResetReply() {
    state_ = SessionState::kReset;
    Result<Reply> reset = co_await ReadReply(options_.timeouts.command);
    if (!reset.ok()) co_return Broken(Stage::kMailFrom, reset.status());
    if (reset->code == 250) {
      transaction_open_ = false;
      co_return std::nullopt;
    }
    Classification refused = Classify(Stage::kMailFrom, *reset);
    Outcome failure =
        refused.closing_connection ? refused.outcome : TemporaryFailure(Stage::kMailFrom, ResetRefused(*reset));
    Break();
    co_return failure;
  }

  // One transaction for the recipients at `indices` of `envelope`; fills their outcomes and
  // returns the indices refused as "too many recipients", to be tried in another transaction.
  asio::awaitable<std::vector<std::size_t>> Transaction(const Envelope& envelope, std::vector<std::size_t> indices,
                                                        const WireData& wire, std::vector<Outcome>& outcomes) {
    std::vector<std::size_t> retry;
    MailParameters parameters;
    if (capabilities_.size) parameters.size = wire.message_size();
    parameters.smtputf8 = envelope.smtputf8;
    parameters.body_8bitmime = envelope.smtputf8 && capabilities_.eight_bit_mime;
    Result<std::string> mail = MailFromCommand(envelope.mail_from, parameters);
    if (!mail.ok()) {
      for (std::size_t i : indices) outcomes[i] = Permanent(Stage::kPrepare, Scope::kMessage, mail.status().message());
      co_return retry;
    }
    bool pipelined = capabilities_.pipelining;
    std::vector<std::size_t> sent;  // recipients whose RCPT TO goes out
    std::string rcpts;
    for (std::size_t i : indices) {
      Result<std::string> rcpt = RcptToCommand(envelope.recipients[i], envelope.smtputf8);
      if (!rcpt.ok()) {
        outcomes[i] = Permanent(Stage::kPrepare, Scope::kRecipient, rcpt.status().message());
        continue;
      }
      sent.push_back(i);
      if (pipelined) rcpts += *rcpt;  // otherwise sent one by one below
    }
    if (sent.empty()) co_return retry;

    // --- RSET after an aborted transaction: alone without PIPELINING (RFC 2920 §3.1: the client
    // waits for each reply), else in the same write as the rest.
    bool reset_pipelined = transaction_open_ && pipelined;
    if (transaction_open_ && !pipelined) {
      state_ = SessionState::kReset;
      Status written_reset = co_await WriteText(std::string(kRsetCommand), options_.timeouts.command);
      std::optional<Outcome> failure;
      if (written_reset.ok()) {
        failure = co_await ResetReply();
      } else {
        failure = Broken(Stage::kMailFrom, written_reset);
      }
      if (failure) {
        for (std::size_t i : sent) outcomes[i] = *failure;
        co_return retry;
      }
    }

    // --- MAIL FROM (with PIPELINING everything up to DATA)
    std::string commands;
    if (reset_pipelined) commands += kRsetCommand;
    commands += *mail;
    if (pipelined) {
      commands += rcpts;
      commands += kDataCommand;
    }
    state_ = SessionState::kMailFrom;
    Status written = co_await WriteText(std::move(commands), options_.timeouts.command);
    if (!written.ok()) {
      Outcome failure = Broken(Stage::kMailFrom, written);
      for (std::size_t i : sent) outcomes[i] = failure;
      co_return retry;
    }
    if (reset_pipelined) {
      if (std::optional<Outcome> failure = co_await ResetReply()) {
        for (std::size_t i : sent) outcomes[i] = *failure;
        co_return retry;
      }
    }
    state_ = SessionState::kMailFrom;
    Result<Reply> mail_reply = co_await ReadReply(options_.timeouts.command);
    if (!mail_reply.ok()) {
      Outcome failure = Broken(Stage::kMailFrom, mail_reply.status());
      for (std::size_t i : sent) outcomes[i] = failure;
      co_return retry;
    }
    Classification mail_class = Classify(Stage::kMailFrom, *mail_reply);
    bool mail_ok = mail_class.accepted;
    if (mail_ok) transaction_open_ = true;
    if (mail_class.closing_connection || mail_class.protocol_error) Break();

    // --- RCPT TO
    state_ = SessionState::kRcptTo;
    std::vector<std::size_t> accepted;
    for (std::size_t i : sent) {
      if (!pipelined) {
        if (!mail_ok || !usable()) {
          outcomes[i] = mail_ok ? TemporaryFailure(Stage::kRcptTo, Unusable()) : mail_class.outcome;
          continue;
        }
        Result<std::string> rcpt = RcptToCommand(envelope.recipients[i], envelope.smtputf8);
        Status sent_rcpt = co_await WriteText(std::move(*rcpt), options_.timeouts.command);
        if (!sent_rcpt.ok()) {
          outcomes[i] = Broken(Stage::kRcptTo, sent_rcpt);
          continue;
        }
      } else if (!usable()) {
        outcomes[i] = mail_ok ? TemporaryFailure(Stage::kRcptTo, Unusable()) : mail_class.outcome;
        continue;
      }
      Result<Reply> reply = co_await ReadReply(options_.timeouts.command);
      if (!reply.ok()) {
        outcomes[i] = Broken(Stage::kRcptTo, reply.status());
        continue;
      }
      if (!mail_ok) {
        outcomes[i] = mail_class.outcome;  // a pipelined RCPT after a refused MAIL FROM
        continue;
      }
      Classification rcpt_class = Classify(Stage::kRcptTo, *reply);
      if (rcpt_class.closing_connection || rcpt_class.protocol_error) Break();
      if (rcpt_class.accepted) {
        accepted.push_back(i);
      } else if (rcpt_class.too_many_recipients) {
        retry.push_back(i);
        outcomes[i] = rcpt_class.outcome;
      } else {
        outcomes[i] = rcpt_class.outcome;
      }
    }

    // --- DATA
    state_ = SessionState::kData;
    if (!pipelined && (accepted.empty() || !usable())) {
      for (std::size_t i : accepted) outcomes[i] = TemporaryFailure(Stage::kData, Unusable());
      co_return retry;
    }
    if (!pipelined) {
      Status sent_data = co_await WriteText(std::string(kDataCommand), options_.timeouts.command);
      if (!sent_data.ok()) {
        Outcome failure = Broken(Stage::kData, sent_data);
        for (std::size_t i : accepted) outcomes[i] = failure;
        co_return retry;
      }
    } else if (!usable()) {
      for (std::size_t i : accepted) outcomes[i] = TemporaryFailure(Stage::kData, Unusable());
      co_return retry;
    }
    Result<Reply> data_reply = co_await ReadReply(options_.timeouts.data_init);
    if (!data_reply.ok()) {
      Outcome failure = Broken(Stage::kData, data_reply.status());
      for (std::size_t i : accepted) outcomes[i] = failure;
      co_return retry;
    }
    // Only 354 lets the message go out (RFC 5321 §4.1.1.4); any other reply fails the transaction
    // by its code, and a 2xx or another 3xx is a protocol error (classify.h): nothing was sent.
    Classification data_class = Classify(Stage::kData, *data_reply);
    if (!data_class.accepted) {
      if (data_class.closing_connection || data_class.protocol_error) Break();
      for (std::size_t i : accepted) outcomes[i] = data_class.outcome;
      co_return retry;
    }
    if (accepted.empty()) {
      // RFC 2920 §3.1: DATA was pipelined and accepted although every recipient was refused; an
      // empty message ends it, and the server refuses that or it carries no recipient anyway.
      Status ended = co_await WriteText(std::string(".\r\n"), options_.timeouts.data_block);
      if (!ended.ok()) co_return retry;
      Result<Reply> empty_message = co_await ReadReply(options_.timeouts.data_end);
      if (!empty_message.ok()) Break();
      transaction_open_ = false;
      co_return retry;
    }

    // --- the message, then the end of data
    Log("", DataSummary(wire.size()));
    std::vector<std::string_view> segments = wire.Segments();
    std::size_t start = 0;
    while (start < segments.size()) {
      std::size_t end = start;
      std::size_t block = 0;
      while (end < segments.size() && (block == 0 || block + segments[end].size() <= kDataBlockBytes)) {
        block += segments[end].size();
        ++end;
      }
      Status sent_block = co_await stream_->Write(
          std::span<const std::string_view>(segments.data() + start, end - start), options_.timeouts.data_block);
      if (!sent_block.ok()) {
        Outcome failure = Broken(Stage::kData, sent_block);
        for (std::size_t i : accepted) outcomes[i] = failure;
        co_return retry;
      }
      start = end;
    }
    state_ = SessionState::kDataEnd;
    Result<Reply> final_reply = co_await ReadReply(options_.timeouts.data_end);
    if (!final_reply.ok()) {
      Break();
      Outcome failure = TemporaryFailure(Stage::kDataEnd, LostAfterData());
      failure.text += ": " + final_reply.status().message();
      for (std::size_t i : accepted) outcomes[i] = failure;
      co_return retry;
    }
    transaction_open_ = false;
    Classification end_class = Classify(Stage::kDataEnd, *final_reply);
    if (end_class.closing_connection || end_class.protocol_error) Break();
    for (std::size_t i : accepted) outcomes[i] = end_class.outcome;
    if (end_class.accepted) ++messages_sent_;
    state_ = usable() ? SessionState::kReady : SessionState::kClosed;
    co_return retry;
  }
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

asio::awaitable<OpenResult> Session::Open(SessionOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  std::optional<Outcome> failure = co_await impl->OpenSteps();
  if (failure) {
    impl->Break();
    co_return OpenResult{nullptr, std::move(*failure)};
  }
  co_return OpenResult{std::unique_ptr<Session>(new Session(std::move(impl))), {}};
}

asio::awaitable<std::vector<Outcome>> Session::Send(Envelope envelope, std::shared_ptr<const MessageData> message) {
  Impl& s = *impl_;
  std::vector<Outcome> outcomes(envelope.recipients.size());
  if (!s.usable() || s.state_ != SessionState::kReady) {
    for (Outcome& outcome : outcomes) outcome = TemporaryFailure(Stage::kMailFrom, Unusable());
    co_return outcomes;
  }
  if (envelope.smtputf8 && !s.capabilities_.smtputf8) {
    for (Outcome& outcome : outcomes) outcome = Permanent(Stage::kPrepare, Scope::kMessage, NoSmtpUtf8(s.server()));
    co_return outcomes;
  }
  WireData wire = DotStuff(*message);
  if (s.capabilities_.size && s.capabilities_.max_size > 0 && wire.message_size() > s.capabilities_.max_size) {
    for (Outcome& outcome : outcomes) {
      outcome = Permanent(Stage::kPrepare, Scope::kMessage, TooLarge(wire.message_size(), s.capabilities_.max_size));
    }
    co_return outcomes;
  }
  std::vector<std::size_t> pending(envelope.recipients.size());
  for (std::size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (int round = 0; round < kMaxTransactions && !pending.empty() && s.usable(); ++round) {
    std::size_t before = pending.size();
    pending = co_await s.Transaction(envelope, std::move(pending), wire, outcomes);
    if (pending.size() == before) break;  // no progress: leave them to the engine's retry
  }
  // A transaction the server refused (MAIL FROM, every RCPT TO, or DATA answered 5xx/4xx) ends
  // before the end of data, in a state other than kReady; the connection itself is fine and
  // carries the next message (after RSET, as transaction_open_ says). Only Break() ends it.
  if (s.usable()) s.state_ = SessionState::kReady;
  co_return outcomes;
}

asio::awaitable<void> Session::Quit() {
  Impl& s = *impl_;
  if (s.usable()) {
    s.state_ = SessionState::kQuit;
    Result<Reply> reply =
        co_await s.Exchange(std::string(kQuitCommand), std::min(s.options_.timeouts.command, kQuitWait));
    (void)reply;  // the connection closes whatever the server answers
  }
  s.Break();
}

bool Session::usable() const { return impl_->usable() && impl_->state_ == SessionState::kReady; }
SessionState Session::state() const { return impl_->state_; }
const Capabilities& Session::capabilities() const { return impl_->capabilities_; }
const Stream& Session::stream() const { return *impl_->stream_; }
std::uint64_t Session::messages_sent() const { return impl_->messages_sent_; }

}  // namespace herald::smtp
