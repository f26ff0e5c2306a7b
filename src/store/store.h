// The Store: herald's memory of every sending task and every recipient's fate. Everything the
// delivery guarantees promise (docs/design.md) rests on it: a recipient's state moves
// unsent -> in-flight -> sent | failed | deferred, `in-flight` is written before MAIL FROM and the
// result right after the reply, and after a crash in-flight rows are put back as possible
// duplicates. It also keeps the per-account send counters and enforces the accounts' sending
// limits when recipients are put in flight (see "Sending limits" below).
//
// Implementations: SqliteStore (embedded, default). A Store object is used by one thread at a
// time; several processes may open the same store (the implementation serialises them).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/units.h"

namespace herald {

enum class RecipientStatus : int {
  kUnsent = 0,
  kInFlight = 1,
  kSent = 2,
  kFailed = 3,
  kDeferred = 4,     // a temporary failure; tried again at next_attempt_at
  kBlacklisted = 5,  // matched a blacklist before the run; never sent
  kCancelled = 6,    // withdrawn by `herald cancel` before it was sent
  kRejected = 7,     // a row of the recipient list that cannot be a recipient (why: last_error); never sent
};
inline constexpr std::size_t kRecipientStatusCount = 8;

// "unsent", "in-flight", "sent", "failed", "deferred", "blacklisted", "cancelled", "rejected".
std::string_view RecipientStatusName(RecipientStatus status);
std::optional<RecipientStatus> ParseRecipientStatus(std::string_view name);

struct TaskRecord {
  std::string id;                    // the task's id, unique in the store
  std::string title;
  std::vector<std::string> columns;  // the recipient list's header; order of RecipientRecord::fields
  TimePoint submitted_at;            // when the task was first stored (its first run); the pending delay counts from it
  std::string source_digest;         // digest of the recipient file last imported
  std::string nonce;                 // random per task; makes Message-IDs unique across tasks
  // What the task's mailing is, as of its last run (RecordTaskRun). Empty, and last_run_at
  // none, for a task stored by a herald that did not record them, until its next run.
  std::string task_file;             // the task file, as its runs name it (the engine chooses the form)
  std::string fingerprint;           // what makes the mailing (sender, subject, bodies, ...), opaque to the store
  std::optional<TimePoint> last_run_at;
};

// What a run records about its task (Store::RecordTaskRun).
struct TaskRun {
  std::string title;
  std::string task_file;
  std::string fingerprint;
  TimePoint at;  // when the run started
};

// The last error of a recipient, as precise as the server gave it.
struct DeliveryError {
  int reply_code = 0;           // SMTP reply code; 0 when there was none (e.g. connection refused)
  std::string enhanced_status;  // RFC 3463 "5.1.1"; empty when none
  std::string text;             // the server's text or herald's own reason

