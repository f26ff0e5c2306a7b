#include "servers/server_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace herald::test_servers {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ErrnoText(int error) { return std::strerror(error); }

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// The process group of `pid` and whether it is a zombie, from /proc/<pid>/stat.
bool ReadProcStat(pid_t pid, pid_t* group, bool* zombie) {
  const std::string stat = ReadTextFile("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(stat.substr(close + 1));
  char state = 0;
  pid_t parent = 0;
  fields >> state >> parent >> *group;
  *zombie = state == 'Z';
  return static_cast<bool>(fields);
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && pid > 0) pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return pids;
}

// True while a live (not zombie) process other than a reaped leader is in process group `group`.
bool GroupHasLiveMembers(pid_t group) {
  for (pid_t pid : AllPids()) {
    pid_t member_group = 0;
    bool zombie = false;
    if (ReadProcStat(pid, &member_group, &zombie) && member_group == group && !zombie) return true;
  }
  return false;
}

struct UserIds {
  uid_t uid;
  gid_t gid;
};

Result<UserIds> LookUpUser(const std::string& name) {
  struct passwd entry;
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return NotFound("no user '" + name + "' on this machine");
  }
  return UserIds{found->pw_uid, found->pw_gid};
}

Result<gid_t> LookUpGroup(const std::string& name) {
  struct group entry;
  struct group* found = nullptr;
  std::vector<char> buffer(16384);
  if (getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return NotFound("no group '" + name + "' on this machine");
  }
  return found->gr_gid;
}

// In a forked child: everything above fd 2 closes at exec (the exec-error pipe included).
void MarkDescriptorsCloseOnExec() {
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  long max_fd = sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > 65536) max_fd = 65536;
  for (int fd = 3; fd < max_fd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

// In a forked child: default dispositions and an empty signal mask, as a fresh program expects.
void ResetSignals() {
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
    sigaction(signal_number, &default_action, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

std::vector<std::string> EnvironmentWith(const std::vector<std::string>& extra) {
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    std::string_view text(*variable);
    std::string_view name = text.substr(0, text.find('='));
    bool overridden = false;
    for (const auto& replacement : extra) {
      if (replacement.compare(0, name.size() + 1, std::string(name) + "=") == 0) overridden = true;
    }
    if (!overridden) environment.emplace_back(text);
  }
  environment.insert(environment.end(), extra.begin(), extra.end());
  return environment;
}

}  // namespace

Status ServerProcess::Start(ProcessOptions options) {
  if (pid_ > 0) return Internal("ServerProcess::Start: already running (pid " + std::to_string(pid_) + ")");
  if (options.argv.empty()) return InvalidArgument("ServerProcess::Start: no program");

  // Everything the child needs is prepared before fork(): after it, only async-signal-safe calls.
  std::optional<UserIds> ids;
  if (!options.user.empty()) {
    auto found = LookUpUser(options.user);
    if (!found.ok()) return found.status();
    ids = *found;
  }
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> environment = EnvironmentWith(options.environment);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(environment);

  int log_fd = open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return IoError("cannot open " + options.log_file + ": " + ErrnoText(errno));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_error[2];
  if (null_fd < 0 || pipe2(exec_error, O_CLOEXEC) != 0) {
    int error = errno;
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return IoError("cannot prepare to start " + options.argv[0] + ": " + ErrnoText(error));
  }
  pid_t parent = getpid();
  pid_t child = fork();
  if (child == 0) {
    setsid();  // its own session and process group: Stop() signals the whole group
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    ResetSignals();
    int error = 0;
    if (chdir(options.working_directory.c_str()) != 0) error = errno;
    if (error == 0 && ids) {
      if (setgroups(1, &ids->gid) != 0 || setgid(ids->gid) != 0 || setuid(ids->uid) != 0) error = errno;
    }
    // After any change of user (which clears it): the server ends when the test process does.
    if (error == 0 && prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) error = errno;
    if (error == 0 && getppid() != parent) _exit(127);
    if (error == 0) {
      MarkDescriptorsCloseOnExec();
      execve(argv[0], argv.data(), envp.data());
      error = errno;
    }
    ssize_t ignored = write(exec_error[1], &error, sizeof error);
    (void)ignored;
    _exit(127);
  }
  int fork_error = errno;
  close(log_fd);
  close(null_fd);
  close(exec_error[1]);
  if (child < 0) {
    close(exec_error[0]);
    return IoError("fork failed: " + ErrnoText(fork_error));
  }
  int child_error = 0;
  ssize_t got;
  do {
    got = read(exec_error[0], &child_error, sizeof child_error);
  } while (got < 0 && errno == EINTR);
  close(exec_error[0]);
  pid_ = child;
  wait_status_.reset();
  if (got > 0) {
    Stop();
    return Status(StatusCode::kFailedPrecondition,
                  "cannot execute " + options.argv[0] + ": " + ErrnoText(child_error));
  }
  StartWatchdog();
  return Status::Ok();
}

void ServerProcess::StartWatchdog() {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return;  // best effort: Stop() still works without it
  pid_t group = pid_;
  pid_t watchdog = fork();
  if (watchdog == 0) {
    // A session of its own: signals to the test's process group (Ctrl-C, a runner killing the
    // group) do not reach it. Only async-signal-safe calls from here on.
    setsid();
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    for (int signal_number : {SIGINT, SIGHUP, SIGQUIT, SIGTERM, SIGPIPE}) {
      sigaction(signal_number, &ignore, nullptr);
    }
    // Hold nothing but the read end: other watchdogs' pipes must see their end-of-file too.
    if (ends[0] != 3) dup2(ends[0], 3);
    if (close_range(4, ~0U, 0) != 0) {
      for (int fd = 4; fd < 65536; ++fd) close(fd);
    }
    char byte;
    while (true) {
      ssize_t got = read(3, &byte, 1);
      if (got == 0 || (got < 0 && errno != EINTR)) break;
    }
    kill(-group, SIGTERM);
    struct timespec grace = {2, 0};
    nanosleep(&grace, nullptr);
    kill(-group, SIGKILL);
    _exit(0);
  }
  close(ends[0]);
  if (watchdog < 0) {
    close(ends[1]);
    return;
  }
  watchdog_pid_ = watchdog;
  watchdog_pipe_ = ends[1];
}

void ServerProcess::StopWatchdog() {
  if (watchdog_pid_ > 0) {
    kill(watchdog_pid_, SIGKILL);
    waitpid(watchdog_pid_, nullptr, 0);
    watchdog_pid_ = -1;
  }
  if (watchdog_pipe_ >= 0) {
    close(watchdog_pipe_);
    watchdog_pipe_ = -1;
  }
}

bool ServerProcess::Running() {
  if (pid_ <= 0 || wait_status_) return false;
  int status = 0;
  pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    wait_status_ = status;
    return false;
  }
  return done == 0;
}

