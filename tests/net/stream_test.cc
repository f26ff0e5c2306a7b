// Plain TCP: connecting (by address, by name, refused, unknown name, timeout, local address,
// IPv6), reading with deadlines, end of stream, gather writes, closing and cancelling.
#include "net/stream.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <asio/experimental/awaitable_operators.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "net_test_support.h"

namespace herald::net_test {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kCrLf = "\r\n";
const std::string kGreeting = "220 hello\r\n";

ConnectOptions Options(std::string host, std::uint16_t port, Duration timeout = 2s) {
  ConnectOptions options;
  options.host = std::move(host);
  options.port = port;
  options.timeout = timeout;
  return options;
}

ServerScript Script(ServerScript::Then then, std::string greeting = "") {
  ServerScript script;
  script.then = then;
  script.greeting = std::move(greeting);
  return script;
}

// A port nothing listens on (bound, then released at once).
std::uint16_t UnusedPort(const std::string& address) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(address), 0));
  return acceptor.local_endpoint().port();
}

std::string PortText(std::uint16_t port) { return std::to_string(port); }

// ---------------------------------------------------------------------------------------------
// Connecting and echoing.

struct EchoResult {
  Status status;
  std::uint16_t port = 0;
  std::string greeting;
  std::string echoed;
  std::string remote;
  std::string local;
  bool tls = true;
  std::shared_ptr<ServerLog> log = std::make_shared<ServerLog>();
};

std::vector<std::string_view> SmallPieces() { return {"EHLO ", "", "client.example", "\r\n"}; }

asio::awaitable<EchoResult> ConnectAndEcho(std::string host, std::string listen_on, std::string local_address) {
  EchoResult out;
  auto executor = co_await asio::this_coro::executor;
  out.port = StartServer(executor, Script(ServerScript::Then::kEcho, kGreeting), out.log, listen_on);
  ConnectOptions options = Options(host, out.port);
  options.local_address = local_address;
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(options);
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  Stream* s = stream->get();
  out.remote = s->remote_endpoint();
  out.local = s->local_endpoint();
  out.tls = s->tls();
  Result<std::string> greeting = co_await ReadUntil(s, kCrLf, 2s);
  if (!greeting.ok()) {
    out.status = greeting.status();
    co_return out;
  }
  out.greeting = *greeting;
  std::vector<std::string_view> pieces = SmallPieces();
  out.status = co_await s->Write(pieces, 2s);
  if (!out.status.ok()) co_return out;
  Result<std::string> echoed = co_await ReadUntil(s, kCrLf, 2s);
  if (!echoed.ok()) {
    out.status = echoed.status();
    co_return out;
  }
  out.echoed = *echoed;
  co_return out;
}

TEST(StreamTest, ConnectsToAnAddressReadsAndWrites) {
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("127.0.0.1", "127.0.0.1", ""));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->greeting, kGreeting);
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
  EXPECT_EQ(got->log->received, "EHLO client.example\r\n");
  EXPECT_EQ(got->remote, "127.0.0.1:" + PortText(got->port));
  EXPECT_THAT(got->local, StartsWith("127.0.0.1:"));
  EXPECT_FALSE(got->tls);
}

TEST(StreamTest, ConnectsToAName) {
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("localhost", "127.0.0.1", ""));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
  EXPECT_EQ(got->remote, "127.0.0.1:" + PortText(got->port));
}

TEST(StreamTest, BindsToTheLocalAddress) {
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("127.0.0.1", "127.0.0.1", "127.0.0.2"));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->log->peer, "127.0.0.2");
  EXPECT_THAT(got->local, StartsWith("127.0.0.2:"));
}

TEST(StreamTest, ConnectsOverIpv6) {
  if (!Ipv6LoopbackAvailable()) GTEST_SKIP() << "no IPv6 loopback (::1) on this machine";
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("::1", "::1", ""));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->remote, "[::1]:" + PortText(got->port));
  EXPECT_EQ(got->log->peer, "::1");
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
}

TEST(StreamTest, LocalAddressOfTheOtherFamilyIsNamed) {
  if (!Ipv6LoopbackAvailable()) GTEST_SKIP() << "no IPv6 loopback (::1) on this machine";
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("::1", "::1", "127.0.0.1"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), HasSubstr("the local address 127.0.0.1 is of the other address family"));
}

