#include "servers/dovecot_server.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

constexpr char kDovecotProgram[] = "/usr/sbin/dovecot";
// Mailboxes and the post-login script run as this user and group.
constexpr char kMailUser[] = "nobody";
constexpr char kMailGroup[] = "nogroup";

bool HasAny(std::string_view text, std::string_view characters) {
  return text.find_first_of(characters) != std::string_view::npos;
}

}  // namespace

DovecotServer::DovecotServer(DovecotOptions options) : options_(std::move(options)) {
  config_file_ = options_.directory + "/dovecot.conf";
  log_file_ = options_.directory + "/dovecot.log";
  output_file_ = options_.directory + "/dovecot.out";
  mail_dir_ = options_.directory + "/mail";
}

Status DovecotServer::Start() {
  if (options_.directory.empty()) return InvalidArgument("DovecotOptions.directory is empty");
  for (const std::string* path : {&options_.directory, &options_.pop_before_smtp_directory,
                                  &options_.tls.certificate, &options_.tls.key}) {
    if (HasAny(*path, " \t\n\"'\\${}")) {
      return InvalidArgument("Dovecot configuration paths cannot hold blanks, quotes, '$' or braces: " +
                             *path);
    }
  }
  // passwd-file fields are separated by ':' (doc.dovecot.org, "Passwd-file").
  std::string passwd;
  for (const MailUser& user : options_.users) {
    if (user.name.empty() || HasAny(user.name, ":\n\r\t ") || HasAny(user.password, ":\n\r")) {
      return InvalidArgument("Dovecot user names cannot be empty or hold ':' or blanks, passwords "
                             "cannot hold ':' or line breaks: '" + user.name + "'");
    }
    passwd += user.name + ":{PLAIN}" + user.password + "\n";
  }
  if (geteuid() != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "DovecotServer needs root: Dovecot's master runs as root, its services as other users");
  }
  if (!fs::exists(kDovecotProgram)) {
    return Status(StatusCode::kFailedPrecondition,
                  std::string(kDovecotProgram) +
                      " is missing: install dovecot-core and dovecot-pop3d (scripts/setup.sh test)");
  }
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  HERALD_RETURN_IF_ERROR(MakeReachableByServers(options_.directory));
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory + "/state", 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory + "/bin", 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(mail_dir_, 0755, kMailUser, kMailGroup));
  // Read by the auth process, which runs as the dovecot user.
  HERALD_RETURN_IF_ERROR(WriteTextFile(options_.directory + "/passwd", passwd, 0644));
  if (!options_.pop_before_smtp_directory.empty()) {
    HERALD_RETURN_IF_ERROR(MakeDirectory(options_.pop_before_smtp_directory, 0777));
    HERALD_RETURN_IF_ERROR(MakeReachableByServers(options_.pop_before_smtp_directory));
    std::string script = ReadTextFile(ServersSourceDirectory() + "/dovecot_postlogin.sh");
    if (script.empty()) return NotFound("cannot read dovecot_postlogin.sh in " + ServersSourceDirectory());
    HERALD_RETURN_IF_ERROR(WriteTextFile(options_.directory + "/bin/dovecot_postlogin.sh", script, 0755));
    HERALD_RETURN_IF_ERROR(WriteTextFile(options_.directory + "/bin/pop_before_smtp_directory",
                                         options_.pop_before_smtp_directory + "\n"));
  }
  // Only ports picked here are picked anew; ports given by the test are kept.
  bool picked = options_.pop3_port == 0 || (!options_.tls.empty() && options_.pop3s_port == 0);
  return RetryOnPortCollision([this] { return StartOnce(); }, picked ? 3 : 1);
}