void ServerProcess::Stop(milliseconds grace) {
  StopWatchdog();
  if (pid_ <= 0) return;
  auto group_done = [&] {
    Running();  // reaps the leader when it has exited
    return wait_status_.has_value() && !GroupHasLiveMembers(pid_);
  };
  // The group id is the leader's pid; it cannot be reused while the leader is unreaped or any
  // member lives, so the group is only signalled while one of them is there.
  if (!group_done()) {
    kill(-pid_, SIGTERM);
    if (!WaitUntil(group_done, grace)) {
      kill(-pid_, SIGKILL);
      WaitUntil(group_done, milliseconds(2000));
    }
  }
  if (!wait_status_) {
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) wait_status_ = status;
  }
  pid_ = -1;
}

std::string ServerProcess::ExitDescription() const {
  if (!wait_status_) return "running";
  if (WIFEXITED(*wait_status_)) return "exited with status " + std::to_string(WEXITSTATUS(*wait_status_));
  if (WIFSIGNALED(*wait_status_)) return "killed by signal " + std::to_string(WTERMSIG(*wait_status_));
  return "ended";
}

namespace {

struct SocketAddress {
  sockaddr_storage storage = {};
  socklen_t length = 0;
};

Result<SocketAddress> ParseAddress(const std::string& host, int port) {
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof *v6;
  } else {
    return InvalidArgument("not an IP address: '" + host + "'");
  }
  return address;
}

