#include "servers/aiosmtpd_server.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

// Debian's interpreter: python3-aiosmtpd is importable by it, maybe not by the python3 on PATH.
constexpr char kPython[] = "/usr/bin/python3";

std::vector<std::string> StringList(const nlohmann::json& value) {
  std::vector<std::string> list;
  if (!value.is_array()) return list;
  for (const auto& item : value) {
    if (item.is_string()) list.push_back(item.get<std::string>());
  }
  return list;
}

std::string StringOrEmpty(const nlohmann::json& record, const char* key) {
  auto found = record.find(key);
  return found != record.end() && found->is_string() ? found->get<std::string>() : "";
}

}  // namespace

AiosmtpdServer::AiosmtpdServer(AiosmtpdOptions options) : options_(std::move(options)) {
  messages_dir_ = options_.directory + "/messages";
  log_file_ = options_.directory + "/aiosmtpd.log";
}

Status AiosmtpdServer::Start() {
  if (options_.directory.empty()) return InvalidArgument("AiosmtpdOptions.directory is empty");
  if (options_.implicit_tls && options_.tls.empty()) {
    return InvalidArgument("AiosmtpdOptions.implicit_tls needs tls");
  }
  if (!fs::exists(kPython)) return Status(StatusCode::kFailedPrecondition, "no /usr/bin/python3");
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(messages_dir_, 0755));
  if (!options_.users.empty()) {
    std::string users;
    for (const MailUser& user : options_.users) {
      if (user.name.find_first_of(":\r\n") != std::string::npos ||
          user.password.find_first_of("\r\n") != std::string::npos) {
        return InvalidArgument("aiosmtpd user names cannot hold ':' or line breaks: '" + user.name + "'");
      }
      users += user.name + ":" + user.password + "\n";
    }
    HERALD_RETURN_IF_ERROR(WriteTextFile(options_.directory + "/users", users, 0600));
  }
  // A port given by the test is not replaced by another one.
  return RetryOnPortCollision([this] { return StartOnce(); }, options_.port == 0 ? 3 : 1);
}

Status AiosmtpdServer::StartOnce() {
  const AiosmtpdOptions& o = options_;
  auto port = o.port != 0 ? Result<int>(o.port) : PickFreePort(o.host);
  if (!port.ok()) return port.status();
  port_ = *port;

  ProcessOptions process;
  process.argv = {kPython, ServersSourceDirectory() + "/aiosmtpd_server.py",
                  "--host", o.host,
                  "--port", std::to_string(port_),
                  "--out", messages_dir_,
                  "--hostname", o.hostname,
                  "--data-size-limit", std::to_string(o.data_size_limit),
                  "--lifetime", std::to_string(o.lifetime.count())};
  if (!o.tls.empty()) {
    process.argv.insert(process.argv.end(), {"--cert", o.tls.certificate, "--key", o.tls.key});
  }
  if (o.implicit_tls) process.argv.push_back("--implicit-tls");
  if (!o.users.empty()) process.argv.insert(process.argv.end(), {"--users", o.directory + "/users"});
  if (o.require_starttls) process.argv.push_back("--require-starttls");
  if (o.auth_require_tls) process.argv.push_back("--auth-require-tls");
  if (o.auth_required) process.argv.push_back("--auth-required");
  if (o.data_delay.count() > 0) {
    process.argv.insert(process.argv.end(), {"--data-delay", std::to_string(o.data_delay.count() / 1000.0)});
  }
  if (!o.greeting.empty()) process.argv.insert(process.argv.end(), {"--greeting", o.greeting});
  for (const auto& [address, reply] : o.rcpt_replies) {
    process.argv.insert(process.argv.end(), {"--rcpt-reply", address + "=" + reply});
  }
  process.log_file = log_file_;
  // Debian's Python with its own modules only: nothing from another interpreter's environment.
  process.environment = {"PYTHONPATH=", "PYTHONHOME=", "PYTHONNOUSERSITE=1",
                         "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"};
  HERALD_RETURN_IF_ERROR(python_.Start(process));

  const std::string greeting = o.implicit_tls ? "" : o.greeting.empty() ? "220 " : o.greeting.substr(0, 4);
  Status ready = WaitForListener(o.host, port_, greeting, o.start_timeout, &python_);
  if (!ready.ok()) {
    Stop();
    // Python reports a port taken by another process as "address already in use".
    return Status(ready.code(), "aiosmtpd did not start: " + ready.message() + "\n" + Log());
  }
  return Status::Ok();
}

void AiosmtpdServer::Stop() { python_.Stop(); }

std::vector<RecordedMessage> AiosmtpdServer::Messages() const {
  std::vector<std::string> records;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(messages_dir_, error)) {
    if (entry.path().extension() == ".json") records.push_back(entry.path().string());
  }
  std::sort(records.begin(), records.end());
  std::vector<RecordedMessage> messages;
  for (const auto& path : records) {
    auto record = nlohmann::json::parse(ReadTextFile(path), nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) continue;
    RecordedMessage message;
    message.mail_from = StringOrEmpty(record, "mail_from");
    message.rcpt_tos = StringList(record["rcpt_tos"]);
    message.mail_options = StringList(record["mail_options"]);
    message.rcpt_options = StringList(record["rcpt_options"]);
    message.helo = StringOrEmpty(record, "helo");
    message.auth_user = StringOrEmpty(record, "auth_user");
    message.tls = record.value("tls", false);
    message.sessions_open = record.value("sessions_open", 0);
    message.max_sessions_open = record.value("max_sessions_open", 0);
    message.received_at = record.value("received_at", 0.0);
    message.data = ReadTextFile(path.substr(0, path.size() - 5) + ".eml");
    messages.push_back(std::move(message));
  }
  return messages;
}

Result<std::vector<RecordedMessage>> AiosmtpdServer::WaitForMessages(size_t count,
                                                                     milliseconds timeout) const {
  std::vector<RecordedMessage> messages;
  bool done = WaitUntil(
      [&] {
        messages = Messages();
        return messages.size() >= count;
      },
      timeout);
  if (!done) {
    return Status(StatusCode::kUnavailable, std::to_string(messages.size()) + " of " +
                                                std::to_string(count) + " messages within " +
                                                std::to_string(timeout.count()) + " ms\n" + Log());
  }
  return messages;
}

std::string AiosmtpdServer::Log() const {
  return "--- aiosmtpd output (" + log_file_ + ") ---\n" + LogTail(log_file_);
}

}  // namespace herald::test_servers
