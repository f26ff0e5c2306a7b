// ServerProcess and helpers: run a real server program (Postfix, Dovecot, aiosmtpd, smtp-sink) for an
// integration test — in a session and process group of its own, its output appended to a log file,
// stopped by its process id (the whole group), with every wait bounded in time.
//
// If the test process dies without stopping it (a crash, SIGKILL, a ctest timeout), a small watchdog
// process forked beside each server notices (its pipe from the test process reaches end-of-file)
// and stops the server's process group, so nothing outlives the test by more than a few seconds.
//
// Threading: a ServerProcess belongs to the thread that started it. The free functions are safe
// from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace herald::test_servers {

using std::chrono::milliseconds;

struct ProcessOptions {
  std::vector<std::string> argv;        // argv[0]: an absolute path
  std::string log_file;                 // stdout and stderr are appended here (created 0644)
  std::string working_directory = "/";
  std::string user;                     // empty: keep the current user; else run as this user
  std::vector<std::string> environment; // added to the inherited environment, "NAME=value"
};

class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Forks and executes options.argv. Errors: the program could not be executed (not found, not
  // permitted), with the reason. Precondition: not running.
  Status Start(ProcessOptions options);

  // Sends SIGTERM to the process group, waits up to `grace` for the group to end, then SIGKILLs
  // what is left and reaps the leader (and ends the watchdog). Safe to call when not running.
  void Stop(milliseconds grace = milliseconds(3000));

  // True while the started process has not exited (reaps it when it has).
  bool Running();
  pid_t pid() const { return pid_; }
  // "exited with status N" / "killed by signal N" once the process has been reaped, else "running".
  std::string ExitDescription() const;

 private:
  void StartWatchdog();
  void StopWatchdog();

  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  pid_t watchdog_pid_ = -1;
  int watchdog_pipe_ = -1;  // the write end; the watchdog waits for its end-of-file
};

// A TCP port on `host` (an IP address) that was free a moment ago: bound with port 0, read, closed.
// Another process may take it before the server binds it; servers retry with a new port then.
Result<int> PickFreePort(const std::string& host);

// Waits until host:port accepts a TCP connection and, when `greeting_prefix` is not empty, sends a
// first line beginning with it. Fails after `timeout`, or at once when `process` (if given) exits.
Status WaitForListener(const std::string& host, int port, std::string_view greeting_prefix,
                       milliseconds timeout, ServerProcess* process);

// Runs `attempt` up to `attempts` times while it fails because an address was already in use: a
// port PickFreePort found free was taken by another process before the server bound it. `attempt`
// picks its free ports anew each time.
Status RetryOnPortCollision(const std::function<Status()>& attempt, int attempts = 3);

// Polls `condition` every 20 ms until it is true or `timeout` has passed; returns its last value.
template <typename Condition>
bool WaitUntil(Condition condition, milliseconds timeout);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal (including the timeout)
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved
};

// Runs a program (argv[0] an absolute path, or a name looked up on PATH) to completion with `input`
// on its stdin. Kills it (and its process group) after `timeout`. Errors: it could not be started.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, milliseconds timeout,
                                 std::string_view input = {});

// Kills (SIGKILL, by pid) every process whose command line mentions `text`, e.g. a server's own
// temporary directory: the last sweep after a server stopped, for helpers it spawned in sessions of
// their own. Returns how many were killed.
int KillProcessesMentioning(const std::string& text);

// File helpers for configuration files and results.
Status WriteTextFile(const std::string& path, std::string_view content, int mode = 0644);
std::string ReadTextFile(const std::string& path);  // "" when unreadable
// The last `max_bytes` of a log file, for error messages ("(no log)" when empty or missing).
std::string LogTail(const std::string& path, size_t max_bytes = 6000);
// Creates `path` (and parents) and sets its mode and owner ("" keeps root).
Status MakeDirectory(const std::string& path, int mode, const std::string& owner = "",
                     const std::string& group = "");
// Sets the owner (and the group: `group`, else the owner's) of `path` by user and group name.
Status ChangeOwner(const std::string& path, const std::string& owner, const std::string& group = "");
// Server daemons run as unprivileged users: gives "others" search permission on the ancestors of
// `path` inside the temporary directory (a test's mkdtemp folder is 0700). Fails when an ancestor
// outside it is not searchable, rather than changing system folders.
Status MakeReachableByServers(const std::string& path);

// The folder holding this library's scripts (tests/servers in the source tree).
std::string ServersSourceDirectory();

template <typename Condition>
bool WaitUntil(Condition condition, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(milliseconds(20));
  }
}

}  // namespace herald::test_servers
