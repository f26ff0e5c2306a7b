// The Store: herald's memory of every sending task and every recipient's fate. Everything the
// delivery guarantees promise (DESIGN.md) rests on it: a recipient's state moves
// unsent -> in-flight -> sent | failed | deferred, `in-flight` is written before MAIL FROM and the
// result right after the reply, and after a crash in-flight rows are put back as possible
// duplicates. It also keeps the per-account send counters behind the sending limits.
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

namespace herald {

enum class RecipientStatus : int {
  kUnsent = 0,
  kInFlight = 1,
  kSent = 2,
  kFailed = 3,
  kDeferred = 4,     // a temporary failure; tried again at next_attempt_at
  kBlacklisted = 5,  // matched a blacklist before the run; never sent
  kCancelled = 6,    // withdrawn by `herald cancel` before it was sent
};
inline constexpr std::size_t kRecipientStatusCount = 7;

// "unsent", "in-flight", "sent", "failed", "deferred", "blacklisted", "cancelled".
std::string_view RecipientStatusName(RecipientStatus status);
std::optional<RecipientStatus> ParseRecipientStatus(std::string_view name);

struct TaskRecord {
  std::string id;                    // the task's id, unique in the store
  std::string title;
  std::vector<std::string> columns;  // the recipient list's header; order of RecipientRecord::fields
  TimePoint submitted_at;            // when the task was first stored; the pending delay counts from here
  std::string source_digest;         // digest of the recipient file last imported
  std::string nonce;                 // random per task; makes Message-IDs unique across tasks
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
  std::vector<std::string> fields;      // one value per TaskRecord::columns
  std::size_t line = 0;                 // line in the recipient file it came from
  RecipientStatus status = RecipientStatus::kUnsent;
  int attempts = 0;                     // times it was put in flight
  std::optional<TimePoint> next_attempt_at;  // for kDeferred
  DeliveryError last_error;
  std::string account;                  // the account of the last attempt
  TimePoint updated_at;
  bool possible_duplicate = false;      // it was in flight when a run stopped abruptly
};

struct NewRecipient {
  std::string address;
  std::string dedup_key;  // Address::DedupKey(); one recipient per key and task
  std::vector<std::string> fields;
  std::size_t line = 0;
};

// The outcome of one attempt for one recipient, written by the engine.
struct AttemptResult {
  std::int64_t recipient_id = 0;
  RecipientStatus status = RecipientStatus::kSent;  // kSent, kFailed, kDeferred, kBlacklisted or kUnsent (put back)
  std::optional<TimePoint> next_attempt_at;         // required for kDeferred
  DeliveryError error;
  std::string account;
};

// A message counted against an account's sending limits.
struct SendCount {
  std::string account;
  TimePoint at;
  std::uint32_t messages = 1;
};

// Writes the engine applies in one transaction, so batching them keeps the store off the
// critical path without weakening the guarantees: callers put recipients in flight with a batch
// that is applied before their MAIL FROM, and record results with a later batch. Applied in the
// order results, in_flight, sends: a recipient may be put back and put in flight again in one batch.
struct StoreBatch {
  std::vector<std::int64_t> in_flight;  // -> kInFlight, attempts + 1; each must be kUnsent or kDeferred
  std::vector<AttemptResult> results;
  std::vector<SendCount> sends;

  bool empty() const { return in_flight.empty() && results.empty() && sends.empty(); }
};

struct StatusCounts {
  std::array<std::uint64_t, kRecipientStatusCount> by_status{};
  std::uint64_t possible_duplicates = 0;

  std::uint64_t operator[](RecipientStatus status) const { return by_status[static_cast<int>(status)]; }
  std::uint64_t total() const;
};

// Adds recipients to one task in batched transactions. Used by one thread.
class RecipientImport {
 public:
  virtual ~RecipientImport() = default;
  // Adds a recipient as kUnsent. Returns false when the task already has one with the same
  // dedup key (within this import or from an earlier one): a duplicate, nothing is written.
  virtual Result<bool> Add(const NewRecipient& recipient) = 0;
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
  virtual Result<std::unique_ptr<RecipientImport>> BeginImport(std::string_view task_id) = 0;

  // --- delivery
  // Up to `limit` recipients of the task that are due at `now` — kUnsent, or kDeferred with
  // next_attempt_at <= now — with id > after_id, in id order.
  virtual Result<std::vector<RecipientRecord>> FetchDue(std::string_view task_id, TimePoint now,
                                                        std::int64_t after_id, std::size_t limit) = 0;
  // Applies the batch atomically, stamping rows with `now`. On error nothing is written.
  // Errors: kFailedPrecondition when a recipient to put in flight is no longer kUnsent or
  // kDeferred (cancelled, or taken by another process, since it was fetched): do not send it;
  // kNotFound for an unknown recipient id; kInvalidArgument for a result status that is not one
  // of an attempt, kDeferred without next_attempt_at, or a send count without an account.
  virtual Status Apply(const StoreBatch& batch, TimePoint now) = 0;
  // Puts every kInFlight recipient of the task back to kUnsent, marked possible_duplicate.
  // Returns how many. Called at the start of a run: they were in flight when a run stopped abruptly.
  virtual Result<std::size_t> RecoverInFlight(std::string_view task_id) = 0;
  // The earliest next_attempt_at of the task's deferred recipients, if any.
  virtual Result<std::optional<TimePoint>> NextAttemptAt(std::string_view task_id) = 0;

  // --- bulk changes; each returns how many recipients changed
  // Every recipient of the task whose status is in `from` gets status `to` (last error kept).
  // `to` cannot be kInFlight (only Apply puts recipients in flight) or kDeferred (it needs a
  // time): kInvalidArgument.
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
};

}  // namespace herald
