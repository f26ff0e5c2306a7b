#include "engine/task_runner.h"

#include <csignal>
#include <deque>
#include <random>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "address/address.h"
#include "config/loader.h"
#include "engine/internal/connection_pool.h"
#include "engine/internal/event.h"
#include "engine/internal/store_writer.h"
#include "engine/prepared_task.h"
#include "engine/retry_policy.h"

namespace herald {
namespace {

using engine_internal::ConnectionPool;
using engine_internal::Event;
using engine_internal::Lease;
using engine_internal::PoolSettings;
using engine_internal::StoreWriter;

constexpr std::size_t kFetchBatch = 256;

std::string RandomNonce() {
  std::random_device device;
  std::uniform_int_distribution<std::uint32_t> bits;
  return fmt::format("{:08x}{:08x}", bits(device), bits(device));
}

// What a transport that broke its contract (no Outcome) counts as. A function, not a literal in
// the coroutine (see Run::ColumnMismatch).
Outcome NoResult() {
  Outcome outcome;
  outcome.disposition = Disposition::kTemporary;
  outcome.scope = Scope::kMessage;
  outcome.stage = Stage::kData;
  outcome.text = "the transport returned no result";
  return outcome;
}

// The account's path through the engine for this run.
struct AccountRuntime {
  const AccountConfig* config = nullptr;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ConnectionPool> pool;
  AccountOverrides overrides;
  std::optional<Outcome> failure;  // set once the account failed as a whole in this run
};

// Brings the store up to date with the task: creates it, imports the list when new or changed.
Result<TaskRecord> SyncTask(const TaskConfig& task, const std::vector<std::string>& columns,
                            std::size_t address_column, Store& store, const Clock& clock, RunObserver& observer,
                            RunReport& report) {
  Result<std::optional<TaskRecord>> found = store.FindTask(task.id);
  if (!found.ok()) return found.status();
  TaskRecord record;
  if (found->has_value()) {
    record = std::move(**found);
    if (record.columns != columns) {
      auto join = [](const std::vector<std::string>& names) {
        std::string out;
        for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
        return out;
      };
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("{}: the columns changed since task \"{}\" was first run (then: {}; now: {}); "
                                "give the task a new id to send the new list",
                                task.recipients.file, task.id, join(record.columns), join(columns)));
    }
  } else {
    record = TaskRecord{task.id, task.title, columns, clock.Now(), "", RandomNonce()};
    HERALD_RETURN_IF_ERROR(store.CreateTask(record));
  }
  Result<std::string> digest = FileDigest(task.recipients.file);
  if (!digest.ok()) return digest.status();
  if (*digest != record.source_digest) {
    Result<ImportReport> imported = ImportRecipients(task.recipients, address_column, task.id, store);
    if (!imported.ok()) return imported.status();
    HERALD_RETURN_IF_ERROR(store.SetTaskSourceDigest(task.id, *digest));
    record.source_digest = *digest;
    observer.OnImport(*imported);
    report.import = std::move(*imported);
  }
  return record;
}

class Run {
 public:
  Run(const TaskConfig& task, const TaskRecord& record, const PreparedTask& prepared,
      std::vector<AccountRuntime>& accounts, Store& store, const Clock& clock, RunObserver& observer,
      asio::io_context& io, RunReport& report)
      : task_(task),
        record_(record),
        prepared_(prepared),
        accounts_(accounts),
        store_(store),
        clock_(clock),
        observer_(observer),
        io_(io),
        report_(report),
        writer_(store, clock, io.get_executor()),
        workers_done_(io.get_executor()),
        progress_timer_(io) {}

  Status Prepare() {
    Result<StatusCounts> counts = store_.CountByStatus(task_.id);
    if (!counts.ok()) return counts.status();
    counts_ = *counts;
    from_domain_ = task_.message.from.address.domain;
    started_ = std::chrono::steady_clock::now();
    return Status::Ok();
  }

  asio::awaitable<void> Main() {
    for (std::uint32_t i = 0; i < task_.sending.concurrency; ++i) {
      ++workers_running_;
      asio::co_spawn(io_, Worker(), asio::detached);
    }
    asio::co_spawn(io_, ReportProgress(), asio::detached);
    while (workers_running_ > 0) co_await workers_done_.Wait();
    for (AccountRuntime& account : accounts_) {
      if (account.pool) co_await account.pool->CloseAll();
    }
    Status flushed = co_await writer_.Flush();
    if (!flushed.ok() && report_.stopped_by.ok()) report_.stopped_by = flushed;
    finished_ = true;
    progress_timer_.cancel();
    observer_.OnProgress(Progress());
  }

