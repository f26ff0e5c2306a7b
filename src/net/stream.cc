#include "net/stream.h"

#include <array>
#include <chrono>
#include <cstring>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include "core/text.h"
#include "core/units.h"
#include "net/internal/tls.h"

// Deadlines: each operation records its deadline with a steady_timer owned by the stream (one for
// reads, one for writes; see Impl::Deadline). When the deadline passes first, the timer's handler
// closes the stream, so the operation completes with operation_aborted and reports "timed out".
// The handler holds only a weak_ptr to the stream's state. Every coroutine holds a shared_ptr to
// that state, so destroying the Stream mid-operation only closes the socket; nothing refers to a
// coroutine frame or the Stream object. Parameters are taken by value (STYLE.md, "Async I/O").
//
// g++ 12 cannot keep arrays (string literals passed to templates, braced lists) as temporaries in
// a coroutine frame, so every message is built by an ordinary function below.

namespace herald {

using asio::ip::tcp;

namespace {

constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);

// writev takes at most this many pieces per call (Linux IOV_MAX is 1024; asio's own limit is 64).
constexpr std::size_t kMaxIov = 64;
// TLS: small pieces are packed into one buffer of a full record's plaintext; pieces of at least
// kDirectWrite bytes go to OpenSSL as they are.
constexpr std::size_t kTlsRecord = 16 * 1024;
constexpr std::size_t kDirectWrite = 8 * 1024;

enum class Op { kResolve, kConnect, kHandshake, kRead, kWrite };

using SteadyTime = std::chrono::steady_clock::time_point;

// An error's text as a clause: "connection refused" rather than "Connection refused".
std::string ErrorText(const std::error_code& error) {
  std::string text = error.message();
  if (text.size() > 1 && text[0] >= 'A' && text[0] <= 'Z' && text[1] >= 'a' && text[1] <= 'z') text[0] += 'a' - 'A';
  return text;
}

}  // namespace

class Stream::Impl : public std::enable_shared_from_this<Stream::Impl> {
 public:
  // One per direction. The timer is lazy: an operation only records when it must end, and the
  // timer, once waiting, is moved only when an operation needs it earlier. When it fires it
  // closes the stream if the operation in progress is overdue, waits again if that operation
  // ends later, and stops if none is in progress. In the steady state (the same timeout for
  // every read) no operation touches the timer at all.
  struct Deadline {
    explicit Deadline(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
    SteadyTime expiry = SteadyTime::max();  // of the operation in progress; max(): none
    bool waiting = false;                    // an async_wait is pending
    bool expired = false;
    Op op = Op::kRead;
    Duration timeout{0};
  };

  explicit Impl(const asio::any_io_executor& executor)
      : socket(executor), read_deadline(executor), write_deadline(executor) {}

  // Starts the deadline of `op`: if it passes first, the stream closes, which ends the operation.
  void Arm(Deadline& deadline, Op op, Duration timeout) {
    deadline.expired = false;
    deadline.op = op;
    deadline.timeout = timeout;
    deadline.expiry = std::chrono::steady_clock::now() + timeout;
    if (deadline.waiting && deadline.timer.expiry() <= deadline.expiry) return;  // it will look again
    deadline.timer.expires_at(deadline.expiry);  // a pending wait ends with operation_aborted
    Wait(deadline);
  }

  // Ends the deadline of an operation that completed; returns whether it had expired.
  static bool Disarm(Deadline& deadline) {
    deadline.expiry = SteadyTime::max();
    return deadline.expired;
  }

  // The handler holds only a weak_ptr: once the stream's state is gone (the timer with it) it
  // does nothing.
  void Wait(Deadline& deadline) {
    deadline.waiting = true;
    deadline.timer.async_wait([weak = weak_from_this(), target = &deadline](const std::error_code& error) {
      if (error) return;  // moved by Arm() (a newer wait is pending) or cancelled by CloseWith()
      std::shared_ptr<Impl> self = weak.lock();
      if (self == nullptr) return;
      Deadline& d = *target;
      d.waiting = false;
      if (self->closed || d.expiry == SteadyTime::max()) return;
      if (std::chrono::steady_clock::now() >= d.expiry) {
        d.expired = true;
        self->CloseWith(self->Timeout(d.op, d.timeout));
        return;
      }
      d.timer.expires_at(d.expiry);
      self->Wait(d);
    });
  }