Status DovecotServer::StartOnce() {
  const DovecotOptions& o = options_;
  bool tls = !o.tls.empty();
  pop3_port_ = kNoPort;
  pop3s_port_ = kNoPort;
  if (o.pop3_port != kNoPort) {
    auto port = o.pop3_port != 0 ? Result<int>(o.pop3_port) : PickFreePort(o.host);
    if (!port.ok()) return port.status();
    pop3_port_ = *port;
  }
  if (tls && o.pop3s_port != kNoPort) {
    auto port = o.pop3s_port != 0 ? Result<int>(o.pop3s_port) : PickFreePort(o.host);
    if (!port.ok()) return port.status();
    pop3s_port_ = *port;
  }
  const std::string& dir = o.directory;
  std::string conf =
      "# Written by herald's DovecotServer (tests/servers/dovecot_server.cc) for one test.\n"
      "base_dir = " + dir + "/run\n"
      "state_dir = " + dir + "/state\n"
      "instance_name = herald-test-dovecot\n"
      "log_path = " + log_file_ + "\n"
      "protocols = pop3\n"
      "listen = " + o.host + "\n"
      "ssl = " + (tls ? "yes" : "no") + "\n";
  if (tls) {
    conf += "ssl_cert = <" + o.tls.certificate + "\n"
            "ssl_key = <" + o.tls.key + "\n";
  }
  conf +=
      // Tests also log in without TLS (Dovecot would allow that on loopback anyway).
      "disable_plaintext_auth = no\n"
      "auth_mechanisms = plain login cram-md5\n"
      "auth_verbose = yes\n"
      "auth_failure_delay = 0\n"
      "mail_location = maildir:" + mail_dir_ + "/%u\n"
      "pop3_uidl_format = %08Xu%08Xv\n"
      "passdb {\n"
      "  driver = passwd-file\n"
      "  args = scheme=PLAIN username_format=%u " + dir + "/passwd\n"
      "}\n"
      "userdb {\n"
      "  driver = static\n"
      "  args = uid=" + kMailUser + " gid=" + kMailGroup + " home=" + mail_dir_ + "/%u\n"
      "}\n"
      "service pop3-login {\n"
      "  inet_listener pop3 {\n"
      "    port = " + std::to_string(pop3_port_ == kNoPort ? 0 : pop3_port_) + "\n"
      "  }\n"
      "  inet_listener pop3s {\n"
      "    port = " + std::to_string(pop3s_port_ == kNoPort ? 0 : pop3s_port_) + "\n"
      "    ssl = yes\n"
      "  }\n"
      "}\n"
      // No auth penalty (2 to 15 s of delay for an address after a failed login): tests try wrong
      // passwords on purpose. Without this anvil socket the auth process disables the penalty.
      "service anvil {\n"
      "  unix_listener anvil-auth-penalty {\n"
      "    mode = 0\n"
      "  }\n"
      "}\n"
      "service auth {\n"
      "  unix_listener " + auth_socket() + " {\n"
      "    mode = 0666\n"
      "  }\n"
      "}\n";
  if (!o.pop_before_smtp_directory.empty()) {
    // Post-login scripting: pop3 connects to the postlogin service, which runs the script before
    // the POP3 session starts (doc.dovecot.org, "Post-login scripting").
    conf +=
        "service pop3 {\n"
        "  executable = pop3 postlogin\n"
        "}\n"
        "service postlogin {\n"
        "  executable = script-login " + dir + "/bin/dovecot_postlogin.sh\n"
        "  unix_listener postlogin {\n"
        "  }\n"
        "}\n";
  }
  HERALD_RETURN_IF_ERROR(WriteTextFile(config_file_, conf));

  ProcessOptions process;
  process.argv = {kDovecotProgram, "-F", "-c", config_file_};
  process.log_file = output_file_;
  HERALD_RETURN_IF_ERROR(dovecot_.Start(process));

  auto fail = [this](const Status& status) {
    Stop();
    return Status(status.code(), "Dovecot did not start: " + status.message() + "\n" + Log());
  };
  auto deadline = std::chrono::steady_clock::now() + o.start_timeout;
  auto left = [&] {
    return std::max(milliseconds(100), std::chrono::duration_cast<milliseconds>(
                                           deadline - std::chrono::steady_clock::now()));
  };
  if (pop3_port_ != kNoPort) {
    Status ready = WaitForListener(o.host, pop3_port_, "+OK", left(), &dovecot_);
    if (!ready.ok()) return fail(ready);
  }
  if (pop3s_port_ != kNoPort) {
    Status ready = WaitForListener(o.host, pop3s_port_, "", left(), &dovecot_);
    if (!ready.ok()) return fail(ready);
  }
  if (!WaitUntil([this] { return fs::exists(auth_socket()); }, left())) {
    return fail(Status(StatusCode::kUnavailable, "no auth socket " + auth_socket()));
  }
  return Status::Ok();
}

void DovecotServer::Stop() {
  dovecot_.Stop();
  if (!options_.directory.empty()) KillProcessesMentioning(options_.directory + "/");
}

Status DovecotServer::AddMessage(std::string_view user, std::string_view message) {
  if (user.empty() || HasAny(user, "/\n") || user.starts_with(".")) {
    return InvalidArgument("not a mailbox user name: '" + std::string(user) + "'");
  }
  std::string maildir = mail_dir_ + "/" + std::string(user);
  for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
    HERALD_RETURN_IF_ERROR(MakeDirectory(maildir + sub, 0700, kMailUser, kMailGroup));
  }
  // Maildir: write into tmp/, then rename into new/ (a unique name per delivery).
  static std::atomic<int> counter{0};
  std::string name = std::to_string(time(nullptr)) + ".P" + std::to_string(getpid()) + "Q" +
                     std::to_string(counter++) + ".herald-test";
  std::string temporary = maildir + "/tmp/" + name;
  HERALD_RETURN_IF_ERROR(WriteTextFile(temporary, message, 0600));
  HERALD_RETURN_IF_ERROR(ChangeOwner(temporary, kMailUser, kMailGroup));
  std::error_code error;
  fs::rename(temporary, maildir + "/new/" + name, error);
  if (error) return IoError("cannot move " + temporary + " into new/: " + error.message());
  return Status::Ok();
}

std::string DovecotServer::Log() const {
  return "--- Dovecot log (" + log_file_ + ") ---\n" + LogTail(log_file_) +
         "\n--- Dovecot output ---\n" + LogTail(output_file_, 2000);
}

}  // namespace herald::test_servers