// One attempt: connect within `timeout_ms` and, if asked, read a first line starting with `prefix`.
bool ConnectAndGreet(const SocketAddress& address, std::string_view prefix, int timeout_ms,
                     std::string* line) {
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = false;
  auto deadline = Clock::now() + milliseconds(timeout_ms);
  int result = connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length);
  if (result != 0 && errno == EINPROGRESS) {
    pollfd waiting = {fd, POLLOUT, 0};
    int error = 0;
    socklen_t size = sizeof error;
    if (poll(&waiting, 1, RemainingMs(deadline)) == 1 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0) {
      result = 0;
    }
  }
  if (result == 0) {
    ok = prefix.empty();
    while (!ok) {
      pollfd waiting = {fd, POLLIN, 0};
      if (poll(&waiting, 1, RemainingMs(deadline)) != 1) break;
      char buffer[512];
      ssize_t got = read(fd, buffer, sizeof buffer);
      if (got <= 0) break;
      line->append(buffer, static_cast<size_t>(got));
      if (line->find('\n') != std::string::npos || line->size() >= prefix.size()) {
        ok = line->compare(0, prefix.size(), prefix) == 0;
        break;
      }
    }
  }
  close(fd);
  return ok;
}

}  // namespace

Result<int> PickFreePort(const std::string& host) {
  auto address = ParseAddress(host, 0);
  if (!address.ok()) return address.status();
  int fd = socket(address->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return IoError("socket: " + ErrnoText(errno));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address->storage), address->length) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address->storage), &address->length) != 0) {
    int error = errno;
    close(fd);
    return IoError("cannot bind a free port on " + host + ": " + ErrnoText(error));
  }
  close(fd);
  const auto& storage = address->storage;
  return storage.ss_family == AF_INET
             ? ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port)
             : ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
}