  // Closes the socket and remembers why, for the operations that fail later.
  void CloseWith(const Status& reason) {
    if (closed) return;
    closed = true;
    closed_reason = reason;
    read_deadline.timer.cancel();
    write_deadline.timer.cancel();
    if (resolver) resolver->cancel();
    std::error_code ignored;
    socket.close(ignored);
  }

  std::string Describe(Op op) const {
    switch (op) {
      case Op::kResolve: return fmt::format("resolving {}", host);
      case Op::kConnect: return fmt::format("connecting to {}", connecting_to);
      case Op::kHandshake: return fmt::format("in the TLS handshake with {}", remote);
      case Op::kRead: return fmt::format("reading from {}", remote);
      case Op::kWrite: return fmt::format("writing to {}", remote);
    }
    return "working";
  }

  Status Timeout(Op op, Duration timeout) const {
    return Status(StatusCode::kUnavailable,
                  fmt::format("timed out after {} while {}", FormatDuration(timeout), Describe(op)));
  }

  // The Status for an operation that ended with `error`; closes the stream.
  Status Fail(Op op, const std::error_code& error, bool expired, Duration timeout) {
    Status status;
    if (expired) {
      status = Timeout(op, timeout);
    } else if (closed) {
      status = Status(StatusCode::kUnavailable, fmt::format("{} failed: the connection was closed ({})",
                                                            Describe(op), closed_reason.message()));
    } else if (error == asio::error::operation_aborted) {
      status = Status(StatusCode::kCancelled, fmt::format("cancelled while {}", Describe(op)));
    } else if (op == Op::kHandshake && tls) {
      status = Status(StatusCode::kUnavailable,
                      net_internal::HandshakeFailureText(tls->native_handle(), error, server_name, remote));
    } else if (error == asio::error::eof || error == asio::ssl::error::stream_truncated) {
      status = Status(StatusCode::kUnavailable, fmt::format("connection closed by the server while {}", Describe(op)));
    } else {
      status = Status(StatusCode::kUnavailable, fmt::format("{} failed: {}", Describe(op), ErrorText(error)));
    }
    CloseWith(status);
    return status;
  }

  Status Closed(Op op) const {
    return Status(StatusCode::kUnavailable,
                  fmt::format("cannot start {}: the connection is closed ({})", Describe(op), closed_reason.message()));
  }