  // A stop request: take nothing new; the sends under way finish.
  void RequestStop() {
    stopping_ = true;
    report_.interrupted = true;
  }

  // After the event loop ended early: write the results already known.
  void SaveWhatIsKnown() {
    StoreBatch rest = writer_.TakePending();
    rest.in_flight.clear();  // their messages never left: they are still unsent in the store
    if (!rest.empty()) {
      Status saved = store_.Apply(rest, clock_.Now()).status();
      if (!saved.ok() && report_.stopped_by.ok()) report_.stopped_by = saved;
    }
  }

 private:
  RunProgress Progress() const {
    RunProgress progress;
    progress.total = counts_.total();
    progress.sent = counts_[RecipientStatus::kSent];
    progress.failed = counts_[RecipientStatus::kFailed];
    progress.deferred = counts_[RecipientStatus::kDeferred];
    progress.remaining = counts_[RecipientStatus::kUnsent] + counts_[RecipientStatus::kInFlight];
    progress.sent_this_run = report_.sent;
    progress.elapsed = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started_);
    return progress;
  }

  asio::awaitable<void> ReportProgress() {
    while (!finished_) {
      observer_.OnProgress(Progress());
      progress_timer_.expires_after(std::chrono::milliseconds(200));
      co_await progress_timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }

  void Stop(Status why) {
    if (report_.stopped_by.ok()) report_.stopped_by = std::move(why);
    stopping_ = true;
  }

  // The next recipient due, fetched from the store a page at a time.
  std::optional<RecipientRecord> Next() {
    if (stopping_) return std::nullopt;
    if (queue_.empty() && !exhausted_) {
      Result<std::vector<RecipientRecord>> page = store_.FetchDue(task_.id, clock_.Now(), cursor_, kFetchBatch);
      if (!page.ok()) {
        Stop(page.status());
        return std::nullopt;
      }
      if (page->empty()) exhausted_ = true;
      for (RecipientRecord& recipient : *page) {
        cursor_ = recipient.id;
        queue_.push_back(std::move(recipient));
      }
    }
    if (queue_.empty()) return std::nullopt;
    RecipientRecord next = std::move(queue_.front());
    queue_.pop_front();
    return next;
  }

  asio::awaitable<void> Worker() {
    while (std::optional<RecipientRecord> recipient = Next()) {
      co_await Deliver(std::move(*recipient));
    }
    --workers_running_;
    workers_done_.NotifyAll();
  }

  // Picks the account for a recipient: the first of the task's accounts.
  AccountRuntime& Route() { return accounts_.front(); }

  void Record(const RecipientRecord& recipient, AttemptResult result, std::string_view account) {
    result.account = std::string(account);
    --counts_.by_status[static_cast<int>(recipient.status)];
    ++counts_.by_status[static_cast<int>(result.status)];
    switch (result.status) {
      case RecipientStatus::kSent: ++report_.sent; break;
      case RecipientStatus::kFailed: ++report_.failed; break;
      case RecipientStatus::kDeferred: ++report_.deferred; break;
      default: break;
    }
    observer_.OnResult(RecipientEvent{recipient, result, account});
    writer_.AddResult(std::move(result));
  }

  // A failure found before anything was sent: the recipient fails without an attempt.
  void FailBeforeSending(const RecipientRecord& recipient, std::string reason, std::string_view account) {
    Outcome outcome;
    outcome.disposition = Disposition::kPermanent;
    outcome.stage = Stage::kPrepare;
    outcome.text = std::move(reason);
    Record(recipient, DecideResult(recipient.id, outcome, recipient.attempts, task_.sending, clock_.Now()), account);
  }

  // Helpers for Deliver(), kept out of the coroutine: g++ 12 cannot compile arrays (string
  // literals, braced lists) as temporaries in a coroutine ("array used as initializer").
  static std::string ColumnMismatch() { return "the stored recipient does not match the task's columns"; }

  // Stable across retries, unique across tasks (the nonce) and recipients (the id).
  std::string MessageId(std::int64_t recipient_id) const {
    return fmt::format("{}.{}@{}", record_.nonce, recipient_id, from_domain_);
  }

  void NoteAccountFailure(AccountRuntime& account, const Outcome& failure) {
    if (account.failure) return;  // concurrent sends may all see it; say it once
    account.failure = failure;
    observer_.OnWarning(fmt::format("account \"{}\" failed, not used again in this run: {}", account.config->name,
                                    failure.text));
  }

  asio::awaitable<void> Deliver(RecipientRecord recipient) {
    AccountRuntime& account = Route();
    const std::string& account_name = account.config->name;
    Result<Address> to = ParseAddress(recipient.address);
    if (!to.ok()) {
      FailBeforeSending(recipient, to.status().message(), account_name);
      co_return;
    }

    std::vector<std::string_view> values(recipient.fields.begin(), recipient.fields.end());
    if (values.size() != prepared_.fields.column_count()) {
      FailBeforeSending(recipient, ColumnMismatch(), account_name);
      co_return;
    }
    std::string message_id = MessageId(recipient.id);
    auto message = std::make_shared<MessageData>();
    RecipientParts parts{values, &*to, message_id, clock_.Now(), &account.overrides};
    if (Status composed = prepared_.composer->Compose(parts, *message); !composed.ok()) {
      FailBeforeSending(recipient, composed.message(), account_name);
      co_return;
    }

    Envelope envelope;
    envelope.mail_from = task_.message.from.address.ToString();
    envelope.recipients.push_back(to->ToString());
    envelope.smtputf8 = to->needs_smtputf8 || task_.message.from.address.needs_smtputf8;

    Lease lease;
    if (!account.failure) {
      lease = co_await account.pool->Acquire(account.transport->Destination(*to));
      if (lease.connection == nullptr) {
        NoteAccountFailure(account, lease.failure);
      }
    }

    // In flight before the message leaves (DESIGN.md, "Delivery guarantees"); an account that
    // failed as a whole counts as an attempt too, so retries end even when it never comes back.
    std::vector<std::int64_t> ids(1, recipient.id);
    Status marked = co_await writer_.PutInFlight(std::move(ids));
    if (!marked.ok()) {
      Stop(marked);
      if (lease.connection) co_await account.pool->Release(std::move(lease));
      co_return;
    }
    int attempts = recipient.attempts + 1;
    Outcome outcome;
    if (lease.connection == nullptr) {
      outcome = *account.failure;
    } else {
      std::vector<Outcome> outcomes = co_await lease.connection->Send(envelope, message);
      co_await account.pool->Release(std::move(lease));
      outcome = outcomes.empty() ? NoResult() : outcomes.front();
      if (!outcome.delivered() && outcome.scope == Scope::kAccount && !account.failure) {
        NoteAccountFailure(account, outcome);
      }
    }
    TimePoint now = clock_.Now();
    AttemptResult result = DecideResult(recipient.id, outcome, attempts, task_.sending, now);
    if (outcome.delivered()) {
      SaveBackup(recipient, values, *to, *message);
    }
    Record(recipient, std::move(result), account_name);
  }

  void SaveBackup(const RecipientRecord& recipient, std::vector<std::string_view>& values, const Address& to,
                  const MessageData& message) {
    if (!prepared_.backup) return;
    std::string subject;
    std::string address = to.ToString();
    values.resize(prepared_.fields.size());
    values[prepared_.fields.task_title_index()] = task_.title;
    values[prepared_.fields.recipient_index()] = address;
    prepared_.subject.Render(values, Escaping::kNone, subject);
    values[prepared_.fields.subject_index()] = subject;
    Result<std::string> saved = prepared_.backup->Save(values, message);
    if (!saved.ok()) {
      // The message went out; without its backup the user's record is incomplete, so stop
      // taking new work until the problem (usually a full disk) is fixed.
      Stop(saved.status().WithContext(fmt::format("backup of the message to {}", recipient.address)));
    }
  }

  const TaskConfig& task_;
  const TaskRecord& record_;
  const PreparedTask& prepared_;
  std::vector<AccountRuntime>& accounts_;
  Store& store_;
  const Clock& clock_;
  RunObserver& observer_;
  asio::io_context& io_;
  RunReport& report_;
  StoreWriter writer_;
  Event workers_done_;
  asio::steady_timer progress_timer_;
  std::uint32_t workers_running_ = 0;
  std::deque<RecipientRecord> queue_;
  std::int64_t cursor_ = 0;
  bool exhausted_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  StatusCounts counts_;
  std::string from_domain_;
  std::chrono::steady_clock::time_point started_;
};

Result<std::vector<AccountRuntime>> MakeAccounts(const TaskConfig& task, const AccountSet& accounts,
                                                 TransportFactory& transports, RunObserver& observer,
                                                 asio::io_context& io) {
  std::vector<const AccountConfig*> chosen;
  if (task.sending.accounts.empty()) {
    for (const AccountConfig& account : accounts.accounts()) chosen.push_back(&account);
  } else {
    for (const std::string& name : task.sending.accounts) chosen.push_back(accounts.Find(name));
  }
  std::vector<AccountRuntime> runtimes;
  for (const AccountConfig* config : chosen) {
    if (config == nullptr) return InvalidArgument(fmt::format("{}: sending.accounts names an unknown account", task.path));
    Result<std::unique_ptr<Transport>> transport = transports.Create(*config);
    if (!transport.ok()) return transport.status();
    AccountRuntime runtime;
    runtime.config = config;
    runtime.transport = std::move(*transport);
    runtime.pool = std::make_unique<ConnectionPool>(
        *runtime.transport,
        PoolSettings{config->max_connections, config->reconnect_every, config->pause_between_chunks},
        io.get_executor());
    runtime.overrides.default_reply_to = config->default_reply_to;
    runtime.overrides.default_sender_name = config->default_sender_name;
    runtime.overrides.fixed_sender = config->fixed_sender;
    runtimes.push_back(std::move(runtime));
    if (!config->verify_certificate) {
      observer.OnWarning(fmt::format("account \"{}\": certificate verification is turned off "
                                     "(verify_certificate = false); the server is not authenticated",
                                     config->name));
    }
  }
  if (runtimes.empty()) return InvalidArgument(fmt::format("{}: no account to send through", task.accounts_file));
  return runtimes;
}

}  // namespace

