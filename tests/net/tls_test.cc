// TLS: implicit TLS and STARTTLS-style upgrades against an in-test asio::ssl server, certificate
// and host name checks with the plain-words errors, SNI, old protocol versions, deadlines, and a
// few measurements (context creation, throughput, round trips).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "net/internal/tls.h"
#include "net/stream.h"
#include "net_test_support.h"
#include "temp_dir.h"

namespace herald::net_test {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kCrLf = "\r\n";

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = new TempDir();
    certificates_ = new TestCertificates(MakeTestCertificates(folder_->path()));
  }
  static void TearDownTestSuite() {
    delete certificates_;
    delete folder_;
  }
  static const TestCertificates& certificates() { return *certificates_; }

 private:
  static TempDir* folder_;
  static TestCertificates* certificates_;
};

TempDir* TlsTest::folder_ = nullptr;
TestCertificates* TlsTest::certificates_ = nullptr;

ConnectOptions Options(std::uint16_t port) {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.timeout = 2s;
  return options;
}

TlsOptions Tls(std::string server_name, std::string ca_file, bool verify = true) {
  TlsOptions options;
  options.server_name = std::move(server_name);
  options.ca_file = std::move(ca_file);
  options.verify = verify;
  return options;
}

ServerScript ImplicitTls(std::shared_ptr<asio::ssl::context> context, ServerScript::Then then = ServerScript::Then::kEcho) {
  ServerScript script;
  script.tls = std::move(context);
  script.then = then;
  return script;
}

struct TlsResult {
  Status status;         // of StartTls()
  Status after;          // of the exchange after it
  std::string echoed;
  bool tls = false;
  std::string version;
  std::string cipher;
  std::optional<PeerCertificate> certificate;
  std::string first_plain;  // plain text read before STARTTLS
  std::shared_ptr<ServerLog> log = std::make_shared<ServerLog>();
};

std::vector<std::string_view> Hello() { return {"EHLO ", "client.example", "\r\n"}; }

// Connects, optionally plays the client side of a STARTTLS exchange, runs StartTls(), then
// writes a line and reads its echo over TLS.
asio::awaitable<TlsResult> Handshake(ServerScript script, TlsOptions tls, Duration timeout, bool starttls) {
  TlsResult out;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, script, out.log);
  Result<std::unique_ptr<Stream>> connected = co_await Stream::Connect(Options(port));
  if (!connected.ok()) {
    out.status = connected.status();
    co_return out;
  }
  Stream* stream = connected->get();
  if (starttls) {
    // What arrives before the handshake is the caller's: read it all, then discard it (RFC 3207).
    Result<std::string> greeting = co_await ReadUntil(stream, script.greeting, 2s);
    out.status = co_await WriteText(stream, script.starttls_command, 2s);
    Result<std::string> reply = co_await ReadUntil(stream, script.starttls_reply, 2s);
    if (!greeting.ok() || !out.status.ok() || !reply.ok()) {
      out.status = Internal("the plain-text part failed");
      co_return out;
    }
    out.first_plain = *greeting + *reply;
  }
  out.status = co_await stream->StartTls(tls, timeout);
  out.tls = stream->tls();
  out.version = stream->tls_version();
  out.cipher = stream->cipher();
  out.certificate = stream->peer_certificate();
  if (!out.status.ok()) co_return out;
  std::vector<std::string_view> pieces = Hello();
  out.after = co_await stream->Write(pieces, 2s);
  if (!out.after.ok()) co_return out;
  Result<std::string> echoed = co_await ReadUntil(stream, kCrLf, 2s);
  out.after = echoed.status();
  if (echoed.ok()) out.echoed = *echoed;
  co_return out;
}

std::optional<TlsResult> RunHandshake(ServerScript script, TlsOptions tls, Duration timeout = 2s,
                                      bool starttls = false) {
  return RunWithin(10s, Handshake(std::move(script), std::move(tls), timeout, starttls));
}

