// The `herald` command line: send, check, preview, status, export, cancel, resume, test-account.
// Parses arguments (CLI11), loads configuration, runs the engine and reports — a live progress
// line on a terminal, plain log lines otherwise, and a summary. The concrete store and transports
// come from main.cc.
//
// Exit codes (of `herald send`; each command's --help says what they mean for it):
//   0  done: every recipient handled, none failed or waiting
//   1  herald itself failed (a bug or an unexpected system error)
//   2  the command line is wrong
//   3  the configuration, task, recipient list or store cannot be used; nothing was sent
//   4  the run finished, but some recipients failed or wait for a retry, or rows of the recipient
//      list were rejected (see `herald status`)
//   5  the run stopped early: interrupted, or a fault (store, disk) — run it again to go on
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "engine/transport_factory.h"
#include "store/store.h"

namespace herald {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,
  kExitUsage = 2,
  kExitConfig = 3,
  kExitIncomplete = 4,
  kExitStopped = 5,
};

// Whether a command may create the store it opens: only `herald send` does. The others read or
// change what is there, and say so when there is no store.
enum class StoreOpening { kCreateIfMissing, kExistingOnly };

// What main.cc chooses.
struct CliDependencies {
  // Errors: kNotFound when there is no store and `opening` is kExistingOnly.
  std::function<Result<std::unique_ptr<Store>>(const std::string& path, StoreOpening opening)> open_store;
  TransportFactory* transports = nullptr;
  const Clock* clock = nullptr;
};

int RunCli(int argc, char** argv, const CliDependencies& dependencies);

}  // namespace herald