Result<RunReport> RunTask(const TaskConfig& task, const AccountSet& accounts, Store& store, const Clock& clock,
                          TransportFactory& transports, RunObserver& observer, RunOptions options) {
  RunReport report;
  Result<std::vector<std::string>> columns = ReadRecipientColumns(task.recipients);
  if (!columns.ok()) return columns.status();
  Result<PreparedTask> prepared = PrepareTask(task, *columns);
  if (!prepared.ok()) return prepared.status();
  HERALD_RETURN_IF_ERROR(CheckTaskAccounts(task, accounts));

  asio::io_context io(1);
  Result<std::vector<AccountRuntime>> runtimes = MakeAccounts(task, accounts, transports, observer, io);
  if (!runtimes.ok()) return runtimes.status();

  Result<TaskRecord> record = SyncTask(task, *columns, prepared->address_column, store, clock, observer, report);
  if (!record.ok()) return record.status();
  Result<std::size_t> recovered = store.RecoverInFlight(task.id);
  if (!recovered.ok()) return recovered.status();
  report.recovered_in_flight = *recovered;
  if (*recovered > 0) observer.OnRecovered(*recovered);
  if (task.sending.reset_before) {
    static constexpr RecipientStatus kDone[] = {RecipientStatus::kSent, RecipientStatus::kFailed,
                                                RecipientStatus::kDeferred, RecipientStatus::kBlacklisted};
    Result<std::size_t> reset = store.ChangeStatus(task.id, kDone, RecipientStatus::kUnsent);
    if (!reset.ok()) return reset.status();
  }

  Run run(task, *record, *prepared, *runtimes, store, clock, observer, io, report);
  HERALD_RETURN_IF_ERROR(run.Prepare());
  asio::signal_set signals(io);
  int stop_requests = 0;
  std::function<void(const std::error_code&, int)> on_signal = [&](const std::error_code& error, int) {
    if (error) return;
    if (++stop_requests == 1) {
      observer.OnWarning("stopping: the sends under way finish, nothing new starts (interrupt again to abandon them)");
      run.RequestStop();
      signals.async_wait(on_signal);
    } else {
      io.stop();
    }
  };
  if (options.handle_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    signals.async_wait(on_signal);
  }
  bool finished = false;
  asio::co_spawn(io, run.Main(), [&](std::exception_ptr) {
    finished = true;
    signals.cancel();
  });
  io.run();
  if (!finished) run.SaveWhatIsKnown();

  if (task.sending.reset_errors_after) {
    static constexpr RecipientStatus kFailed[] = {RecipientStatus::kFailed};
    Result<std::size_t> reset = store.ChangeStatus(task.id, kFailed, RecipientStatus::kUnsent);
    if (!reset.ok() && report.stopped_by.ok()) report.stopped_by = reset.status();
  }
  Result<StatusCounts> counts = store.CountByStatus(task.id);
  if (counts.ok()) report.counts = *counts;
  Result<std::optional<TimePoint>> next = store.NextAttemptAt(task.id);
  if (next.ok()) report.next_attempt_at = *next;
  return report;
}

}  // namespace herald
