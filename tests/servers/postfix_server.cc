#include "servers/postfix_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;

// Debian's postfix package: daemon_directory (`postconf -d daemon_directory`).
constexpr char kMasterProgram[] = "/usr/lib/postfix/sbin/master";

// The queue subfolders Postfix's post-install would create, with their owner and mode.
struct QueueFolder {
  const char* name;
  const char* group;
  int mode;
};
constexpr QueueFolder kQueueFolders[] = {
    {"active", "root", 0700},   {"bounce", "root", 0700},   {"corrupt", "root", 0700},
    {"defer", "root", 0700},    {"deferred", "root", 0700}, {"flush", "root", 0700},
    {"hold", "root", 0700},     {"incoming", "root", 0700}, {"private", "root", 0700},
    {"saved", "root", 0700},    {"trace", "root", 0700},    {"maildrop", "postdrop", 0730},
    {"public", "postdrop", 0710},
};

std::string Endpoint(const std::string& host, int port) {
  std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return address + ":" + std::to_string(port);
}

Result<int> ChoosePort(const std::string& host, int wanted) {
  if (wanted != 0) return wanted;
  return PickFreePort(host);
}

Status CopyScript(const std::string& name, const std::string& to_dir) {
  std::string source = ServersSourceDirectory() + "/" + name;
  std::string text = ReadTextFile(source);
  if (text.empty()) return NotFound("cannot read " + source);
  return WriteTextFile(to_dir + "/" + name, text, 0755);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

std::string DeliveredMessage::ClientData() const {
  std::string_view rest = data;
  // Postfix's smtpd(8) prepends one Received: header (with folded continuation lines).
  if (rest.starts_with("Received:")) {
    size_t end = 0;
    while (true) {
      end = rest.find('\n', end);
      if (end == std::string_view::npos) {
        end = rest.size();
        break;
      }
      ++end;
      if (end >= rest.size() || (rest[end] != ' ' && rest[end] != '\t')) break;
    }
    rest.remove_prefix(end);
  }
  std::string crlf;
  crlf.reserve(rest.size() + rest.size() / 32);
  for (char c : rest) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  return crlf;
}

PostfixServer::PostfixServer(PostfixOptions options) : options_(std::move(options)) {
  const std::string& dir = options_.directory;
  config_dir_ = dir + "/etc";
  queue_dir_ = dir + "/queue";
  mail_dir_ = dir + "/mail";
  bin_dir_ = dir + "/bin";
  log_file_ = dir + "/maillog";
  output_file_ = dir + "/master.out";
}

Status PostfixServer::Start() {
  if (options_.directory.empty()) return InvalidArgument("PostfixOptions.directory is empty");
  for (const std::string* path : {&options_.directory, &options_.sasl_socket,
                                  &options_.pop_before_smtp_directory}) {
    if (path->find_first_of(" \t\n\"'\\$") != std::string::npos) {
      return InvalidArgument("Postfix configuration paths cannot hold blanks, quotes or '$': " + *path);
    }
  }
  bool needs_tls = options_.submission_port != kNoPort || options_.smtps_port != kNoPort;
  if (needs_tls && options_.tls.empty()) {
    return InvalidArgument("PostfixOptions.tls is required for the submission and smtps ports");
  }
  // Postfix's smtpd would only fail at the first connection, after the start timeout: check now.
  for (const std::string* file : {&options_.tls.certificate, &options_.tls.key}) {
    if (!file->empty() && !fs::is_regular_file(*file)) {
      return InvalidArgument("PostfixOptions.tls: no file " + *file);
    }
  }
  for (const auto& [address, reply] : options_.rejected_recipients) {
    if (address.empty() || address.find_first_of(" \t\r\n") != std::string::npos ||
        reply.find_first_of("\r\n") != std::string::npos) {
      return InvalidArgument("PostfixOptions.rejected_recipients: an address without blanks and a one-line reply, "
                             "not: " + address);
    }
  }
  if (geteuid() != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "PostfixServer needs root: Postfix's master runs as root and its daemons as postfix");
  }
  if (!fs::exists(kMasterProgram)) {
    return Status(StatusCode::kFailedPrecondition,
                  std::string(kMasterProgram) + " is missing: install postfix (scripts/setup.sh test)");
  }
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory, 0755));
  HERALD_RETURN_IF_ERROR(MakeReachableByServers(options_.directory));
  HERALD_RETURN_IF_ERROR(MakeDirectory(config_dir_, 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(bin_dir_, 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(queue_dir_, 0755));
  for (const QueueFolder& folder : kQueueFolders) {
    HERALD_RETURN_IF_ERROR(
        MakeDirectory(queue_dir_ + "/" + folder.name, folder.mode, "postfix", folder.group));
  }
  HERALD_RETURN_IF_ERROR(MakeDirectory(queue_dir_ + "/pid", 0755));
  HERALD_RETURN_IF_ERROR(MakeDirectory(options_.directory + "/data", 0700, "postfix"));
  // The pipe(8) transport runs postfix_deliver.sh as nobody.
  HERALD_RETURN_IF_ERROR(MakeDirectory(mail_dir_, 0755, "nobody"));
  if (!options_.pop_before_smtp_directory.empty()) {
    // Written by Dovecot's post-login script, read by the policy service (as nobody).
    HERALD_RETURN_IF_ERROR(MakeDirectory(options_.pop_before_smtp_directory, 0777));
    HERALD_RETURN_IF_ERROR(MakeReachableByServers(options_.pop_before_smtp_directory));
  }
  HERALD_RETURN_IF_ERROR(CopyScript("postfix_deliver.sh", bin_dir_));
  HERALD_RETURN_IF_ERROR(CopyScript("postfix_pop_before_smtp_policy.sh", bin_dir_));
  // Only ports picked here are picked anew; ports given by the test are kept.
  bool picked = options_.submission_port == 0 || options_.smtps_port == 0 || options_.smtp_port == 0;
  return RetryOnPortCollision([this] { return StartOnce(); }, picked ? 3 : 1);
}

Status PostfixServer::StartOnce() {
  auto submission = options_.submission_port == kNoPort
                        ? Result<int>(kNoPort)
                        : ChoosePort(options_.host, options_.submission_port);
  auto smtps = options_.smtps_port == kNoPort ? Result<int>(kNoPort)
                                              : ChoosePort(options_.host, options_.smtps_port);
  auto smtp = options_.smtp_port == kNoPort ? Result<int>(kNoPort)
                                            : ChoosePort(options_.host, options_.smtp_port);
  for (const auto* port : {&submission, &smtps, &smtp}) {
    if (!port->ok()) return port->status();
  }
  submission_port_ = *submission;
  smtps_port_ = *smtps;
  smtp_port_ = *smtp;
  HERALD_RETURN_IF_ERROR(WriteConfiguration());

  ProcessOptions process;
  // -d: stay in the foreground with stderr open; -s: keep stdout; -e: stop by itself eventually.
  process.argv = {kMasterProgram, "-c", config_dir_, "-d", "-s", "-e",
                  std::to_string(options_.lifetime.count())};
  process.log_file = output_file_;
  HERALD_RETURN_IF_ERROR(master_.Start(process));

  auto fail = [this](const Status& status) {
    Stop();
    return Status(status.code(), "Postfix did not start: " + status.message() + "\n" + Log());
  };
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  auto left = [&] {
    return std::max(milliseconds(100), std::chrono::duration_cast<milliseconds>(
                                           deadline - std::chrono::steady_clock::now()));
  };
  if (submission_port_ != kNoPort) {
    Status ready = WaitForListener(options_.host, submission_port_, "220 ", left(), &master_);
    if (!ready.ok()) return fail(ready);
  }
  if (smtp_port_ != kNoPort) {
    Status ready = WaitForListener(options_.host, smtp_port_, "220 ", left(), &master_);
    if (!ready.ok()) return fail(ready);
  }
  if (smtps_port_ != kNoPort) {  // implicit TLS: no greeting before a handshake
    Status ready = WaitForListener(options_.host, smtps_port_, "", left(), &master_);
    if (!ready.ok()) return fail(ready);
  }
  return Status::Ok();
}

Status PostfixServer::WriteConfiguration() const {
  const PostfixOptions& o = options_;
  bool tls = !o.tls.empty();
  bool sasl = !o.sasl_socket.empty();
  // POP-before-SMTP: a policy service (postfix_pop_before_smtp_policy.sh) answers OK for a client
  // address with a recent POP3 login, DUNNO otherwise. Not check_client_access on a map the login
  // script rewrites: each smtpd process opens its maps once (a texthash map is read into memory, a
  // hash map needs postmap and a process restart to be seen) and map entries cannot expire.
  std::string pop_before_smtp =
      o.pop_before_smtp_directory.empty() ? "" : "check_policy_service unix:private/popb4smtp, ";
  std::string submission_relay = "permit_sasl_authenticated, " + pop_before_smtp + "reject";
  std::string smtp_relay = "permit_sasl_authenticated, " + pop_before_smtp + "reject_unauth_destination";
  // Relay mode: mail goes on to relay_host through smtp(8); loopback clients relay without AUTH.
  bool relay = !o.relay_host.empty();
  std::string transport = relay ? "smtp" : "herald";
  std::string my_networks = !relay ? "" : o.host.find(':') != std::string::npos ? "[::1]/128" : "127.0.0.0/8";
  if (relay) smtp_relay = "permit_mynetworks, " + smtp_relay;
  // Refused recipients: a texthash map is read by each smtpd process when it starts, which is
  // enough for a map written once before Postfix starts.
  std::string recipient_restrictions;
  if (!o.rejected_recipients.empty()) {
    std::string map;
    for (const auto& [address, reply] : o.rejected_recipients) map += address + " " + reply + "\n";
    HERALD_RETURN_IF_ERROR(WriteTextFile(config_dir_ + "/rejected_recipients", map));
    recipient_restrictions = " check_recipient_access texthash:" + config_dir_ + "/rejected_recipients";
  }

  std::string main_cf =
      "# Written by herald's PostfixServer (tests/servers/postfix_server.cc) for one test.\n"
      "compatibility_level = 3.6\n"
      "queue_directory = " + queue_dir_ + "\n"
      "data_directory = " + o.directory + "/data\n"
      "mail_owner = postfix\n"
      "setgid_group = postdrop\n"
      "maillog_file = " + log_file_ + "\n"
      "maillog_file_prefixes = " + o.directory + "\n"
      "myhostname = " + o.hostname + "\n"
      "mydomain = herald.test\n"
      "myorigin = $mydomain\n"
      "inet_interfaces = " + o.host + "\n"
      "inet_protocols = " + (o.host.find(':') != std::string::npos ? "ipv6" : "ipv4") + "\n"
      // No local domains, no trusted networks (but loopback in relay mode), no aliases: every
      // recipient is remote, relayed only as the restrictions below allow, and delivered by the
      // herald transport (by smtp(8) to relay_host in relay mode).
      "mydestination =\n"
      "mynetworks = " + my_networks + "\n"
      "relay_domains =\n"
      "alias_maps =\n"
      "alias_database =\n"
      "local_recipient_maps =\n"
      // Leave the client's headers alone (no added Message-ID, Date, From, To).
      "local_header_rewrite_clients =\n"
      "always_add_missing_headers = no\n"
      "biff = no\n"
      "smtputf8_enable = yes\n"
      "message_size_limit = " + std::to_string(o.message_size_limit) + "\n"
      "mailbox_size_limit = 0\n"
      "default_transport = " + transport + "\n"
      "relay_transport = " + transport + "\n"
      "local_transport = herald\n"
      "virtual_transport = herald\n"
      "herald_destination_recipient_limit = 1\n"
      "queue_run_delay = 1s\n"
      "minimal_backoff_time = 1s\n"
      "maximal_backoff_time = 5s\n"
      // Quick tests: no tar-pitting after errors.
      "smtpd_error_sleep_time = 0\n"
      "smtpd_soft_error_limit = 100\n"
      "smtpd_hard_error_limit = 100\n"
      "smtpd_banner = $myhostname ESMTP Postfix\n"
      "smtpd_client_restrictions =\n"
      "smtpd_recipient_restrictions =" + recipient_restrictions + "\n"
      "herald_submission_relay = " + submission_relay + "\n"
      "herald_smtp_relay = " + smtp_relay + "\n"
      "smtpd_relay_restrictions = $herald_smtp_relay\n"
      "smtpd_tls_security_level = " + (tls ? "may" : "none") + "\n"
      "smtpd_tls_loglevel = 1\n"
      "smtpd_tls_auth_only = " + (tls ? "yes" : "no") + "\n";
  if (tls) {
    main_cf += "smtpd_tls_cert_file = " + o.tls.certificate + "\n"
               "smtpd_tls_key_file = " + o.tls.key + "\n";
  }
  if (relay) {
    std::string connections = std::to_string(o.relay_connections);
    main_cf += "relayhost = " + o.relay_host + "\n"
               "smtp_tls_security_level = none\n"
               "default_destination_concurrency_limit = " + connections + "\n"
               "smtp_destination_concurrency_limit = " + connections + "\n";
  }
  if (sasl) {
    main_cf += "smtpd_sasl_type = dovecot\n"
               "smtpd_sasl_path = " + o.sasl_socket + "\n";
  }
  std::string auth = sasl ? "yes" : "no";

  std::string master_cf =
      "# Written by herald's PostfixServer (tests/servers/postfix_server.cc) for one test.\n"
      "# service type  private unpriv  chroot  wakeup  maxproc command + args\n";
  if (submission_port_ != kNoPort) {
    master_cf += Endpoint(o.host, submission_port_) + " inet n - n - - smtpd\n"
                 "  -o syslog_name=postfix/submission\n"
                 "  -o smtpd_tls_security_level=encrypt\n"
                 "  -o smtpd_sasl_auth_enable=" + auth + "\n"
                 "  -o smtpd_relay_restrictions=$herald_submission_relay\n";
  }
  if (smtps_port_ != kNoPort) {
    master_cf += Endpoint(o.host, smtps_port_) + " inet n - n - - smtpd\n"
                 "  -o syslog_name=postfix/smtps\n"
                 "  -o smtpd_tls_wrappermode=yes\n"
                 "  -o smtpd_sasl_auth_enable=" + auth + "\n"
                 "  -o smtpd_relay_restrictions=$herald_submission_relay\n";
  }
  if (smtp_port_ != kNoPort) {
    master_cf += Endpoint(o.host, smtp_port_) + " inet n - n - - smtpd\n"
                 "  -o smtpd_sasl_auth_enable=" + auth + "\n";
  }
  master_cf +=
      "pickup    unix  n - n 60 1 pickup\n"
      "cleanup   unix  n - n - 0 cleanup\n"
      "qmgr      unix  n - n 300 1 qmgr\n"
      "tlsmgr    unix  - - n 1000? 1 tlsmgr\n"
      "rewrite   unix  - - n - - trivial-rewrite\n"
      "bounce    unix  - - n - 0 bounce\n"
      "defer     unix  - - n - 0 bounce\n"
      "trace     unix  - - n - 0 bounce\n"
      "verify    unix  - - n - 1 verify\n"
      "flush     unix  n - n 1000? 0 flush\n"
      "proxymap  unix  - - n - - proxymap\n"
      "proxywrite unix - - n - 1 proxymap\n"
      "smtp      unix  - - n - - smtp\n"
      "relay     unix  - - n - - smtp\n"
      "showq     unix  n - n - - showq\n"
      "error     unix  - - n - - error\n"
      "retry     unix  - - n - - error\n"
      "discard   unix  - - n - - discard\n"
      "anvil     unix  - - n - 1 anvil\n"
      "scache    unix  - - n - 1 scache\n"
      "postlog   unix-dgram n - n - 1 postlogd\n"
      "herald    unix  - n n - - pipe\n"
      "  user=nobody null_sender= argv=/bin/sh " + bin_dir_ + "/postfix_deliver.sh " + mail_dir_ +
      " ${sender} ${recipient}\n";
  if (!o.pop_before_smtp_directory.empty()) {
    master_cf += "popb4smtp unix  - n n - 0 spawn\n"
                 "  user=nobody argv=/bin/sh " + bin_dir_ + "/postfix_pop_before_smtp_policy.sh " +
                 o.pop_before_smtp_directory + " " +
                 std::to_string(o.pop_before_smtp_ttl.count()) + "\n";
  }
  for (const auto& [name, text] : {std::pair{"main.cf", &main_cf}, std::pair{"master.cf", &master_cf}}) {
    std::string path = config_dir_ + "/" + name;
    HERALD_RETURN_IF_ERROR(WriteTextFile(path, *text));
    // Postfix programs wait (up to a second, at every start of every daemon) while a configuration
    // file looks like it is still being edited, i.e. its modification time is not in the past.
    struct timespec times[2] = {{time(nullptr) - 10, 0}, {time(nullptr) - 10, 0}};
    if (utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) return IoError("cannot set the time of " + path);
  }
  return Status::Ok();
}

void PostfixServer::Stop() {
  master_.Stop();
  KillProcessesMentioning(options_.directory + "/");
}

std::string PostfixServer::MailFolder(std::string_view recipient) const {
  std::string folder(recipient);
  std::replace(folder.begin(), folder.end(), '/', '_');
  return mail_dir_ + "/" + folder;
}

std::vector<DeliveredMessage> PostfixServer::Delivered(std::string_view recipient) const {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(MailFolder(recipient), error)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".eml") && !name.starts_with(".")) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<DeliveredMessage> messages;
  for (const auto& file : files) {
    DeliveredMessage message;
    message.path = file;
    message.data = ReadTextFile(file);
    std::vector<std::string> envelope =
        Lines(ReadTextFile(file.substr(0, file.size() - 4) + ".envelope"));
    if (envelope.size() >= 2) {
      message.sender = envelope[0];
      message.recipient = envelope[1];
    } else {
      message.recipient = std::string(recipient);
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

std::vector<DeliveredMessage> PostfixServer::AllDelivered() const {
  std::vector<DeliveredMessage> all;
  std::error_code error;
  std::vector<std::string> folders;
  for (const auto& entry : fs::directory_iterator(mail_dir_, error)) {
    if (entry.is_directory()) folders.push_back(entry.path().filename().string());
  }
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders) {
    for (auto& message : Delivered(folder)) all.push_back(std::move(message));
  }
  return all;
}

Result<std::vector<DeliveredMessage>> PostfixServer::WaitForDelivered(std::string_view recipient,
                                                                      size_t count,
                                                                      milliseconds timeout) const {
  std::vector<DeliveredMessage> messages;
  bool done = WaitUntil(
      [&] {
        messages = Delivered(recipient);
        return messages.size() >= count;
      },
      timeout);
  if (!done) {
    return Status(StatusCode::kUnavailable,
                  std::to_string(messages.size()) + " of " + std::to_string(count) +
                      " messages delivered to <" + std::string(recipient) + "> within " +
                      std::to_string(timeout.count()) + " ms\n" + Log());
  }
  return messages;
}

std::string PostfixServer::Log() const {
  return "--- Postfix log (" + log_file_ + ") ---\n" + LogTail(log_file_) +
         "\n--- Postfix master output ---\n" + LogTail(output_file_, 2000);
}

}  // namespace herald::test_servers
