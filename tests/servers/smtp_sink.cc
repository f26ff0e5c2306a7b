#include "servers/smtp_sink.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

constexpr char kSmtpSinkProgram[] = "/usr/sbin/smtp-sink";

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Parses one capture file (smtp-sink(1), "DUMP FILE FORMAT"): X-Client-Addr, X-Client-Proto,
// X-Helo-Args, X-Mail-Args and X-Rcpt-Args records, a three-line Received: header, the message,
// and an empty line.
SinkTransaction ParseCapture(std::string_view text) {
  SinkTransaction transaction;
  size_t position = 0;
  auto next_line = [&](std::string_view* line) {
    if (position >= text.size()) return false;
    size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    *line = text.substr(position, end - position);
    position = end + 1;
    return true;
  };
  std::string_view line;
  size_t line_start = position;
  while (next_line(&line)) {
    if (StartsWith(line, "X-Client-Addr: ")) {
      transaction.client_address = line.substr(15);
    } else if (StartsWith(line, "X-Helo-Args: ")) {
      transaction.helo = line.substr(13);
    } else if (StartsWith(line, "X-Mail-Args: ")) {
      transaction.mail_args = line.substr(13);
    } else if (StartsWith(line, "X-Rcpt-Args: ")) {
      std::string args(line.substr(13));
      std::string address = args.substr(0, args.find(' '));
      if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
        address = address.substr(1, address.size() - 2);
      }
      transaction.rcpt_args.push_back(args);
      transaction.recipients.push_back(address);
    } else if (StartsWith(line, "Received: ")) {
      // Skip its continuation lines; the message follows.
      while (position < text.size() && text[position] == '\t') next_line(&line);
      std::string_view message = text.substr(std::min(position, text.size()));
      if (!message.empty() && message.back() == '\n') message.remove_suffix(1);
      transaction.data = std::string(message);
      return transaction;
    } else if (!StartsWith(line, "X-")) {
      position = line_start;  // not in the documented format: keep the rest as the message
      transaction.data = std::string(text.substr(position));
      return transaction;
    }
    line_start = position;
  }
  return transaction;
}

}  // namespace

SmtpSink::SmtpSink(SmtpSinkOptions options) : options_(std::move(options)) {
  capture_dir_ = options_.directory + "/captured";
  output_file_ = options_.directory + "/smtp-sink.out";
}

Status SmtpSink::Start() {
  if (options_.directory.empty()) return InvalidArgument("SmtpSinkOptions.directory is empty");
  if (!fs::exists(kSmtpSinkProgram)) {
    return Status(StatusCode::kFailedPrecondition,
                  std::string(kSmtpSinkProgram) + " is missing: install postfix (scripts/setup.sh test)");
  }
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  HERALD_RETURN_IF_ERROR(MakeReachableByServers(options_.directory));
  // As root, smtp-sink runs as nobody and writes its capture files there.
  HERALD_RETURN_IF_ERROR(MakeDirectory(capture_dir_, 0755, geteuid() == 0 ? "nobody" : ""));
  // A port given by the test is not replaced by another one.
  return RetryOnPortCollision([this] { return StartOnce(); }, options_.port == 0 ? 3 : 1);
}

Status SmtpSink::StartOnce() {
  const SmtpSinkOptions& o = options_;
  auto port = o.port != 0 ? Result<int>(o.port) : PickFreePort(o.host);
  if (!port.ok()) return port.status();
  port_ = *port;
  std::string address = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;

  ProcessOptions process;
  process.argv = {kSmtpSinkProgram, "-c", "-h", o.hostname, "-m", std::to_string(o.max_connections)};
  if (!o.announce_auth) process.argv.push_back("-a");
  if (o.capture) process.argv.insert(process.argv.end(), {"-d", capture_dir_ + "/%Y%m%d%H%M%S."});
  process.argv.insert(process.argv.end(), o.extra_arguments.begin(), o.extra_arguments.end());
  process.argv.push_back(address + ":" + std::to_string(port_));
  process.argv.push_back(std::to_string(o.backlog));
  // Unprivileged from the start (smtp-sink insists on -u when it runs as root).
  if (geteuid() == 0) process.user = "nobody";
  process.working_directory = options_.directory;
  process.log_file = output_file_;
  HERALD_RETURN_IF_ERROR(sink_.Start(process));

  Status ready = WaitForListener(o.host, port_, "220 ", o.start_timeout, &sink_);
  if (!ready.ok()) {
    Stop();
    return Status(ready.code(), "smtp-sink did not start: " + ready.message() + "\n" + Log());
  }
  return Status::Ok();
}

void SmtpSink::Stop() { sink_.Stop(); }

int64_t SmtpSink::MessageCount() const {
  // smtp-sink -c prints "sess=N quit=N mesg=N\r" after each session, QUIT and message: the last
  // one is at the end of the file, which grows by each (a benchmark makes it megabytes), so only
  // its end is read.
  std::ifstream in(output_file_, std::ios::binary | std::ios::ate);
  if (!in) return 0;
  std::streamoff size = in.tellg();
  std::streamoff tail = std::min<std::streamoff>(size, 128);
  std::string end(static_cast<size_t>(tail), '\0');
  in.seekg(size - tail);
  in.read(end.data(), tail);
  size_t at = end.rfind("mesg=");
  if (at == std::string::npos) return 0;
  return std::strtoll(end.c_str() + at + 5, nullptr, 10);
}

Status SmtpSink::WaitForMessageCount(int64_t count, milliseconds timeout) const {
  if (WaitUntil([&] { return MessageCount() >= count; }, timeout)) return Status::Ok();
  return Status(StatusCode::kUnavailable,
                "smtp-sink counted " + std::to_string(MessageCount()) + " of " +
                    std::to_string(count) + " messages within " +
                    std::to_string(timeout.count()) + " ms\n" + Log());
}

std::vector<SinkTransaction> SmtpSink::Transactions() const {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::recursive_directory_iterator(capture_dir_, error)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<SinkTransaction> transactions;
  for (const auto& file : files) transactions.push_back(ParseCapture(ReadTextFile(file)));
  return transactions;
}

std::map<std::string, int> SmtpSink::CountByRecipient() const {
  std::map<std::string, int> counts;
  for (const auto& transaction : Transactions()) {
    for (const auto& recipient : transaction.recipients) ++counts[recipient];
  }
  return counts;
}

std::string SmtpSink::Log() const {
  std::string output = ReadTextFile(output_file_);
  // The counters overwrite one line with '\r'; show the last one.
  std::replace(output.begin(), output.end(), '\r', '\n');
  std::string tail = output.size() > 3000 ? "..." + output.substr(output.size() - 3000) : output;
  return "--- smtp-sink output (" + output_file_ + ") ---\n" + tail;
}

}  // namespace herald::test_servers
