// Running a sending task: the engine's entry point. RunTask() brings the store up to date with
// the task (creates it, imports the recipient list when it is new or changed, puts recipients
// that were in flight when a run stopped abruptly back as possible duplicates, marks those on the
// blacklists), waits out the pending delay, then sends every due recipient — routed to an
// account by its rules, paced by its minimum wait and sending limits and the task's blocks and
// limit, composed, delivered through the account's transport (its secondary when it fails as a
// whole), backed up — with `concurrency` sends at once, and records each result as it comes.
// It keeps going while anything is due, including retries that fall due during the run.
// An account that fails as a whole (cannot connect, TLS or AUTH refused, 421 at the greeting, the
// client or sender refused) is the account's fault, not the recipients': they go down its chain
// of secondaries, or with none left wait for the next run without an attempt counted. A direct
// account's destination that cannot be reached for now or refuses this sending host by policy
// hands its recipients to the account's secondary the same way.
//
// RunTask() blocks the calling thread and runs its own event loop; the observer is called on
// that thread. A stop request (Ctrl-C when handle_signals is set) lets the sends under way finish
// and takes nothing new; a second one abandons them (they stay in flight, and the next run puts
// them back as possible duplicates). Nothing is ever lost.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/account_config.h"
#include "config/task_config.h"
#include "core/clock.h"
#include "core/status.h"
#include "engine/recipient_import.h"
#include "engine/sleeper.h"
#include "engine/transport_factory.h"
#include "store/store.h"

namespace herald {

struct RunProgress {
  std::uint64_t total = 0;      // recipients of the task
  std::uint64_t sent = 0;       // sent, over all runs
  std::uint64_t failed = 0;     // failed, over all runs
  std::uint64_t deferred = 0;   // waiting for a retry
  std::uint64_t remaining = 0;  // unsent or in flight
  std::uint64_t sent_this_run = 0;
  // Spent sending in this run: since sending started, less the waits told through OnWaiting()
  // (so the rate does not sink while the run waits).
  Duration elapsed{0};
  TimePoint now{};  // the engine's clock when this was taken
  // While sending pauses (the pending delay, a block pause, an account's sending limit): until
  // when, and what for in a few words ("the sending limit of 200/hour of account \"relay\"").
  std::optional<TimePoint> waiting_until;
  std::string waiting_for;
};

// What happened to one recipient in this run.
struct RecipientEvent {
  const RecipientRecord& recipient;
  const AttemptResult& result;
  std::string_view account;
  // Deferred because `account` failed as a whole and no secondary is left: the recipient waits
  // for the account to be fixed (said once per account, see RunReport::waiting_for_accounts).
  bool waits_for_account = false;
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void OnImport(const ImportReport&) {}
  virtual void OnRecovered(std::size_t /*possible_duplicates*/) {}
  virtual void OnResult(const RecipientEvent&) {}
  // Called about every 200 ms while sending, and once at the end.
  virtual void OnProgress(const RunProgress&) {}
  // Something the user should know that does not stop the run (e.g. a backup problem).
  virtual void OnWarning(std::string_view) {}
  // Sending pauses until `until`, and why: the pending delay, a block pause, an account's
  // sending limit. Said once per pause. (An account's minimum wait, between every two
  // messages, is not announced.)
  virtual void OnWaiting(std::string_view /*why*/, TimePoint /*until*/) {}
  // Recipients found on the task's blacklists before the run and marked blacklisted.
  virtual void OnBlacklisted(std::size_t) {}
};

struct RunOptions {
  bool handle_signals = false;  // stop cleanly on SIGINT / SIGTERM
  // How to wait for a time (minimum waits, pauses, limits, the pending delay); null: really wait.
  Sleeper* sleeper = nullptr;
  // Go on with the mailing stored under the task's id even when the task file now describes
  // another mailing (task_sync.h); otherwise such a run is refused before anything is sent.
  bool accept_changes = false;
};

// Recipients that wait for an account that failed as a whole in this run (AUTH refused, TLS
// refused, cannot connect, ...) and had no secondary left: deferred without an attempt, due again
// at once for the next run — run the same command again once the account is fixed.
struct AccountWait {
  std::string account;
  std::string cause;  // "AUTH: 535 5.7.8 authentication failed"
  std::uint64_t recipients = 0;
};

struct RunReport {
  std::optional<ImportReport> import;  // set when the recipient list was (re)imported
  std::size_t recovered_in_flight = 0;
  std::size_t blacklisted = 0;  // found on the blacklists in this run
  std::uint64_t sent = 0;       // in this run
  std::uint64_t failed = 0;     // in this run
  std::uint64_t deferred = 0;   // in this run
  StatusCounts counts;          // the task's recipients at the end
  std::optional<TimePoint> next_attempt_at;
  bool interrupted = false;     // stopped on request before the end
  bool task_limit_reached = false;  // sending.limit messages were sent; the rest waits for the next run
  // An account's sending limit stopped the run (sending.on_limit = "stop"): which, until when.
  std::string limit_stop;
  std::vector<AccountWait> waiting_for_accounts;  // in the order the accounts failed
  Status stopped_by;            // a fault that stopped the run early (store, disk), or ok
};

// Runs `task`. Errors are problems with the task itself found before sending (templates,
// recipient list, accounts, store); a fault during sending ends the run with the results so far
// and RunReport::stopped_by set.
Result<RunReport> RunTask(const TaskConfig& task, const AccountSet& accounts, Store& store, const Clock& clock,
                          TransportFactory& transports, RunObserver& observer, RunOptions options = {});

}  // namespace herald