  bool empty() const { return reply_code == 0 && enhanced_status.empty() && text.empty(); }
  friend bool operator==(const DeliveryError&, const DeliveryError&) = default;
};

struct RecipientRecord {
  std::int64_t id = 0;                  // unique in the store, increasing in import order
  std::string address;                  // normalised (Address::ToString())
  std::vector<std::string> fields;      // one value per TaskRecord::columns (none: see RejectedRow::fields)
  std::size_t line = 0;                 // line in the recipient file it came from
  RecipientStatus status = RecipientStatus::kUnsent;
  int attempts = 0;                     // times it was put in flight
  std::optional<TimePoint> next_attempt_at;  // for kDeferred
  DeliveryError last_error;
  std::string account;                  // the account of the last attempt
  TimePoint updated_at;
  bool possible_duplicate = false;      // it was in flight when a run stopped abruptly, or an
                                        // attempt may have delivered it (AttemptResult)
};

struct NewRecipient {
  std::string address;
  std::string dedup_key;  // Address::DedupKey(); one recipient per key and task
  std::vector<std::string> fields;
  std::size_t line = 0;
};

// A row of the recipient list that cannot be a recipient (RecipientImport::Reject).
struct RejectedRow {
  std::string address;              // the address as the row gives it (printable); empty when it has none
  std::vector<std::string> fields;  // one value per TaskRecord::columns, or none when the row's cells are unusable
  std::size_t line = 0;
  std::string reason;               // why; becomes the recipient's last error
};

// The outcome of one attempt for one recipient, written by the engine.
struct AttemptResult {
  std::int64_t recipient_id = 0;
  RecipientStatus status = RecipientStatus::kSent;  // kSent, kFailed, kDeferred, kBlacklisted or kUnsent (put back)
  std::optional<TimePoint> next_attempt_at;         // required for kDeferred
  DeliveryError error;
  std::string account;
  // kDeferred without an attempt (its destination is backed off, its account failed as a
  // whole): the recipient was not put in flight, and is deferred only while it is still due
  // (kUnsent or kDeferred) — one cancelled or taken by another process meanwhile is left as it is.
  bool postponed = false;
  // The attempt may have delivered the message although it did not succeed (the connection was
  // lost after the final dot): the recipient becomes a possible duplicate, and stays one.
  bool possible_duplicate = false;
  // kDeferred for a recipient the caller put in flight whose message an account failing as a
  // whole did not take (the sender refused at MAIL FROM, a 421 closing the session): its attempt
  // is taken back (attempts - 1), so that account faults never use up a recipient's retries. Only
  // applied while the recipient is still in flight; one that is not is left as it is.
  bool withdrawn = false;
};

// Destination backoff. A destination of a direct account (a recipient domain) none of whose mail
// exchangers could be used — a temporary failure with Scope::kDestination — is not tried again
// before retry_at, by any run or process sharing the store: its recipients are postponed until
// then without an attempt. The delay grows with the failures in a row (the task's retry delay
// and backoff); the row goes when the destination takes a connection again.
struct DestinationBackoff {
  std::string account;
  std::string destination;
  int failures = 0;  // in a row, at least 1
  TimePoint retry_at{};
  DeliveryError error;  // the last failure
  friend bool operator==(const DestinationBackoff&, const DestinationBackoff&) = default;
};

// Sending limits. A limit "N per window" (SendingLimit) holds in every window of the window's
// fixed length, wherever it starts: no span [s, s + length) holds more than N messages through
// the account, over every task, run and process sharing the store. Lengths: minute 60 s, hour
// 60 min, day 24 h, week 7 days, month 31 days (so no calendar month exceeds a monthly limit
// either). Time is Unix time: no time zones, no daylight-saving jumps.
//
// A message is counted when its recipient is put in flight (InFlight with an account), at
// Apply's `now`, and stays counted whatever the attempt's result. Counters are kept per account
// and minute, hour and day of Unix time; a limit is checked on one level — minute and hour
// windows on minutes, day and week windows on hours, month windows on days — and a bucket that
// overlaps the window only partly counts whole. In effect every message counts as if it had
// been sent at the last millisecond of its bucket: never early, at most one bucket late (1 min
// for minute and hour limits, 1 h for day and week limits, 1 day for month limits). Precisely,
// an entry put in flight at `now` fits a limit of N when the buckets overlapping the window
// (now - length, now] — and any later ones, counted by a process whose clock runs ahead — hold
// at most N - 1 messages. With 1/hour, after a message at 10:00:59.999 the next fits at
// 11:00:59.999; after one at 10:00:00.000, also at 11:00:59.999 (its minute counts until its
// last millisecond is an hour old).
//
// retry_at of an entry refused for a limit: for each limit it reaches, take buckets from the
// oldest on away until count + 1 <= N would hold; that limit has room once the last bucket
// taken has left the window (its last millisecond is one window length old). retry_at is the
// latest of these over the reached limits, reported with its limit (the first in the entry's
// list on a tie). Counts only shrink while nothing is sent, so at retry_at one more message
// fits every limit — unless another process has used the room first.

// A recipient about to be sent (StoreBatch::in_flight).
struct InFlight {
  std::int64_t recipient_id = 0;
  // The account the message leaves through; counted in its send counters and checked against
  // `limits` in the same transaction. Empty: not counted (the attempt does not reach a server,
  // e.g. the account already failed in this run), and `limits` are not checked.
  std::string account;
  // The account's sending limits (see "Sending limits" above); each count at least 1.
  std::vector<SendingLimit> limits;
  // Direct delivery to a domain with limits of its own: the domain (an A-label), counted under
  // DestinationCounter(account, destination) and checked against `destination_limits` in the
  // same way, as well. Empty: the account's limits only. Ignored when `account` is empty.
  std::string destination;
  std::vector<SendingLimit> destination_limits;
};

// The send counter of one destination domain of an account: the account's name and the domain on
// two lines (a name is always one line, so no account's own counter has this name).
std::string DestinationCounter(std::string_view account, std::string_view destination);

// An in-flight entry that Apply did not write: the recipient is not sent now.
struct RefusedInFlight {
  enum class Reason { kNotDue, kLimit };
  std::int64_t recipient_id = 0;
  Reason reason = Reason::kNotDue;
  // kNotDue: the recipient is no longer due — not kUnsent, nor kDeferred with next_attempt_at at
  // or before `now` (cancelled by `herald cancel`, taken by another process, already put in
  // flight earlier in the batch, or given a result since it was fetched) — the engine skips it.
  // kLimit: `limit` is reached; `retry_at` is the earliest time one more message through the
  // account fits every limit of the entry (later than Apply's `now`). For kNotDue, retry_at is
  // empty and `limit` default.
  std::optional<TimePoint> retry_at;
  SendingLimit limit;
  std::string destination;  // kLimit: the domain whose limit it is (InFlight::destination); empty: the account's
};

struct ApplyReport {
  std::vector<RefusedInFlight> refused;  // in the order of StoreBatch::in_flight
};

// Writes the engine applies in one transaction, so batching them keeps the store off the
// critical path without weakening the guarantees: callers put recipients in flight with a batch
// that is applied before their MAIL FROM, and record results with a later batch. Applied in the
// order results, then in_flight: a recipient may be put back and put in flight again in one batch.
struct StoreBatch {
  std::vector<InFlight> in_flight;  // -> kInFlight, attempts + 1, counted (see Store::Apply)
  std::vector<AttemptResult> results;