TEST_F(TlsTest, ImplicitTlsWithTheCaFileVerifies) {
  std::optional<TlsResult> got =
      RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost)), Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_TRUE(got->after.ok()) << got->after.ToString();
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
  EXPECT_EQ(got->log->received, "EHLO client.example\r\n");
  EXPECT_TRUE(got->tls);
  EXPECT_EQ(got->version, "TLSv1.3");
  EXPECT_FALSE(got->cipher.empty());
  ASSERT_TRUE(got->certificate);
  EXPECT_THAT(got->certificate->names, ElementsAre("localhost", "127.0.0.1", "::1"));
  EXPECT_EQ(got->certificate->subject, "CN=localhost,O=herald tests");
  EXPECT_EQ(got->certificate->issuer, "CN=herald test CA,O=herald tests");
  EXPECT_THAT(got->certificate->not_after, testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}[-+][0-9]{2}:[0-9]{2}"));
  EXPECT_TRUE(got->certificate->verified);
  EXPECT_EQ(got->certificate->verify_error, "");
}

TEST_F(TlsTest, ServerReceivesTheServerNameAsSni) {
  std::optional<TlsResult> got =
      RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost)), Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->log->sni, "localhost");
}

TEST_F(TlsTest, IpLiteralIsMatchedAgainstCertificateAddressesWithoutSni) {
  std::optional<TlsResult> got =
      RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost)), Tls("127.0.0.1", certificates().ca_file));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->log->sni, "");  // RFC 6066 §3: no IP literals in SNI
}

TEST_F(TlsTest, EmptyServerNameMeansTheConnectHost) {
  std::optional<TlsResult> got =
      RunHandshake(ImplicitTls(ServerTlsContext(certificates().wrong_host)), Tls("", certificates().ca_file));
  ASSERT_TRUE(got);
  EXPECT_THAT(got->status.message(), StartsWith("certificate of 127.0.0.1 not trusted: IP address mismatch"));
}

TEST_F(TlsTest, StartTlsAfterPlainText) {
  ServerScript script = ImplicitTls(ServerTlsContext(certificates().localhost));
  script.greeting = "220 ready\r\n";
  script.starttls_command = "STARTTLS\r\n";
  // A second line right behind the go-ahead: RFC 3207 §4.2 says the client discards it. The
  // stream never reads ahead, so the caller has it and no TLS read can return it.
  script.starttls_reply = "220 go ahead\r\n250 injected\r\n";
  std::optional<TlsResult> got = RunHandshake(script, Tls("localhost", certificates().ca_file), 2s, true);
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->first_plain, "220 ready\r\n220 go ahead\r\n250 injected\r\n");
  EXPECT_EQ(got->log->plain_received, "STARTTLS\r\n");
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
  EXPECT_TRUE(got->tls);
}

struct BadCertificateCase {
  std::string label;
  CertificateFiles TestCertificates::*certificate;
  std::string server_name;
  bool with_ca_file;
  std::string want_reason;  // OpenSSL's words
  std::string want_message;
};

void PrintTo(const BadCertificateCase& c, std::ostream* out) { *out << c.label; }

class BadCertificateTest : public TlsTest, public ::testing::WithParamInterface<BadCertificateCase> {};

TEST_P(BadCertificateTest, IsRefusedWithTheReasonAndTheNames) {
  const BadCertificateCase& c = GetParam();
  const CertificateFiles& files = certificates().*c.certificate;
  std::optional<TlsResult> got = RunHandshake(ImplicitTls(ServerTlsContext(files)),
                                              Tls(c.server_name, c.with_ca_file ? certificates().ca_file : ""));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), HasSubstr(c.want_message));
  EXPECT_FALSE(got->tls);
  EXPECT_FALSE(got->log->handshake_done);
}

