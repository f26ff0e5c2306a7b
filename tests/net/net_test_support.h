// Support for the net tests: a time-bounded runner for one coroutine, and a scripted loopback
// server (plain or TLS, STARTTLS-style upgrade, echo, stall, drip, sink, close) that records what
// it saw. Everything runs on one io_context thread.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <asio/buffers_iterator.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <gtest/gtest.h>

#include "net/stream.h"
#include "tls_certificates.h"

namespace herald::net_test {

using asio::ip::tcp;
using namespace std::chrono_literals;

inline constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);

// Runs `task` on a fresh io_context for at most `limit` of real time; everything else still
// running then (servers) is dropped. Returns the task's result, or nullopt after adding a test
// failure if it did not finish.
template <typename T>
std::optional<T> RunWithin(std::chrono::milliseconds limit, asio::awaitable<T> task) {
  asio::io_context io;
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) result.emplace(std::move(value));
    io.stop();
  });
  io.run_for(limit);
  if (failure) std::rethrow_exception(failure);
  if (!result) ADD_FAILURE() << "the test did not finish within " << limit.count() << " ms";
  return result;
}

// A server TLS context with `files`; with `max_version` (e.g. TLS1_1_VERSION) the server speaks
// nothing newer, and old versions are allowed (security level 0).
inline std::shared_ptr<asio::ssl::context> ServerTlsContext(const CertificateFiles& files, int max_version = 0) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  context->use_certificate_chain_file(files.certificate);
  context->use_private_key_file(files.key, asio::ssl::context::pem);
  if (max_version != 0) {
    SSL_CTX* raw = context->native_handle();
    SSL_CTX_set_security_level(raw, 0);
    SSL_CTX_set_cipher_list(raw, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(raw, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(raw, max_version);
  }
  return context;
}

// What the scripted server does with one connection, in this order.
struct ServerScript {
  std::string greeting;          // sent in plain text right after accepting
  std::string starttls_command;  // if set: read plain text up to it, send `starttls_reply`, then TLS
  std::string starttls_reply;
  std::shared_ptr<asio::ssl::context> tls;  // handshake (after the STARTTLS exchange, if any)
  enum class Then {
    kEcho,   // send back what arrives, until the client closes
    kStall,  // neither read nor write
    kClose,  // close (TLS: close_notify first)
    kDrip,   // send `drip` one byte per `drip_interval`, then stall
    kSink,   // read `sink_bytes` bytes, then send "OK\r\n" and stall
  } then = Then::kEcho;
  std::string drip;
  std::chrono::milliseconds drip_interval{0};
  std::size_t sink_bytes = 0;
  bool keep_received = true;  // false: only count what arrives (ServerLog::received_bytes)
};

// What the server saw.
struct ServerLog {
  std::string peer;            // the client's address
  std::string plain_received;  // before TLS
  std::string received;        // after TLS (or everything, without TLS)
  std::size_t received_bytes = 0;
  std::string sni;             // the server name the client sent (empty: none)
  bool handshake_done = false;
  std::string error;           // why the server stopped early
  std::chrono::steady_clock::time_point sink_done;
};

// The part after the optional handshake; `stream` and the others are owned by Serve(), which
// awaits this at once.
template <typename AsyncStream>
asio::awaitable<void> ServeThen(AsyncStream& stream, const ServerScript& script, ServerLog& log) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  std::string buffer(64 * 1024, '\0');
  switch (script.then) {
    case ServerScript::Then::kEcho:
      while (true) {
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), kAsTuple);
        if (error) co_return;
        log.received.append(buffer.data(), n);
        auto [write_error, written] = co_await asio::async_write(stream, asio::buffer(buffer.data(), n), kAsTuple);
        if (write_error) co_return;
      }
    case ServerScript::Then::kClose:
      if constexpr (!std::is_same_v<AsyncStream, tcp::socket>) {
        auto [error] = co_await stream.async_shutdown(kAsTuple);
        (void)error;
      }
      stream.lowest_layer().close();
      co_return;
    case ServerScript::Then::kDrip:
      for (char c : script.drip) {
        timer.expires_after(script.drip_interval);
        co_await timer.async_wait(kAsTuple);
        buffer[0] = c;
        auto [error, written] = co_await asio::async_write(stream, asio::buffer(buffer.data(), 1), kAsTuple);
        if (error) co_return;
      }
      break;
    case ServerScript::Then::kSink: {
      buffer.resize(1024 * 1024);
      while (log.received_bytes < script.sink_bytes) {
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), kAsTuple);
        if (error) {
          log.error = error.message();
          co_return;
        }
        log.received_bytes += n;
        if (script.keep_received) log.received.append(buffer.data(), n);
      }
      log.sink_done = std::chrono::steady_clock::now();
      buffer.assign("OK\r\n");
      auto [error, written] = co_await asio::async_write(stream, asio::buffer(buffer), kAsTuple);
      if (error) co_return;
      break;
    }
    case ServerScript::Then::kStall:
      break;
  }
  timer.expires_after(std::chrono::hours(1));
  co_await timer.async_wait(kAsTuple);
}