  bool empty() const { return in_flight.empty() && results.empty(); }
};

struct StatusCounts {
  std::array<std::uint64_t, kRecipientStatusCount> by_status{};
  std::uint64_t possible_duplicates = 0;

  std::uint64_t operator[](RecipientStatus status) const { return by_status[static_cast<int>(status)]; }
  std::uint64_t total() const;
};

// Adds recipients to one task in batched transactions. Used by one thread.
//
// An import is of the whole recipient list: its rejected rows replace those of the task's
// earlier imports, which its first write deletes (Finish() does, for an import without rows).
class RecipientImport {
 public:
  virtual ~RecipientImport() = default;
  // Adds a recipient as kUnsent. Returns false when the task already has one with the same
  // dedup key (within this import or from an earlier one): a duplicate, nothing is written.
  virtual Result<bool> Add(const NewRecipient& recipient) = 0;
  // Adds a row that cannot be a recipient as kRejected, with `row.reason` as its last error
  // text. It is never due, never a duplicate of anything and no duplicate of it.
  // Errors: kInvalidArgument when `row.fields` is neither empty nor one per column.
  virtual Status Reject(const RejectedRow& row) = 0;
  // Commits everything added. Without Finish(), rows of the unfinished batch are rolled back.
  virtual Status Finish() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- tasks
  virtual Result<std::optional<TaskRecord>> FindTask(std::string_view task_id) = 0;
  virtual Result<std::vector<TaskRecord>> ListTasks() = 0;
  // Errors: kAlreadyExists when the id is taken.
  virtual Status CreateTask(const TaskRecord& task) = 0;
  virtual Status SetTaskSourceDigest(std::string_view task_id, std::string_view digest) = 0;
  // Records a run of the task: its title, task_file and fingerprint become `run`'s, and
  // last_run_at `run.at`. Errors: kNotFound for an unknown task.
  virtual Status RecordTaskRun(std::string_view task_id, const TaskRun& run) = 0;
  virtual Result<std::unique_ptr<RecipientImport>> BeginImport(std::string_view task_id) = 0;