TEST_P(BadCertificateTest, IsAcceptedWithoutVerification) {
  const BadCertificateCase& c = GetParam();
  const CertificateFiles& files = certificates().*c.certificate;
  std::optional<TlsResult> got = RunHandshake(ImplicitTls(ServerTlsContext(files)),
                                              Tls(c.server_name, c.with_ca_file ? certificates().ca_file : "", false));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
  ASSERT_TRUE(got->certificate);
  EXPECT_FALSE(got->certificate->verified);
  EXPECT_EQ(got->certificate->verify_error, c.want_reason);
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, BadCertificateTest,
    ::testing::Values(
        BadCertificateCase{"SelfSigned", &TestCertificates::self_signed, "localhost", true, "self-signed certificate",
                           "certificate of localhost not trusted: self-signed certificate; it is for localhost, "
                           "127.0.0.1 (subject CN=localhost,O=herald tests, issuer CN=localhost,O=herald tests, "
                           "valid until "},
        BadCertificateCase{"Expired", &TestCertificates::expired, "localhost", true, "certificate has expired",
                           "certificate of localhost not trusted: certificate has expired; it is for localhost, "
                           "127.0.0.1 (subject CN=localhost,O=herald tests, issuer CN=herald test CA,O=herald tests, "
                           "valid until "},
        BadCertificateCase{"WrongHost", &TestCertificates::wrong_host, "localhost", true, "hostname mismatch",
                           "certificate of localhost not trusted: hostname mismatch: certificate is for "
                           "mail.other.example (issuer CN=herald test CA,O=herald tests)"},
        BadCertificateCase{"UnknownCa", &TestCertificates::unknown_ca, "localhost", true,
                           "unable to get local issuer certificate",
                           "certificate of localhost not trusted: unable to get local issuer certificate; it is for "
                           "localhost, 127.0.0.1 (subject CN=localhost,O=herald tests, issuer CN=herald other "
                           "CA,O=herald tests, valid until "},
        BadCertificateCase{"PrivateCaNotGiven", &TestCertificates::localhost, "localhost", false,
                           "unable to get local issuer certificate",
                           "give its certificate as the account's CA file"}),
    [](const ::testing::TestParamInfo<BadCertificateCase>& info) { return info.param.label; });

TEST_F(TlsTest, Tls11OnlyServerIsRefused) {
  std::optional<TlsResult> got = RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost, TLS1_1_VERSION)),
                                              Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), AllOf(StartsWith("protocol version too old: 127.0.0.1:"),
                                           HasSubstr("offers only TLS 1.1 or older; herald needs TLS 1.2 or newer")));
}

TEST_F(TlsTest, Tls12ServerIsAccepted) {
  std::optional<TlsResult> got = RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost, TLS1_2_VERSION)),
                                              Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->version, "TLSv1.2");
  EXPECT_EQ(got->echoed, "EHLO client.example\r\n");
}

TEST_F(TlsTest, HandshakeDeadlineFires) {
  ServerScript silent;
  silent.then = ServerScript::Then::kStall;
  std::optional<TlsResult> got = RunHandshake(silent, Tls("localhost", certificates().ca_file), 200ms);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->status.message(), StartsWith("timed out after 200ms while in the TLS handshake with 127.0.0.1:"));
}