Status WaitForListener(const std::string& host, int port, std::string_view greeting_prefix,
                       milliseconds timeout, ServerProcess* process) {
  auto address = ParseAddress(host, port);
  if (!address.ok()) return address.status();
  auto deadline = Clock::now() + timeout;
  std::string last_line;
  while (true) {
    if (process != nullptr && !process->Running()) {
      return Status(StatusCode::kUnavailable, "the server " + process->ExitDescription() +
                                                  " before " + host + ":" + std::to_string(port) +
                                                  " answered");
    }
    std::string line;
    if (ConnectAndGreet(*address, greeting_prefix, std::min(RemainingMs(deadline), 2000), &line)) {
      return Status::Ok();
    }
    if (!line.empty()) last_line = line;
    if (Clock::now() >= deadline) {
      std::string what = greeting_prefix.empty()
                             ? "accept a connection"
                             : "greet with '" + std::string(greeting_prefix) + "'";
      if (!last_line.empty()) what += " (last greeting: '" + last_line.substr(0, 200) + "')";
      return Status(StatusCode::kUnavailable,
                    host + ":" + std::to_string(port) + " did not " + what + " within " +
                        std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Status RetryOnPortCollision(const std::function<Status()>& attempt, int attempts) {
  Status status;
  for (int i = 0; i < attempts; ++i) {
    status = attempt();
    if (status.ok() || status.message().find("in use") == std::string::npos) return status;
  }
  return status;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, milliseconds timeout,
                                 std::string_view input) {
  if (argv.empty()) return InvalidArgument("RunCommand: no program");
  std::vector<std::string> argv_strings = argv;
  std::vector<char*> args = CStrings(argv_strings);
  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return IoError("pipe: " + ErrnoText(errno));
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return IoError("pipe: " + ErrnoText(errno));
  }
  pid_t child = fork();
  if (child == 0) {
    setsid();
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    dup2(from_child[1], 2);
    ResetSignals();
    MarkDescriptorsCloseOnExec();
    execvp(args[0], args.data());
    dprintf(2, "cannot execute %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  if (child < 0) {
    close(to_child[1]);
    close(from_child[0]);
    return IoError("fork: " + ErrnoText(errno));
  }
  fcntl(to_child[1], F_SETFL, O_NONBLOCK);
  CommandResult result;
  auto deadline = Clock::now() + timeout;
  size_t written = 0;
  int input_fd = to_child[1];
  if (input.empty()) {
    close(input_fd);
    input_fd = -1;
  }
  int output_fd = from_child[0];
  while (output_fd >= 0) {
    int left = RemainingMs(deadline);
    if (left == 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2] = {{output_fd, POLLIN, 0}, {input_fd, POLLOUT, 0}};
    int count = poll(fds, input_fd >= 0 ? 2 : 1, left);
    if (count < 0 && errno != EINTR) break;
    if (count <= 0) continue;
    if (fds[0].revents != 0) {
      char buffer[8192];
      ssize_t got = read(output_fd, buffer, sizeof buffer);
      if (got > 0) {
        result.output.append(buffer, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(output_fd);
        output_fd = -1;
      }
    }
    if (input_fd >= 0 && fds[1].revents != 0) {
      ssize_t put = write(input_fd, input.data() + written, input.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        close(input_fd);
        input_fd = -1;
      }
    }
  }
  if (input_fd >= 0) close(input_fd);
  if (output_fd >= 0) close(output_fd);
  auto reaped = [&](int* status) { return waitpid(child, status, WNOHANG) == child; };
  int status = 0;
  if (result.timed_out || !WaitUntil([&] { return reaped(&status); }, milliseconds(
                                         std::max(RemainingMs(deadline), 100)))) {
    result.timed_out = true;
    kill(-child, SIGKILL);
    waitpid(child, &status, 0);
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

int KillProcessesMentioning(const std::string& text) {
  if (text.empty()) return 0;
  int killed = 0;
  pid_t self = getpid();
  for (pid_t pid : AllPids()) {
    if (pid == self) continue;
    std::string command_line = ReadTextFile("/proc/" + std::to_string(pid) + "/cmdline");
    for (char& c : command_line) {
      if (c == '\0') c = ' ';
    }
    if (command_line.find(text) != std::string::npos && kill(pid, SIGKILL) == 0) ++killed;
  }
  return killed;
}

Status WriteTextFile(const std::string& path, std::string_view content, int mode) {
  std::error_code error;
  fs::create_directories(fs::path(path).parent_path(), error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out || chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return IoError("cannot write " + path + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  // Through operator<<, which turns a read error into failbit: std::filebuf throws on one, and an
  // istreambuf_iterator lets it escape (reading /proc/<pid>/cmdline of a process that exits
  // meanwhile fails with ESRCH, and ended the test binary with std::terminate).
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LogTail(const std::string& path, size_t max_bytes) {
  std::string text = ReadTextFile(path);
  if (text.empty()) return "(no log in " + path + ")";
  if (text.size() > max_bytes) {
    text = text.substr(text.size() - max_bytes);
    size_t line_start = text.find('\n');
    if (line_start != std::string::npos) text = "...\n" + text.substr(line_start + 1);
  }
  return text;
}

Status MakeDirectory(const std::string& path, int mode, const std::string& owner,
                     const std::string& group) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) return IoError("cannot create " + path + ": " + error.message());
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return IoError("cannot chmod " + path + ": " + ErrnoText(errno));
  }
  if (owner.empty() && group.empty()) return Status::Ok();
  return ChangeOwner(path, owner, group);
}

Status ChangeOwner(const std::string& path, const std::string& owner, const std::string& group) {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (!owner.empty()) {
    auto ids = LookUpUser(owner);
    if (!ids.ok()) return ids.status();
    uid = ids->uid;
    gid = ids->gid;
  }
  if (!group.empty()) {
    auto found = LookUpGroup(group);
    if (!found.ok()) return found.status();
    gid = *found;
  }
  if (chown(path.c_str(), uid, gid) != 0) {
    return IoError("cannot chown " + path + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

Status MakeReachableByServers(const std::string& path) {
  std::error_code error;
  fs::path target = fs::canonical(path, error);
  if (error) return IoError("cannot resolve " + path + ": " + error.message());
  fs::path temp = fs::canonical(fs::temp_directory_path(), error);
  if (error) return IoError("cannot resolve the temporary directory: " + error.message());
  for (fs::path folder = target;; folder = folder.parent_path()) {
    struct stat info;
    if (stat(folder.c_str(), &info) != 0) return IoError("cannot stat " + folder.string());
    if ((info.st_mode & S_IXOTH) == 0) {
      std::string text = folder.string();
      bool inside_temp = text.size() > temp.string().size() &&
                         text.compare(0, temp.string().size() + 1, temp.string() + "/") == 0;
      if (!inside_temp) {
        return Status(StatusCode::kFailedPrecondition,
                      folder.string() + " is not searchable by other users, so the servers' "
                      "unprivileged processes cannot reach " + path +
                      "; use a folder under the temporary directory");
      }
      if (chmod(folder.c_str(), (info.st_mode & 07777) | S_IXOTH) != 0) {
        return IoError("cannot chmod " + folder.string() + ": " + ErrnoText(errno));
      }
    }
    if (folder == folder.root_path()) break;
  }
  return Status::Ok();
}

std::string ServersSourceDirectory() { return HERALD_TEST_SERVERS_DIR; }

}  // namespace herald::test_servers