  tcp::socket socket;
  std::optional<tcp::resolver> resolver;  // only while Connect() resolves
  std::shared_ptr<asio::ssl::context> tls_context;
  std::optional<asio::ssl::stream<tcp::socket&>> tls;  // after StartTls(); destroyed before `socket`
  std::optional<PeerCertificate> certificate;
  Deadline read_deadline;   // ReadSome(), and Connect() and StartTls(), which run alone
  Deadline write_deadline;  // Write()
  bool closed = false;
  bool tls_ready = false;  // the handshake succeeded
  Status closed_reason;
  std::string host;           // as given to Connect()
  std::string connecting_to;  // "host:port", for messages
  std::string remote;         // "192.0.2.1:587"
  std::string local;
  std::string server_name;    // the name the TLS certificate is checked against
  std::array<asio::const_buffer, kMaxIov> iov;
  std::unique_ptr<char[]> tls_out;  // kTlsRecord bytes once TLS is on
};

namespace {

std::string EndpointText(const tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

std::string HostPortText(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<asio::ip::address> ParseIp(const std::string& text) {
  std::error_code error;
  asio::ip::address address = asio::ip::make_address(text, error);
  if (error) return std::nullopt;
  return address;
}

Status BadLocalAddress(const std::string& text) {
  return InvalidArgument(fmt::format("the local address {} is not an IP address", Printable(text)));
}

Status NoHost() { return InvalidArgument("no host to connect to"); }

Status ResolveFailure(const Stream::Impl& impl, const std::error_code& error) {
  std::string reason;
  if (error == asio::error::host_not_found) {
    reason = "name not found";
  } else if (error == asio::error::host_not_found_try_again) {
    reason = "temporary failure in name resolution";
  } else if (error == asio::error::no_data) {
    reason = "the name has no address (no A or AAAA record)";
  } else {
    reason = error.message();
  }
  return Status(StatusCode::kUnavailable, fmt::format("cannot resolve {}: {}", impl.host, reason));
}

Status NoAddress(const Stream::Impl& impl) {
  return Status(StatusCode::kUnavailable, fmt::format("cannot resolve {}: the name has no address", impl.host));
}

void NoteFailure(std::string& failures, const tcp::endpoint& endpoint, std::string_view what,
                 const std::error_code& error) {
  if (!failures.empty()) failures += "; ";
  failures += fmt::format("{}: {}{}", EndpointText(endpoint), what, ErrorText(error));
}

void NoteNoAnswer(std::string& failures, const tcp::endpoint& endpoint) {
  if (!failures.empty()) failures += "; ";
  failures += fmt::format("{}: no answer", EndpointText(endpoint));
}

void NoteFamilyMismatch(std::string& failures, const tcp::endpoint& endpoint, const std::string& local) {
  if (!failures.empty()) failures += "; ";
  failures += fmt::format("{}: the local address {} is of the other address family", EndpointText(endpoint), local);
}

Status ConnectTimeout(const Stream::Impl& impl, Duration timeout, const std::string& failures) {
  std::string text = fmt::format("timed out after {} while connecting to {}", FormatDuration(timeout),
                                 impl.connecting_to);
  if (!failures.empty()) text += fmt::format(" ({})", failures);
  return Status(StatusCode::kUnavailable, std::move(text));
}

Status ConnectFailure(const Stream::Impl& impl, const std::string& failures) {
  return Status(StatusCode::kUnavailable, fmt::format("cannot connect to {}: {}", impl.connecting_to, failures));
}

Status AlreadyTls() { return Status(StatusCode::kFailedPrecondition, "TLS is already on for this connection"); }

std::string_view BindWhat() { return "cannot bind to the local address: "; }
std::string_view NoWhat() { return ""; }

// Fills `iov` from pieces[index] at `offset` on; returns how many entries were filled.
std::size_t FillIov(std::span<const std::string_view> pieces, std::size_t index, std::size_t offset,
                    std::array<asio::const_buffer, kMaxIov>& iov) {
  std::size_t count = 0;
  for (; index < pieces.size() && count < iov.size(); ++index, offset = 0) {
    const std::string_view piece = pieces[index];
    if (piece.size() > offset) iov[count++] = asio::const_buffer(piece.data() + offset, piece.size() - offset);
  }
  return count;
}

// Moves (index, offset) past `written` bytes.
void Advance(std::span<const std::string_view> pieces, std::size_t& index, std::size_t& offset, std::size_t written) {
  while (index < pieces.size()) {
    std::size_t left = pieces[index].size() - offset;
    if (written < left) {
      offset += written;
      return;
    }
    written -= left;
    ++index;
    offset = 0;
  }
}

asio::awaitable<Status> ConnectImpl(std::shared_ptr<Stream::Impl> self, ConnectOptions options) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + options.timeout;
  self->host = options.host;
  self->connecting_to = HostPortText(options.host, options.port);
  if (options.host.empty()) co_return NoHost();
  std::optional<asio::ip::address> local;
  if (!options.local_address.empty()) {
    local = ParseIp(options.local_address);
    if (!local) co_return BadLocalAddress(options.local_address);
  }

  std::vector<tcp::endpoint> endpoints;
  if (std::optional<asio::ip::address> literal = ParseIp(options.host)) {
    endpoints.emplace_back(*literal, options.port);
  } else {
    self->resolver.emplace(self->socket.get_executor());
    self->Arm(self->read_deadline, Op::kResolve, options.timeout);
    auto [error, results] = co_await self->resolver->async_resolve(
        options.host, std::to_string(options.port), tcp::resolver::numeric_service, kAsTuple);
    bool expired = Stream::Impl::Disarm(self->read_deadline);
    self->resolver.reset();
    if (expired || (error && self->closed)) co_return self->Fail(Op::kResolve, error, expired, options.timeout);
    if (error) co_return ResolveFailure(*self, error);
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    if (endpoints.empty()) co_return NoAddress(*self);
  }

  std::string failures;
  for (const tcp::endpoint& endpoint : endpoints) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) co_return ConnectTimeout(*self, options.timeout, failures);
    if (local && local->is_v4() != endpoint.address().is_v4()) {
      NoteFamilyMismatch(failures, endpoint, options.local_address);
      continue;
    }
    std::error_code error;
    self->socket.open(endpoint.protocol(), error);
    if (error) {
      NoteFailure(failures, endpoint, NoWhat(), error);
      continue;
    }
    if (local) {
      self->socket.bind(tcp::endpoint(*local, 0), error);
      if (error) {
        NoteFailure(failures, endpoint, BindWhat(), error);
        self->socket.close(error);
        continue;
      }
    }
    self->Arm(self->read_deadline, Op::kConnect, std::chrono::duration_cast<Duration>(deadline - now));
    auto [connect_error] = co_await self->socket.async_connect(endpoint, kAsTuple);
    bool expired = Stream::Impl::Disarm(self->read_deadline);
    if (!connect_error) break;
    if (expired) {
      NoteNoAnswer(failures, endpoint);
      co_return ConnectTimeout(*self, options.timeout, failures);
    }
    if (self->closed || connect_error == asio::error::operation_aborted) {
      co_return self->Fail(Op::kConnect, connect_error, false, options.timeout);
    }
    NoteFailure(failures, endpoint, NoWhat(), connect_error);
    self->socket.close(error);
  }
  if (!self->socket.is_open()) co_return ConnectFailure(*self, failures);