TEST(StreamTest, MalformedLocalAddressIsInvalidArgument) {
  std::optional<EchoResult> got = RunWithin(5s, ConnectAndEcho("127.0.0.1", "127.0.0.1", "not-an-ip"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got->status.message(), "the local address not-an-ip is not an IP address");
}

// ---------------------------------------------------------------------------------------------
// Connect failures.

asio::awaitable<Status> ConnectOnly(ConnectOptions options) {
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(options);
  co_return stream.status();
}

TEST(StreamTest, ConnectionRefusedNamesTheAddress) {
  std::uint16_t port = UnusedPort("127.0.0.1");
  std::optional<Status> got = RunWithin(5s, ConnectOnly(Options("127.0.0.1", port)));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->code(), StatusCode::kUnavailable);
  std::string address = "127.0.0.1:" + PortText(port);
  EXPECT_EQ(got->message(), "cannot connect to " + address + ": " + address + ": connection refused");
}

TEST(StreamTest, UnknownNameIsNotFound) {
  // A label longer than 63 bytes cannot be put in a DNS query, so the resolver answers without
  // sending one: the test stays on this machine.
  std::string name = std::string(64, 'a') + ".invalid";
  std::optional<Status> got = RunWithin(5s, ConnectOnly(Options(name, 25)));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->code(), StatusCode::kUnavailable);
  EXPECT_EQ(got->message(), "cannot resolve " + name + ": name not found");
}

TEST(StreamTest, EmptyHostIsInvalidArgument) {
  std::optional<Status> got = RunWithin(5s, ConnectOnly(Options("", 25)));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got->message(), "no host to connect to");
}

// A listener whose accept queue is full (backlog 0, never accepting) drops further SYNs, so a
// connect gets no answer. Fill the queue with connections that succeed until one times out.
asio::awaitable<std::vector<Status>> ConnectUntilTimeout(std::uint16_t* port_out) {
  auto executor = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(executor, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
  acceptor.listen(0);
  *port_out = acceptor.local_endpoint().port();
  std::vector<std::unique_ptr<Stream>> queued;
  std::vector<Status> results;
  for (int i = 0; i < 8; ++i) {
    Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(Options("127.0.0.1", *port_out, 300ms));
    results.push_back(stream.status());
    if (!stream.ok()) break;
    queued.push_back(std::move(*stream));
  }
  co_return results;
}

TEST(StreamTest, ConnectTimesOutWhenTheServerDoesNotAnswer) {
  std::uint16_t port = 0;
  auto started = std::chrono::steady_clock::now();
  std::optional<std::vector<Status>> got = RunWithin(10s, ConnectUntilTimeout(&port));
  ASSERT_TRUE(got);
  ASSERT_FALSE(got->empty());
  const Status& last = got->back();
  ASSERT_FALSE(last.ok()) << "all " << got->size() << " connections were accepted into the queue";
  EXPECT_EQ(last.code(), StatusCode::kUnavailable);
  std::string address = "127.0.0.1:" + PortText(port);
  EXPECT_EQ(last.message(), "timed out after 300ms while connecting to " + address + " (" + address + ": no answer)");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

// ---------------------------------------------------------------------------------------------
// Reading.

struct ReadResult {
  std::vector<std::string> chunks;  // what each successful read returned
  Status status;                    // the first failed read
  std::chrono::milliseconds failed_after{0};
  bool open_after = true;
  Status next;                      // an operation after the failure
};

// Reads with `timeout` each, into a buffer of `buffer_size`, until a read fails or `max_reads`.
asio::awaitable<ReadResult> ReadChunks(ServerScript script, Duration timeout, std::size_t buffer_size, int max_reads) {
  ReadResult out;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, std::move(script), std::make_shared<ServerLog>());
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(Options("127.0.0.1", port));
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  std::string buffer(buffer_size, '\0');
  for (int i = 0; i < max_reads; ++i) {
    auto started = std::chrono::steady_clock::now();
    Result<std::size_t> n = co_await (*stream)->ReadSome(std::span<char>(buffer.data(), buffer.size()), timeout);
    if (!n.ok()) {
      out.status = n.status();
      out.failed_after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      out.open_after = (*stream)->is_open();
      out.next = co_await WriteText(stream->get(), kCrLf, 1s);
      co_return out;
    }
    out.chunks.emplace_back(buffer.data(), *n);
  }
  co_return out;
}

TEST(StreamTest, ReadDeadlineFiresWhenTheServerIsSilent) {
  std::optional<ReadResult> got = RunWithin(5s, ReadChunks(Script(ServerScript::Then::kStall), 200ms, 100, 5));
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->chunks.empty());
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), StartsWith("timed out after 200ms while reading from 127.0.0.1:"));
  EXPECT_GE(got->failed_after, 190ms);
  EXPECT_LT(got->failed_after, 1500ms);
  EXPECT_FALSE(got->open_after);
  EXPECT_THAT(got->next.message(), HasSubstr("the connection is closed (timed out after 200ms"));
}

