#include "dns/unbound_resolver.h"

#include <arpa/inet.h>
#include <unbound.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "dns/internal/wire.h"

namespace herald::dns {
namespace {

using dns_internal::Bytes;

constexpr int kClassIn = 1;
constexpr int kRcodeServFail = 2;
constexpr int kRcodeNxDomain = 3;
constexpr int kRcodeRefused = 5;

constexpr auto kAwait = asio::experimental::as_tuple(asio::use_awaitable);

// How long a NODATA or NXDOMAIN answer without an SOA may be reused. RFC 2308 §5 would not cache
// it at all; libunbound keeps it 5 seconds (its NORR_TTL), so that a burst of the same question
// (every recipient of one domain) is asked once. The same here.
constexpr Duration kNegativeTtlWithoutSoa = std::chrono::seconds(5);

bool IsIp(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

Answer Failure(AnswerStatus status, std::string reason) {
  Answer answer;
  answer.status = status;
  answer.reason = std::move(reason);
  return answer;
}

std::string RcodeText(int rcode) {
  switch (rcode) {
    case kRcodeServFail: return "the server answered SERVFAIL";
    case kRcodeRefused: return "the server refused the query (REFUSED)";
    default: return fmt::format("the server answered with error code {}", rcode);
  }
}

// Fills answer.mx / addresses / texts from the rdata items libunbound found for `type`. Records
// that cannot be read are left out; an answer left with none is a failure.
Answer RecordsOf(RecordType type, const ub_result& result) {
  Answer answer;
  answer.status = AnswerStatus::kOk;
  answer.ttl = std::chrono::seconds(std::max(result.ttl, 0));
  std::string problem;
  for (int i = 0; result.data != nullptr && result.data[i] != nullptr; ++i) {
    Bytes rdata(reinterpret_cast<const unsigned char*>(result.data[i]), static_cast<std::size_t>(result.len[i]));
    Status read;
    switch (type) {
      case RecordType::kMx: {
        Result<MxRecord> mx = dns_internal::ParseMx(rdata);
        if (mx.ok()) answer.mx.push_back(std::move(*mx));
        read = mx.status();
        break;
      }
      case RecordType::kA:
      case RecordType::kAaaa: {
        Result<std::string> address = dns_internal::ParseAddress(type, rdata);
        if (address.ok()) answer.addresses.push_back(std::move(*address));
        read = address.status();
        break;
      }
      case RecordType::kTxt: {
        Result<std::string> text = dns_internal::ParseTxt(rdata);
        if (text.ok()) answer.texts.push_back(std::move(*text));
        read = text.status();
        break;
      }
    }
    if (!read.ok()) problem = read.message();
  }
  if (answer.mx.empty() && answer.addresses.empty() && answer.texts.empty()) {
    return Failure(AnswerStatus::kServFail, problem.empty() ? "an answer without records" : problem);
  }
  return answer;
}

Answer ToAnswer(RecordType type, int error, const ub_result* result) {
  if (error != 0 || result == nullptr) {
    return Failure(AnswerStatus::kServFail, fmt::format("resolver error: {}", ub_strerror(error)));
  }
  if (result->bogus) {
    return Failure(AnswerStatus::kServFail,
                   fmt::format("DNSSEC validation failed: {}", result->why_bogus ? result->why_bogus : "bogus answer"));
  }
  if (result->rcode == kRcodeNxDomain || result->nxdomain) {
    Answer answer = Failure(AnswerStatus::kNxDomain, "");
    Bytes packet(static_cast<const unsigned char*>(result->answer_packet),
                 static_cast<std::size_t>(std::max(result->answer_len, 0)));
    answer.ttl = dns_internal::NegativeTtl(packet).value_or(kNegativeTtlWithoutSoa);
    return answer;
  }
  if (result->rcode != 0) return Failure(AnswerStatus::kServFail, RcodeText(result->rcode));
  if (!result->havedata) {
    Answer answer = Failure(AnswerStatus::kNoData, "");
    Bytes packet(static_cast<const unsigned char*>(result->answer_packet),
                 static_cast<std::size_t>(std::max(result->answer_len, 0)));
    answer.ttl = dns_internal::NegativeTtl(packet).value_or(kNegativeTtlWithoutSoa);
    return answer;
  }
  return RecordsOf(type, *result);
}

// One query in progress: libunbound's callback fills `answer` and wakes the waiting coroutine.
struct PendingQuery {
  RecordType type;
  std::optional<Answer> answer;
  asio::steady_timer* wake = nullptr;
};

void OnResult(void* argument, int error, ub_result* result) {
  auto* query = static_cast<PendingQuery*>(argument);
  query->answer = ToAnswer(query->type, error, result);
  if (result != nullptr) ub_resolve_free(result);
  query->wake->cancel();
}

}  // namespace

Result<std::string> UnboundForwarder(std::string_view server) {
  std::string host(server);
  std::string port;
  if (!server.empty() && server.front() == '[') {
    std::size_t close = server.find(']');
    if (close == std::string_view::npos) host.clear();
    else {
      host = std::string(server.substr(1, close - 1));
      std::string_view rest = server.substr(close + 1);
      if (!rest.empty() && rest.front() == ':') port = std::string(rest.substr(1));
      else if (!rest.empty()) host.clear();
      if (rest == ":") host.clear();
    }
  } else if (std::size_t colon = server.find(':'); colon != std::string_view::npos && server.rfind(':') == colon) {
    host = std::string(server.substr(0, colon));
    port = std::string(server.substr(colon + 1));
    if (port.empty()) host.clear();
  }
  int port_number = 53;
  if (!port.empty()) {
    auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), port_number);
    if (error != std::errc() || end != port.data() + port.size() || port_number < 1 || port_number > 65535) {
      host.clear();
    }
  }
  if (!IsIp(host)) {
    return InvalidArgument(fmt::format("DNS server \"{}\": expected an IP address with an optional port: "
                                       "\"192.0.2.53\", \"127.0.0.1:5353\" or \"[::1]:53\"",
                                       server));
  }
  return port.empty() ? host : fmt::format("{}@{}", host, port_number);
}