  // --- delivery
  // Up to `limit` recipients of the task that are due at `now` — kUnsent, or kDeferred with
  // next_attempt_at <= now — with id > after_id, in id order.
  virtual Result<std::vector<RecipientRecord>> FetchDue(std::string_view task_id, TimePoint now,
                                                        std::int64_t after_id, std::size_t limit) = 0;
  // Applies the batch in one write transaction, stamping rows with `now`. The transaction holds
  // the store's write lock from its start, so the batches of all processes sharing the store
  // are applied one after the other: two of them cannot both take the last slot of a limit.
  //  1. Results, in order.
  //  2. In-flight entries, in order. An entry is refused — reported, nothing of it written —
  //     with kNotDue when its recipient is no longer due (as FetchDue), else with kLimit when
  //     one more message through its account at `now` would exceed one of its limits, counting
  //     what every process counted before and the entries of this batch before it. Otherwise
  //     the recipient becomes kInFlight (attempts + 1, next_attempt_at cleared) and, when the
  //     entry names an account, one message is counted for it at `now`.
  // Everything not refused is written; the refused entries are returned in batch order.
  // Errors (nothing of the batch written): kInvalidArgument for a result status that is not one
  // of an attempt, kDeferred without next_attempt_at, or a limit of 0 messages; kNotFound for an
  // unknown recipient id; kUnavailable when another process holds the store longer than the
  // busy timeout.
  virtual Result<ApplyReport> Apply(const StoreBatch& batch, TimePoint now) = 0;
  // Puts every kInFlight recipient of the task back to kUnsent, marked possible_duplicate.
  // Returns how many. Called at the start of a run: they were in flight when a run stopped abruptly.
  virtual Result<std::size_t> RecoverInFlight(std::string_view task_id) = 0;
  // The earliest next_attempt_at of the task's deferred recipients, if any.
  virtual Result<std::optional<TimePoint>> NextAttemptAt(std::string_view task_id) = 0;

  // --- bulk changes; each returns how many recipients changed
  // Every recipient of the task whose status is in `from` gets status `to` (last error kept).
  // `to` cannot be kInFlight (only Apply puts recipients in flight) or kDeferred (it needs a
  // time), and kRejected is neither in `from` nor `to` (only an import rejects, and a rejected
  // row is never sent): kInvalidArgument.
  virtual Result<std::size_t> ChangeStatus(std::string_view task_id, std::span<const RecipientStatus> from,
                                           RecipientStatus to) = 0;

  // --- reporting
  virtual Result<StatusCounts> CountByStatus(std::string_view task_id) = 0;
  // Calls `visit` for each recipient of the task in id order; stops at the first error it returns.
  virtual Status ForEachRecipient(std::string_view task_id,
                                  const std::function<Status(const RecipientRecord&)>& visit) = 0;

  // --- sending limits
  // Messages counted for `account` with from <= at < until, over every task and process.
  // Counted per minute of `at`: a minute that overlaps [from, until) counts whole, so a window
  // whose ends are not on whole minutes may count more than was sent in it, never fewer.
  virtual Result<std::uint64_t> CountSends(std::string_view account, TimePoint from, TimePoint until) = 0;

  // --- destination backoff (see DestinationBackoff)
  // The account's backed-off destinations, in destination order; "": every account's, in account
  // and destination order (account names are never empty).
  virtual Result<std::vector<DestinationBackoff>> DestinationBackoffs(std::string_view account) = 0;
  // Records a destination's failure (replacing what was recorded for it).
  virtual Status SetDestinationBackoff(const DestinationBackoff& backoff) = 0;
  // The destination took a connection: forgets its failures. Absent: nothing to do.
  virtual Status ClearDestinationBackoff(std::string_view account, std::string_view destination) = 0;
};

}  // namespace herald