TEST(StreamTest, EachReadHasItsOwnDeadline) {
  // One byte every 60 ms: each read waits less than its 500 ms deadline, although all of them
  // together take longer.
  ServerScript script = Script(ServerScript::Then::kDrip);
  script.drip = "0123456789";
  script.drip_interval = 60ms;
  std::optional<ReadResult> got = RunWithin(5s, ReadChunks(script, 500ms, 100, 10));
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->status.ok()) << got->status.ToString();
  std::string all;
  for (const std::string& chunk : got->chunks) all += chunk;
  EXPECT_EQ(all, "0123456789");
}

TEST(StreamTest, ReadDeadlineFiresWhenBytesComeSlowerThanIt) {
  ServerScript script = Script(ServerScript::Then::kDrip);
  script.drip = "0123456789";
  script.drip_interval = 400ms;
  std::optional<ReadResult> got = RunWithin(5s, ReadChunks(script, 150ms, 100, 10));
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->chunks.empty());
  EXPECT_THAT(got->status.message(), StartsWith("timed out after 150ms while reading from"));
}

TEST(StreamTest, EndOfStreamIsAnError) {
  std::optional<ReadResult> got = RunWithin(5s, ReadChunks(Script(ServerScript::Then::kClose, "221 bye\r\n"), 2s, 100, 5));
  ASSERT_TRUE(got);
  ASSERT_EQ(got->chunks.size(), 1u);
  EXPECT_EQ(got->chunks[0], "221 bye\r\n");
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), StartsWith("connection closed by the server while reading from 127.0.0.1:"));
  EXPECT_FALSE(got->open_after);
}

TEST(StreamTest, ReadsNoMoreThanAskedFor) {
  std::optional<ReadResult> got = RunWithin(5s, ReadChunks(Script(ServerScript::Then::kStall, "ABCDEFG"), 300ms, 3, 5));
  ASSERT_TRUE(got);
  std::vector<std::string> want = {"ABC", "DEF", "G"};
  EXPECT_EQ(got->chunks, want);
}

// ---------------------------------------------------------------------------------------------
// Writing.

TEST(StreamTest, GatherWriteSendsEveryPieceInOrder) {
  std::shared_ptr<GatherData> data = MakeGatherData(10 * 1000 * 1000);
  std::optional<WriteResult> got = RunWithin(20s, GatherWrite(data, nullptr, {}));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->reply, "OK\r\n");
  ASSERT_EQ(got->log->received.size(), data->joined.size());
  EXPECT_TRUE(got->log->received == data->joined) << "the bytes differ";
}

asio::awaitable<WriteResult> WriteToStalledServer() {
  WriteResult out;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, Script(ServerScript::Then::kStall), out.log);
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(Options("127.0.0.1", port));
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  // More than the socket buffers of both ends hold.
  std::string big(256 * 1024 * 1024, 'x');
  std::string_view piece = big;
  auto started = std::chrono::steady_clock::now();
  out.status = co_await (*stream)->Write(std::span<const std::string_view>(&piece, 1), 300ms);
  out.elapsed = std::chrono::steady_clock::now() - started;
  co_return out;
}

TEST(StreamTest, WriteDeadlineFiresWhenTheServerDoesNotRead) {
  std::optional<WriteResult> got = RunWithin(10s, WriteToStalledServer());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), StartsWith("timed out after 300ms while writing to 127.0.0.1:"));
  EXPECT_LT(got->elapsed, 3s);
}

// ---------------------------------------------------------------------------------------------
// Closing and cancelling.

struct CloseResult {
  Status read;
  Status after;
  std::chrono::steady_clock::duration elapsed{};
};

asio::awaitable<void> CloseLater(Stream* stream, bool destroy, std::unique_ptr<Stream>* owner) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, 50ms);
  co_await timer.async_wait(kAsTuple);
  if (destroy) {
    owner->reset();
  } else {
    stream->Close();
  }
}