  std::error_code error;
  self->socket.set_option(tcp::no_delay(true), error);  // commands and replies are small
  self->socket.non_blocking(true, error);               // for the direct writes in WriteImpl
  self->remote = EndpointText(self->socket.remote_endpoint(error));
  self->local = EndpointText(self->socket.local_endpoint(error));
  co_return Status::Ok();
}

asio::awaitable<Status> StartTlsImpl(std::shared_ptr<Stream::Impl> self, TlsOptions options, Duration timeout) {
  if (self->closed) co_return self->Closed(Op::kHandshake);
  if (self->tls) co_return AlreadyTls();
  Result<std::shared_ptr<asio::ssl::context>> context = net_internal::ClientTlsContext(options.ca_file);
  if (!context.ok()) co_return context.status();
  self->server_name = options.server_name.empty() ? self->host : options.server_name;
  self->tls_context = *context;
  self->tls.emplace(self->socket, *self->tls_context);
  Status configured = net_internal::ConfigureClientSsl(self->tls->native_handle(), self->server_name, options.verify);
  if (!configured.ok()) {
    self->CloseWith(configured);
    co_return configured;
  }
  self->Arm(self->read_deadline, Op::kHandshake, timeout);
  auto [error] = co_await self->tls->async_handshake(asio::ssl::stream_base::client, kAsTuple);
  bool expired = Stream::Impl::Disarm(self->read_deadline);
  if (error) co_return self->Fail(Op::kHandshake, error, expired, timeout);
  self->certificate = net_internal::PeerCertificateOf(self->tls->native_handle());
  self->tls_out = std::make_unique<char[]>(kTlsRecord);
  self->tls_ready = true;
  co_return Status::Ok();
}

asio::awaitable<Result<std::size_t>> ReadSomeImpl(std::shared_ptr<Stream::Impl> self, std::span<char> buffer,
                                                  Duration timeout) {
  if (self->closed) co_return self->Closed(Op::kRead);
  self->Arm(self->read_deadline, Op::kRead, timeout);
  std::error_code error;
  std::size_t bytes = 0;
  if (self->tls) {
    std::tie(error, bytes) =
        co_await self->tls->async_read_some(asio::buffer(buffer.data(), buffer.size()), kAsTuple);
  } else {
    std::tie(error, bytes) = co_await self->socket.async_read_some(asio::buffer(buffer.data(), buffer.size()), kAsTuple);
  }
  bool expired = Stream::Impl::Disarm(self->read_deadline);
  if (!error) co_return bytes;
  co_return self->Fail(Op::kRead, error, expired, timeout);
}

// Writes what the socket takes now without waiting (it is in non-blocking mode); returns the
// error, would_block when the socket buffer is full.
std::error_code WritePlainNow(Stream::Impl& impl, std::span<const std::string_view> pieces, std::size_t& index,
                              std::size_t& offset) {
  while (true) {
    std::size_t count = FillIov(pieces, index, offset, impl.iov);
    if (count == 0) return std::error_code();
    std::error_code error;
    std::size_t written = impl.socket.write_some(std::span<const asio::const_buffer>(impl.iov.data(), count), error);
    if (error) return error;
    Advance(pieces, index, offset, written);
  }
}

asio::awaitable<std::error_code> WritePlain(std::shared_ptr<Stream::Impl> self, std::span<const std::string_view> pieces,
                                            std::size_t index, std::size_t offset) {
  while (true) {
    std::size_t count = FillIov(pieces, index, offset, self->iov);
    if (count == 0) co_return std::error_code();
    auto [error, written] = co_await self->socket.async_write_some(
        std::span<const asio::const_buffer>(self->iov.data(), count), kAsTuple);
    if (error) co_return error;
    Advance(pieces, index, offset, written);
  }
}

asio::awaitable<std::error_code> WriteTls(std::shared_ptr<Stream::Impl> self,
                                          std::span<const std::string_view> pieces) {
  char* const packed = self->tls_out.get();
  std::size_t used = 0;
  for (std::size_t index = 0; index <= pieces.size(); ++index) {
    const bool last = index == pieces.size();
    const std::string_view piece = last ? std::string_view() : pieces[index];
    const bool direct = piece.size() >= kDirectWrite;
    if (used > 0 && (last || direct || used + piece.size() > kTlsRecord)) {
      auto [error, written] = co_await asio::async_write(*self->tls, asio::buffer(packed, used), kAsTuple);
      if (error) co_return error;
      used = 0;
    }
    if (direct) {
      auto [error, written] = co_await asio::async_write(*self->tls, asio::buffer(piece.data(), piece.size()), kAsTuple);
      if (error) co_return error;
    } else if (!piece.empty()) {
      std::memcpy(packed + used, piece.data(), piece.size());
      used += piece.size();
    }
  }
  co_return std::error_code();
}

asio::awaitable<Status> WriteImpl(std::shared_ptr<Stream::Impl> self, std::span<const std::string_view> pieces,
                                  Duration timeout) {
  if (self->closed) co_return self->Closed(Op::kWrite);
  std::size_t index = 0;
  std::size_t offset = 0;
  if (!self->tls) {
    // Plain TCP: a write that fits into the socket buffer (commands, a message of a few KB) is
    // done here and now. Through async_write_some it would also be written at once, but its
    // completion would be posted and the coroutine resumed one round of the event loop later
    // (an epoll_wait and a handler dispatch per write: measurable at one connection).
    std::error_code error = WritePlainNow(*self, pieces, index, offset);
    if (!error) co_return Status::Ok();
    if (error != asio::error::would_block && error != asio::error::try_again) {
      co_return self->Fail(Op::kWrite, error, false, timeout);
    }
  }
  self->Arm(self->write_deadline, Op::kWrite, timeout);
  std::error_code error;
  if (self->tls) {
    error = co_await WriteTls(self, pieces);
  } else {
    error = co_await WritePlain(self, pieces, index, offset);
  }
  bool expired = Stream::Impl::Disarm(self->write_deadline);
  if (!error) co_return Status::Ok();
  co_return self->Fail(Op::kWrite, error, expired, timeout);
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<Stream>>> Stream::Connect(ConnectOptions options) {
  auto executor = co_await asio::this_coro::executor;
  auto impl = std::make_shared<Impl>(executor);
  Status status = co_await ConnectImpl(impl, std::move(options));
  if (!status.ok()) co_return status;
  co_return std::unique_ptr<Stream>(new Stream(std::move(impl)));
}

Stream::Stream(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Stream::~Stream() { Close(); }

asio::awaitable<Status> Stream::StartTls(TlsOptions options, Duration timeout) {
  return StartTlsImpl(impl_, std::move(options), timeout);
}

asio::awaitable<Result<std::size_t>> Stream::ReadSome(std::span<char> buffer, Duration timeout) {
  return ReadSomeImpl(impl_, buffer, timeout);
}

asio::awaitable<Status> Stream::Write(std::span<const std::string_view> pieces, Duration timeout) {
  return WriteImpl(impl_, pieces, timeout);
}

bool Stream::tls() const { return impl_->tls_ready; }

std::string Stream::tls_version() const {
  return tls() ? net_internal::ProtocolName(impl_->tls->native_handle()) : std::string();
}

std::string Stream::cipher() const { return tls() ? net_internal::CipherName(impl_->tls->native_handle()) : std::string(); }

std::optional<PeerCertificate> Stream::peer_certificate() const { return impl_->certificate; }

std::string Stream::remote_endpoint() const { return impl_->remote; }

std::string Stream::local_endpoint() const { return impl_->local; }

bool Stream::is_open() const { return !impl_->closed; }

void Stream::Close() { impl_->CloseWith(Status(StatusCode::kUnavailable, "closed by herald")); }

}  // namespace herald