// Accepts one connection on `acceptor` and plays `script`, recording into `log`.
inline asio::awaitable<void> Serve(tcp::acceptor acceptor, ServerScript script, std::shared_ptr<ServerLog> log) {
  auto [accept_error, socket] = co_await acceptor.async_accept(kAsTuple);
  if (accept_error) {
    log->error = accept_error.message();
    co_return;
  }
  std::error_code ignored;
  log->peer = socket.remote_endpoint(ignored).address().to_string();
  if (!script.greeting.empty()) {
    auto [error, n] = co_await asio::async_write(socket, asio::buffer(script.greeting), kAsTuple);
    if (error) co_return;
  }
  if (!script.starttls_command.empty()) {
    asio::streambuf line;
    auto [error, n] = co_await asio::async_read_until(socket, line, script.starttls_command, kAsTuple);
    if (error) {
      log->error = error.message();
      co_return;
    }
    log->plain_received.assign(asio::buffers_begin(line.data()), asio::buffers_end(line.data()));
    auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(script.starttls_reply), kAsTuple);
    if (write_error) co_return;
  }
  if (script.tls == nullptr) {
    co_await ServeThen(socket, script, *log);
    co_return;
  }
  asio::ssl::stream<tcp::socket&> tls(socket, *script.tls);
  auto [error] = co_await tls.async_handshake(asio::ssl::stream_base::server, kAsTuple);
  if (error) {
    log->error = error.message();
    co_return;
  }
  log->handshake_done = true;
  const char* sni = SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name);
  if (sni != nullptr) log->sni = sni;
  co_await ServeThen(tls, script, *log);
}

// A listener on `address` port 0 serving one connection with `script`; returns the port.
inline std::uint16_t StartServer(const asio::any_io_executor& executor, ServerScript script,
                                 std::shared_ptr<ServerLog> log, const std::string& address = "127.0.0.1",
                                 int backlog = asio::socket_base::max_listen_connections) {
  tcp::endpoint endpoint(asio::ip::make_address(address), 0);
  tcp::acceptor acceptor(executor, endpoint.protocol());
  acceptor.bind(endpoint);
  acceptor.listen(backlog);
  std::uint16_t port = acceptor.local_endpoint().port();
  asio::co_spawn(executor, Serve(std::move(acceptor), std::move(script), std::move(log)), asio::detached);
  return port;
}

