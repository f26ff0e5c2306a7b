// SqliteStore: the Store in one SQLite file, herald's default (embedded, no server).
//
// The file is in WAL mode, so readers never wait for the writer; writes take the file's write
// lock with BEGIN IMMEDIATE and wait up to a busy timeout (5 s) for another process to release
// it, which is how several processes share one store. Every SQLite error becomes a Status naming
// the file and what was being done.
//
// Threading: one thread at a time per SqliteStore object (as the Store contract says); give each
// thread or process its own object. A RecipientImport from BeginImport() must be destroyed before
// its store; while it has an unfinished batch, other writes through the same store object fail
// with kFailedPrecondition (reads work and see the batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "store/store.h"

namespace herald {

namespace store_internal {
class Connection;
class LimitCheck;
struct BucketCount;
enum class CountLevel;
}  // namespace store_internal

class SqliteStore final : public Store {
 public:
  struct Options {
    // How long a write waits for another process's write lock before failing with kUnavailable.
    Duration busy_timeout = std::chrono::seconds(5);
    // The time stamped where the Store interface passes none (imports, RecoverInFlight,
    // ChangeStatus). Not owned; must outlive the store. Null: the system clock.
    const Clock* clock = nullptr;
    // Recipients per import transaction: bigger batches import faster and hold the write lock
    // longer. At least 1.
    std::size_t import_batch_rows = 10'000;
    // Whether Open creates a store that does not exist. False for what only reads or changes a
    // store (`herald status`, `cancel`, ...): those never leave a store behind.
    bool create_if_missing = true;
  };

  // Opens the store at `path`, migrating an older schema; ":memory:" gives a private in-memory
  // store (for tests). A store that does not exist is created, whole, when
  // Options::create_if_missing says so (internal/store_file.h): any number of processes may open
  // a new store at the same moment, one creates it and all use it. An empty (0-byte) file is
  // never taken for a new store.
  // Errors: kNotFound when there is no store and Options::create_if_missing is false (no file,
  // or an SQLite database without anything in it); kIo when the file cannot be opened or
  // created; kFailedPrecondition when it is empty (0 bytes), damaged, not a herald store, or
  // from a newer herald (the message names the file and both versions); kUnavailable when
  // another process holds it (creating, switching to WAL, migrating) longer than the busy
  // timeout.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path, const Options& options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override;

  Result<std::optional<TaskRecord>> FindTask(std::string_view task_id) override;
  Result<std::vector<TaskRecord>> ListTasks() override;
  Status CreateTask(const TaskRecord& task) override;
  Status SetTaskSourceDigest(std::string_view task_id, std::string_view digest) override;
  Status RecordTaskRun(std::string_view task_id, const TaskRun& run) override;
  // Rows are written in transactions of Options::import_batch_rows. After an error from the
  // store, the import is over: its unfinished batch is rolled back (earlier batches stay) and
  // further calls return that error. Invalid input (field count different from the task's
  // columns, an empty dedup key) is refused with kInvalidArgument without ending the import.
  Result<std::unique_ptr<RecipientImport>> BeginImport(std::string_view task_id) override;

  Result<std::vector<RecipientRecord>> FetchDue(std::string_view task_id, TimePoint now, std::int64_t after_id,
                                                std::size_t limit) override;
  // Sending limits are checked on counters per account and minute, hour and day
  // (internal/send_limits.h): per batch, each account's counters are read once per level, at
  // most a window's worth of rows through the primary key, and its increments written once.
  Result<ApplyReport> Apply(const StoreBatch& batch, TimePoint now) override;
  Result<std::size_t> RecoverInFlight(std::string_view task_id) override;
  Result<std::optional<TimePoint>> NextAttemptAt(std::string_view task_id) override;

  Result<std::size_t> ChangeStatus(std::string_view task_id, std::span<const RecipientStatus> from,
                                   RecipientStatus to) override;

  Result<StatusCounts> CountByStatus(std::string_view task_id) override;
  // Reads in chunks of a few hundred rows, each in its own read transaction: memory stays bounded,
  // other processes keep writing meanwhile, and `visit` may call this store.
  Status ForEachRecipient(std::string_view task_id,
                          const std::function<Status(const RecipientRecord&)>& visit) override;

  Result<std::uint64_t> CountSends(std::string_view account, TimePoint from, TimePoint until) override;
  Result<std::vector<DestinationBackoff>> DestinationBackoffs(std::string_view account) override;
  Status SetDestinationBackoff(const DestinationBackoff& backoff) override;
  Status ClearDestinationBackoff(std::string_view account, std::string_view destination) override;

 private:
  SqliteStore(std::unique_ptr<store_internal::Connection> connection, const Options& options);

  TimePoint Now() const;
  std::string FileName() const;
  // The task's integer key; kNotFound naming the task when there is none.
  Result<std::int64_t> TaskKey(std::string_view task_id, std::string_view what);
  // Reads up to `limit` rows of one recipient query (bound by the caller) into `out`.
  Status ReadRecipients(std::string_view sql, std::int64_t task_key, std::int64_t after_id, std::size_t limit,
                        std::optional<std::int64_t> now_ms, std::string_view what,
                        std::vector<RecipientRecord>& out);
  Status ApplyResult(const AttemptResult& result, std::int64_t now_ms);
  // Puts one entry in flight and counts it, or says why not.
  Result<std::optional<RefusedInFlight>> ApplyInFlight(const InFlight& entry, std::int64_t now_ms,
                                                       store_internal::LimitCheck& limits);
  // Appends the account's counters on `level` with bucket >= `first`, ascending.
  Status ReadSendCounts(std::string_view account, store_internal::CountLevel level, std::int64_t first,
                        std::vector<store_internal::BucketCount>& out);
  // Adds `messages` to the account's counters of the buckets holding `at`, on every level.
  Status AddSendCounts(const std::string& account, std::uint64_t messages, TimePoint at);

  std::unique_ptr<store_internal::Connection> connection_;
  Options options_;
  // Task keys never change and tasks are never deleted, so positive lookups are cached.
  std::map<std::string, std::int64_t, std::less<>> task_keys_;
};

}  // namespace herald