class UnboundResolver::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(ub_ctx* context, Duration timeout) : context_(context), timeout_(timeout) {}
  ~Impl() {
    descriptor_.reset();
    ub_ctx_delete(context_);
  }

  asio::awaitable<Answer> Query(std::string name, RecordType type) {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, timeout_);
    PendingQuery query{type, std::nullopt, &timer};
    int id = 0;
    int error = ub_resolve_async(context_, name.c_str(), static_cast<int>(type), kClassIn, &query, OnResult, &id);
    if (error != 0) co_return Failure(AnswerStatus::kServFail, fmt::format("resolver error: {}", ub_strerror(error)));
    ++pending_;
    if (Status reading = StartReading(executor); !reading.ok()) {
      ub_cancel(context_, id);
      Finished();
      co_return Failure(AnswerStatus::kServFail, reading.message());
    }
    if (!query.answer) co_await timer.async_wait(kAwait);
    Finished();
    if (!query.answer) {
      // The callback of a cancelled query is never called (libunbound: ub_cancel), so `query`
      // may go with this frame.
      ub_cancel(context_, id);
      co_return Failure(AnswerStatus::kTimeout,
                        fmt::format("no answer within {}s", std::chrono::duration_cast<std::chrono::seconds>(timeout_).count()));
    }
    co_return std::move(*query.answer);
  }

 private:
  // Reads libunbound's results while queries are in progress, on the executor of the query that
  // started the reading. The pipe is watched through a copy of its descriptor, which Asio owns.
  Status StartReading(const asio::any_io_executor& executor) {
    if (descriptor_) return Status::Ok();
    int fd = dup(ub_fd(context_));
    if (fd < 0) return Status(StatusCode::kIo, fmt::format("resolver error: {}", std::strerror(errno)));
    descriptor_.emplace(executor, fd);
    asio::co_spawn(executor, ReadResults(shared_from_this()), asio::detached);
    return Status::Ok();
  }

  void Finished() {
    if (--pending_ == 0 && descriptor_) descriptor_->cancel();
  }

  static asio::awaitable<void> ReadResults(std::shared_ptr<Impl> self) {
    while (self->pending_ > 0 && self->descriptor_) {
      auto [error] = co_await self->descriptor_->async_wait(asio::posix::stream_descriptor::wait_read, kAwait);
      if (error && error != asio::error::operation_aborted) break;
      if (ub_poll(self->context_)) ub_process(self->context_);
    }
    self->descriptor_.reset();
  }

  ub_ctx* context_;
  Duration timeout_;
  std::size_t pending_ = 0;
  std::optional<asio::posix::stream_descriptor> descriptor_;
};

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::Create(UnboundOptions options) {
  std::string forwarder;
  if (!options.server.empty()) {
    Result<std::string> parsed = UnboundForwarder(options.server);
    if (!parsed.ok()) return parsed.status();
    forwarder = std::move(*parsed);
  }
  ub_ctx* context = ub_ctx_create();
  if (context == nullptr) return Status(StatusCode::kFailedPrecondition, "cannot create a libunbound context");
  auto impl = std::make_shared<Impl>(context, options.timeout);
  auto fail = [](std::string_view what, int error) {
    return Status(StatusCode::kFailedPrecondition, fmt::format("DNS resolver: {}: {}", what, ub_strerror(error)));
  };
  // A thread, not a forked process, resolves in the background: herald has files and sockets
  // open that a child process must not inherit.
  if (int error = ub_ctx_async(context, 1); error != 0) return fail("cannot resolve in a thread", error);
  // The configured server is often on this machine (a local cache, systemd-resolved's
  // 127.0.0.53), which libunbound refuses to ask by default.
  if (int error = ub_ctx_set_option(context, "do-not-query-localhost:", "no"); error != 0) {
    return fail("cannot allow a local server", error);
  }
  if (!forwarder.empty()) {
    if (int error = ub_ctx_set_fwd(context, forwarder.c_str()); error != 0) {
      return fail(fmt::format("cannot use the server {}", options.server), error);
    }
  } else if (int error = ub_ctx_resolvconf(context, nullptr); error != 0) {
    return fail("cannot read /etc/resolv.conf", error);
  }
  return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

UnboundResolver::UnboundResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
UnboundResolver::~UnboundResolver() = default;

asio::awaitable<Answer> UnboundResolver::Query(std::string name, RecordType type) {
  co_return co_await impl_->Query(std::move(name), type);
}

}  // namespace herald::dns