// A scripted server on a thread of its own, for measurements: the client's numbers then do not
// include the server's work. Read the log only after destroying the ServerThread.
class ServerThread {
 public:
  ServerThread(ServerScript script, std::shared_ptr<ServerLog> log) : guard_(io_.get_executor()) {
    port_ = StartServer(io_.get_executor(), std::move(script), std::move(log));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ServerThread() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// Reads from `stream` until `end` has arrived; returns all that was read, or the error.
inline asio::awaitable<Result<std::string>> ReadUntil(Stream* stream, std::string end, Duration timeout) {
  std::string got;
  std::string buffer(4096, '\0');
  while (got.find(end) == std::string::npos) {
    Result<std::size_t> n = co_await stream->ReadSome(std::span<char>(buffer.data(), buffer.size()), timeout);
    if (!n.ok()) co_return n.status();
    got.append(buffer.data(), *n);
  }
  co_return got;
}

// Writes one piece.
inline asio::awaitable<Status> WriteText(Stream* stream, std::string text, Duration timeout) {
  std::string_view piece = text;
  co_return co_await stream->Write(std::span<const std::string_view>(&piece, 1), timeout);
}

inline ConnectOptions LoopbackOptions(std::uint16_t port) {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.timeout = 2s;
  return options;
}

// What a client scenario that writes saw.
struct WriteResult {
  Status status;
  std::string reply;
  std::shared_ptr<ServerLog> log = std::make_shared<ServerLog>();
  std::chrono::steady_clock::duration elapsed{};
};

inline std::string Pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return out;
}

// 600 small pieces (some empty) with one of `big` bytes in the middle, and pieces around the
// sizes where the TLS writer changes course (8 KiB: written directly; 16 KiB: a full record).
struct GatherData {
  std::vector<std::string> small;
  std::string big;
  std::vector<std::string_view> pieces;
  std::string joined;
};

inline std::shared_ptr<GatherData> MakeGatherData(std::size_t big) {
  auto data = std::make_shared<GatherData>();
  for (int i = 0; i < 600; ++i) data->small.push_back(i % 50 == 0 ? std::string() : "piece " + std::to_string(i) + ";");
  data->big = Pattern(big);
  for (std::size_t size : {8191, 8192, 16383, 16384, 16385}) data->small.push_back(Pattern(size));
  for (std::size_t i = 0; i < data->small.size(); ++i) {
    if (i == 300) data->pieces.push_back(data->big);
    data->pieces.push_back(data->small[i]);
    if (i > 600) data->pieces.push_back(data->small[i - 100]);
  }
  for (std::string_view piece : data->pieces) data->joined += piece;
  return data;
}

// Writes `data` to a sink server (TLS when `server_tls` is set) and waits for its "OK".
inline asio::awaitable<WriteResult> GatherWrite(std::shared_ptr<GatherData> data,
                                                std::shared_ptr<asio::ssl::context> server_tls, TlsOptions tls) {
  WriteResult out;
  auto executor = co_await asio::this_coro::executor;
  ServerScript script;
  script.then = ServerScript::Then::kSink;
  script.sink_bytes = data->joined.size();
  script.tls = server_tls;
  std::uint16_t port = StartServer(executor, script, out.log);
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(LoopbackOptions(port));
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  if (server_tls) {
    out.status = co_await (*stream)->StartTls(tls, 2s);
    if (!out.status.ok()) co_return out;
  }
  auto started = std::chrono::steady_clock::now();
  out.status = co_await (*stream)->Write(data->pieces, 10s);
  if (!out.status.ok()) co_return out;
  Result<std::string> reply = co_await ReadUntil(stream->get(), "\r\n", 10s);
  out.elapsed = std::chrono::steady_clock::now() - started;
  out.status = reply.status();
  if (reply.ok()) out.reply = *reply;
  co_return out;
}

inline bool Ipv6LoopbackAvailable() {
  asio::io_context io;
  std::error_code error;
  tcp::acceptor acceptor(io);
  acceptor.open(tcp::v6(), error);
  if (!error) acceptor.bind(tcp::endpoint(asio::ip::address_v6::loopback(), 0), error);
  return !error;
}

}  // namespace herald::net_test
