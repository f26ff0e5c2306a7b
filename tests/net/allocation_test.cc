// Reads and writes allocate nothing once a connection is warm (plain and TLS): the coroutine
// frames and completion handlers come from Asio's per-thread recycling allocator, the deadline
// timers are not touched, and TLS packs small pieces into a buffer made at handshake time.
// Counts operator new on the client's thread only; the server runs on a thread of its own.
#include <atomic>
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include "net/stream.h"
#include "net_test_support.h"
#include "temp_dir.h"

// The replacements below pair malloc with free on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local bool counting = false;
thread_local long allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (counting) ++allocations;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace herald::net_test {
namespace {


struct Counted {
  Status status;
  long allocations = -1;
};

std::vector<std::string_view> Batch() { return {"RCPT TO:<a@example.net>\r\n", "RCPT TO:<b@example.net>\r\n", "DATA\r\n"}; }

// `batch` and `buffer` are made by the caller, so that only the stream's own allocations count.
asio::awaitable<Status> RoundTrips(Stream* stream, std::span<const std::string_view> batch, std::span<char> buffer,
                                   int count) {
  std::size_t batch_size = 0;
  for (std::string_view piece : batch) batch_size += piece.size();
  for (int i = 0; i < count; ++i) {
    Status written = co_await stream->Write(batch, 5s);
    if (!written.ok()) co_return written;
    for (std::size_t got = 0; got < batch_size;) {
      Result<std::size_t> n = co_await stream->ReadSome(buffer, 5s);
      if (!n.ok()) co_return n.status();
      got += *n;
    }
  }
  co_return Status::Ok();
}

asio::awaitable<Counted> CountAllocations(std::uint16_t port, std::optional<TlsOptions> tls) {
  Counted out;
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.timeout = 2s;
  Result<std::unique_ptr<Stream>> stream = co_await Stream::Connect(options);
  if (!stream.ok()) {
    out.status = stream.status();
    co_return out;
  }
  if (tls) out.status = co_await (*stream)->StartTls(*tls, 2s);
  if (!out.status.ok()) co_return out;
  std::vector<std::string_view> batch = Batch();
  std::string buffer(4096, '\0');
  std::span<char> into(buffer.data(), buffer.size());
  out.status = co_await RoundTrips(stream->get(), batch, into, 100);  // warms up Asio's recycling allocator
  if (!out.status.ok()) co_return out;
  allocations = 0;
  counting = true;
  out.status = co_await RoundTrips(stream->get(), batch, into, 1000);
  counting = false;
  out.allocations = allocations;
  co_return out;
}

TEST(AllocationTest, PlainReadsAndWritesDoNotAllocate) {
  std::optional<Counted> got;
  {
    ServerThread server(ServerScript{}, std::make_shared<ServerLog>());
    got = RunWithin(30s, CountAllocations(server.port(), std::nullopt));
  }
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->allocations, 0);
}

TEST(AllocationTest, TlsReadsAndWritesDoNotAllocate) {
  TempDir folder;
  TestCertificates certificates = MakeTestCertificates(folder.path());
  TlsOptions tls;
  tls.server_name = "localhost";
  tls.ca_file = certificates.ca_file;
  ServerScript script;
  script.tls = ServerTlsContext(certificates.localhost);
  std::optional<Counted> got;
  {
    ServerThread server(script, std::make_shared<ServerLog>());
    got = RunWithin(30s, CountAllocations(server.port(), tls));
  }
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->allocations, 0);
}

}  // namespace
}  // namespace herald::net_test