// Starts a read with a long deadline, then closes (or destroys) the stream from another coroutine.
asio::awaitable<CloseResult> CloseDuringRead(bool destroy) {
  CloseResult out;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, Script(ServerScript::Then::kStall), std::make_shared<ServerLog>());
  Result<std::unique_ptr<Stream>> connected = co_await Stream::Connect(Options("127.0.0.1", port));
  if (!connected.ok()) {
    out.read = connected.status();
    co_return out;
  }
  std::unique_ptr<Stream> stream = std::move(*connected);
  Stream* raw = stream.get();
  asio::co_spawn(executor, CloseLater(raw, destroy, &stream), asio::detached);
  std::string buffer(100, '\0');
  auto started = std::chrono::steady_clock::now();
  Result<std::size_t> n = co_await raw->ReadSome(std::span<char>(buffer.data(), buffer.size()), 10s);
  out.elapsed = std::chrono::steady_clock::now() - started;
  out.read = n.status();
  if (stream != nullptr) out.after = co_await WriteText(stream.get(), kCrLf, 1s);
  co_return out;
}

TEST(StreamTest, CloseEndsAReadInProgress) {
  std::optional<CloseResult> got = RunWithin(5s, CloseDuringRead(false));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->read.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->read.message(), HasSubstr("the connection was closed (closed by herald)"));
  EXPECT_LT(got->elapsed, 2s);
  EXPECT_THAT(got->after.message(), StartsWith("cannot start writing to 127.0.0.1:"));
}

TEST(StreamTest, DestroyingTheStreamEndsAReadInProgress) {
  std::optional<CloseResult> got = RunWithin(5s, CloseDuringRead(true));
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->read.ok());
  EXPECT_LT(got->elapsed, 2s);
}

asio::awaitable<Status> ReadRacingATimer() {
  using namespace asio::experimental::awaitable_operators;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, Script(ServerScript::Then::kStall), std::make_shared<ServerLog>());
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(Options("127.0.0.1", port));
  if (!stream.ok()) co_return stream.status();
  std::string buffer(100, '\0');
  asio::steady_timer timer(executor, 50ms);
  auto winner = co_await ((*stream)->ReadSome(std::span<char>(buffer.data(), buffer.size()), 10s) ||
                          timer.async_wait(asio::use_awaitable));
  if (winner.index() == 0) co_return std::get<0>(winner).status();
  co_return co_await WriteText(stream->get(), kCrLf, 1s);
}

TEST(StreamTest, CancellingAReadFromOutsideClosesTheStream) {
  std::optional<Status> got = RunWithin(5s, ReadRacingATimer());
  ASSERT_TRUE(got);
  EXPECT_THAT(got->message(), HasSubstr("the connection is closed (cancelled while reading from 127.0.0.1:"));
}

// ---------------------------------------------------------------------------------------------
// Cost of one small read when the bytes are already there: the stream's own overhead (deadline,
// coroutine, completion) on top of the recv() call. Thread CPU time, so other load matters less.

struct ReadCost {
  Status status;
  int reads = 0;
  double cpu_seconds = 0;
};

double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

asio::awaitable<ReadCost> SmallReads(std::uint16_t port, std::size_t total) {
  ReadCost out;
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(Options("127.0.0.1", port));
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  std::string buffer(64, '\0');
  std::size_t got = 0;
  // Let the whole payload arrive first.
  asio::steady_timer pause(co_await asio::this_coro::executor, 200ms);
  co_await pause.async_wait(kAsTuple);
  double started = ThreadCpuSeconds();
  while (got < total) {
    Result<std::size_t> n = co_await (*stream)->ReadSome(std::span<char>(buffer.data(), buffer.size()), 30s);
    if (!n.ok()) {
      out.status = n.status();
      co_return out;
    }
    got += *n;
    ++out.reads;
  }
  out.cpu_seconds = ThreadCpuSeconds() - started;
  co_return out;
}

TEST(StreamTest, CostOfASmallRead) {
  constexpr std::size_t kTotal = 2 * 1024 * 1024;
  std::optional<ReadCost> got;
  {
    ServerThread server(Script(ServerScript::Then::kStall, std::string(kTotal, 'r')), std::make_shared<ServerLog>());
    got = RunWithin(30s, SmallReads(server.port(), kTotal));
  }
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  std::printf("[ measured ] %d reads of 64 bytes with a deadline each: %.2f us of CPU per read\n", got->reads,
              got->cpu_seconds * 1e6 / got->reads);
}

}  // namespace
}  // namespace herald::net_test
