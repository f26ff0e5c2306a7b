#include "servers/https_server.h"

#include <filesystem>

#include <nlohmann/json.hpp>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

// Debian's interpreter (the one the other servers' scripts run with).
constexpr char kPython[] = "/usr/bin/python3";

}  // namespace

HttpsServer::HttpsServer(HttpsOptions options) : options_(std::move(options)) {
  routes_file_ = options_.directory + "/routes.json";
  requests_file_ = options_.directory + "/requests.log";
  log_file_ = options_.directory + "/https.log";
}

Status HttpsServer::Start() {
  if (options_.directory.empty()) return InvalidArgument("HttpsOptions.directory is empty");
  if (options_.tls.empty()) return InvalidArgument("HttpsOptions.tls is required");
  if (!fs::exists(kPython)) return Status(StatusCode::kFailedPrecondition, "no /usr/bin/python3");
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  nlohmann::json routes = nlohmann::json::object();
  for (const HttpsRoute& route : options_.routes) {
    routes[route.host + " " + route.path] = {{"status", route.status}, {"headers", route.headers}, {"body", route.body}};
  }
  HERALD_RETURN_IF_ERROR(WriteTextFile(routes_file_, routes.dump(1)));
  // A port given by the test is not replaced by another one.
  return RetryOnPortCollision([this] { return StartOnce(); }, options_.port == 0 ? 3 : 1);
}

Status HttpsServer::StartOnce() {
  const HttpsOptions& o = options_;
  auto port = o.port != 0 ? Result<int>(o.port) : PickFreePort(o.host);
  if (!port.ok()) return port.status();
  port_ = *port;
  ProcessOptions process;
  process.argv = {kPython, ServersSourceDirectory() + "/https_server.py",
                  "--host", o.host,
                  "--port", std::to_string(port_),
                  "--cert", o.tls.certificate,
                  "--key", o.tls.key,
                  "--routes", routes_file_,
                  "--log", requests_file_,
                  "--lifetime", std::to_string(o.lifetime.count())};
  process.log_file = log_file_;
  process.environment = {"PYTHONPATH=", "PYTHONHOME=", "PYTHONNOUSERSITE=1", "PYTHONDONTWRITEBYTECODE=1",
                         "PYTHONUNBUFFERED=1"};
  HERALD_RETURN_IF_ERROR(python_.Start(process));
  Status ready = WaitForListener(o.host, port_, "", o.start_timeout, &python_);
  if (!ready.ok()) {
    Stop();
    // Python reports a port taken by another process as "address already in use".
    return Status(ready.code(), "the HTTPS server did not start: " + ready.message() + "\n" + Log());
  }
  return Status::Ok();
}

void HttpsServer::Stop() { python_.Stop(); }

int HttpsServer::RequestCount(std::string_view host, std::string_view path) const {
  std::string wanted = std::string(host) + " " + std::string(path);
  std::string log = ReadTextFile(requests_file_);
  int count = 0;
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    if (log.compare(start, end - start, wanted) == 0) ++count;
    start = end + 1;
  }
  return count;
}

std::string HttpsServer::Log() const { return "--- HTTPS server log (" + log_file_ + ") ---\n" + LogTail(log_file_); }

}  // namespace herald::test_servers