TEST_F(TlsTest, PlainTextServerIsNamedAsSuch) {
  ServerScript plain;
  plain.greeting = "220 mail.example ESMTP ready\r\n";
  plain.then = ServerScript::Then::kStall;
  std::optional<TlsResult> got = RunHandshake(plain, Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  EXPECT_THAT(got->status.message(), HasSubstr("the server did not answer in TLS (wrong version number)"));
}

TEST_F(TlsTest, ServerClosingDuringTheHandshake) {
  ServerScript closing;
  closing.then = ServerScript::Then::kClose;
  std::optional<TlsResult> got = RunHandshake(closing, Tls("localhost", certificates().ca_file));
  ASSERT_TRUE(got);
  EXPECT_THAT(got->status.message(), HasSubstr("failed: the server closed the connection"));
}

TEST_F(TlsTest, UnreadableCaFileIsInvalidArgument) {
  std::optional<TlsResult> got =
      RunHandshake(ImplicitTls(ServerTlsContext(certificates().localhost)), Tls("localhost", "/nonexistent/ca.pem"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(got->status.message(), StartsWith("cannot use the CA file /nonexistent/ca.pem: "));
}

TEST_F(TlsTest, GatherWriteSendsEveryPieceInOrder) {
  std::shared_ptr<GatherData> data = MakeGatherData(10 * 1000 * 1000);
  std::optional<WriteResult> got = RunWithin(
      30s, GatherWrite(data, ServerTlsContext(certificates().localhost), Tls("localhost", certificates().ca_file)));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(got->reply, "OK\r\n");
  ASSERT_EQ(got->log->received.size(), data->joined.size());
  EXPECT_TRUE(got->log->received == data->joined) << "the bytes differ";
}

// ---------------------------------------------------------------------------------------------
// After the handshake.

struct AfterResult {
  Status second_start_tls;
  std::vector<std::string> chunks;
  Status read;
};

asio::awaitable<AfterResult> ReadAfterHandshake(ServerScript script, TlsOptions tls, Duration read_timeout) {
  AfterResult out;
  auto executor = co_await asio::this_coro::executor;
  std::uint16_t port = StartServer(executor, script, std::make_shared<ServerLog>());
  Result<std::unique_ptr<Stream>> connected = co_await Stream::Connect(Options(port));
  if (!connected.ok()) {
    out.read = connected.status();
    co_return out;
  }
  Stream* stream = connected->get();
  out.read = co_await stream->StartTls(tls, 2s);
  if (!out.read.ok()) co_return out;
  out.second_start_tls = co_await stream->StartTls(tls, 2s);
  std::string buffer(100, '\0');
  for (int i = 0; i < 20; ++i) {
    Result<std::size_t> n = co_await stream->ReadSome(std::span<char>(buffer.data(), buffer.size()), read_timeout);
    if (!n.ok()) {
      out.read = n.status();
      co_return out;
    }
    out.chunks.emplace_back(buffer.data(), *n);
  }
  co_return out;
}

TEST_F(TlsTest, ReadDeadlineAndSecondStartTls) {
  std::optional<AfterResult> got = RunWithin(
      5s, ReadAfterHandshake(ImplicitTls(ServerTlsContext(certificates().localhost), ServerScript::Then::kStall),
                             Tls("localhost", certificates().ca_file), 200ms));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->second_start_tls.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(got->chunks.empty());
  EXPECT_THAT(got->read.message(), StartsWith("timed out after 200ms while reading from 127.0.0.1:"));
}

TEST_F(TlsTest, DripOverTls) {
  ServerScript script = ImplicitTls(ServerTlsContext(certificates().localhost), ServerScript::Then::kDrip);
  script.drip = "abc";
  script.drip_interval = 30ms;
  std::optional<AfterResult> got =
      RunWithin(5s, ReadAfterHandshake(script, Tls("localhost", certificates().ca_file), 1s));
  ASSERT_TRUE(got);
  std::vector<std::string> want = {"a", "b", "c"};
  EXPECT_EQ(got->chunks, want);
  EXPECT_THAT(got->read.message(), StartsWith("timed out after 1s while reading from"));
}

TEST_F(TlsTest, EndOfStreamAfterCloseNotify) {
  std::optional<AfterResult> got = RunWithin(
      5s, ReadAfterHandshake(ImplicitTls(ServerTlsContext(certificates().localhost), ServerScript::Then::kClose),
                             Tls("localhost", certificates().ca_file), 2s));
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->chunks.empty());
  EXPECT_EQ(got->read.code(), StatusCode::kUnavailable);
  EXPECT_THAT(got->read.message(), StartsWith("connection closed by the server while reading from 127.0.0.1:"));
}

// ---------------------------------------------------------------------------------------------
// Contexts and measurements.

TEST_F(TlsTest, ContextsAreSharedPerCaFile) {
  Result<std::shared_ptr<asio::ssl::context>> a = net_internal::ClientTlsContext(certificates().ca_file);
  Result<std::shared_ptr<asio::ssl::context>> b = net_internal::ClientTlsContext(certificates().ca_file);
  Result<std::shared_ptr<asio::ssl::context>> system = net_internal::ClientTlsContext("");
  ASSERT_TRUE(a.ok() && b.ok() && system.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_NE(a->get(), system->get());

  constexpr int kRounds = 20;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(net_internal::NewClientTlsContext("").ok());
  auto fresh = (std::chrono::steady_clock::now() - started) / kRounds;
  started = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(net_internal::ClientTlsContext("").ok());
  auto cached = (std::chrono::steady_clock::now() - started) / kRounds;
  std::printf("[ measured ] new client TLS context with the system store: %.2f ms; from the cache: %.4f ms\n",
              std::chrono::duration<double, std::milli>(fresh).count(),
              std::chrono::duration<double, std::milli>(cached).count());
}

struct Throughput {
  Status status;
  std::size_t bytes = 0;
  std::chrono::steady_clock::duration write_elapsed{};
  int round_trips = 0;
  std::chrono::steady_clock::duration round_trip_elapsed{};
};

std::vector<std::string_view> SmtpLikeBatch() {
  return {"MAIL FROM:<sender@example.com>\r\n", "RCPT TO:<recipient@example.net>\r\n", "DATA\r\n"};
}

// Against a sink on `sink_port`: writes `total` bytes in 64 KiB pieces and waits for the "OK".
// Against an echo server on `echo_port`: plays `round_trips` write/read exchanges. TLS when `tls`.
asio::awaitable<Throughput> Measure(std::uint16_t sink_port, std::uint16_t echo_port, std::optional<TlsOptions> tls,
                                    std::size_t total, int round_trips) {
  Throughput out;
  Result<std::unique_ptr<Stream>> connected = co_await Stream::Connect(Options(sink_port));
  if (!connected.ok()) {
    out.status = connected.status();
    co_return out;
  }
  Stream* stream = connected->get();
  if (tls) out.status = co_await stream->StartTls(*tls, 2s);
  if (!out.status.ok()) co_return out;
  std::string block(64 * 1024, 'm');
  std::vector<std::string_view> pieces(total / block.size(), block);
  out.bytes = pieces.size() * block.size();
  auto started = std::chrono::steady_clock::now();
  out.status = co_await stream->Write(pieces, 30s);
  if (!out.status.ok()) co_return out;
  Result<std::string> ok = co_await ReadUntil(stream, kCrLf, 30s);
  out.write_elapsed = std::chrono::steady_clock::now() - started;
  out.status = ok.status();
  if (!out.status.ok()) co_return out;

  connected = co_await Stream::Connect(Options(echo_port));
  if (!connected.ok()) {
    out.status = connected.status();
    co_return out;
  }
  stream = connected->get();
  if (tls) out.status = co_await stream->StartTls(*tls, 2s);
  if (!out.status.ok()) co_return out;
  std::vector<std::string_view> batch = SmtpLikeBatch();
  std::size_t batch_size = 0;
  for (std::string_view piece : batch) batch_size += piece.size();
  std::string buffer(4096, '\0');
  started = std::chrono::steady_clock::now();
  for (int i = 0; i < round_trips; ++i) {
    out.status = co_await stream->Write(batch, 2s);
    if (!out.status.ok()) co_return out;
    std::size_t got = 0;
    while (got < batch_size) {
      Result<std::size_t> n = co_await stream->ReadSome(std::span<char>(buffer.data(), buffer.size()), 2s);
      if (!n.ok()) {
        out.status = n.status();
        co_return out;
      }
      got += *n;
    }
    ++out.round_trips;
  }
  out.round_trip_elapsed = std::chrono::steady_clock::now() - started;
  co_return out;
}

void MeasureAndPrint(const char* kind, std::shared_ptr<asio::ssl::context> server, std::optional<TlsOptions> tls) {
  constexpr std::size_t kBytes = 128 * 1024 * 1024;
  constexpr int kRoundTrips = 10000;
  auto sink_log = std::make_shared<ServerLog>();
  std::optional<Throughput> got;
  {
    ServerScript sink = ImplicitTls(server, ServerScript::Then::kSink);
    sink.sink_bytes = kBytes;
    sink.keep_received = false;
    ServerThread sink_server(sink, sink_log);
    ServerThread echo_server(ImplicitTls(server), std::make_shared<ServerLog>());
    got = RunWithin(60s, Measure(sink_server.port(), echo_server.port(), tls, kBytes, kRoundTrips));
  }
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->status.ok()) << got->status.ToString();
  EXPECT_EQ(sink_log->received_bytes, kBytes);
  EXPECT_EQ(got->round_trips, kRoundTrips);
  double seconds = std::chrono::duration<double>(got->write_elapsed).count();
  double trip_seconds = std::chrono::duration<double>(got->round_trip_elapsed).count();
  std::printf("[ measured ] %s: write of %zu MiB in 64 KiB pieces: %.0f MB/s; round trips (3-piece write, read the "
              "echo): %.0f/s (server on another thread)\n",
              kind, got->bytes >> 20, static_cast<double>(got->bytes) / 1e6 / seconds, got->round_trips / trip_seconds);
}

TEST_F(TlsTest, ThroughputAndRoundTrips) {
  MeasureAndPrint("TCP", nullptr, std::nullopt);
  MeasureAndPrint("TLS", ServerTlsContext(certificates().localhost), Tls("localhost", certificates().ca_file));
}

}  // namespace
}  // namespace herald::net_test
