#include "engine/task_runner.h"

#include <cassert>
#include <csignal>
#include <deque>
#include <map>
#include <set>
#include <unordered_set>

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
#include "core/units.h"
#include "engine/internal/connection_pool.h"
#include "engine/internal/event.h"
#include "engine/internal/store_writer.h"
#include "engine/pacing.h"
#include "engine/preflight.h"
#include "engine/prepared_task.h"
#include "engine/retry_policy.h"
#include "engine/router.h"
#include "engine/task_sync.h"

namespace herald {
namespace {

using engine_internal::ConnectionPool;
using engine_internal::Event;
using engine_internal::Lease;
using engine_internal::PoolSettings;
using engine_internal::StoreWriter;

constexpr std::size_t kFetchBatch = 256;
// Recipients the dispatcher reads ahead of the workers, looking for a destination with a free
// connection or for turbo companions of the same destination.
constexpr std::size_t kHoldLimit = 1024;

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

// A destination none of whose mail exchangers could be used (Scope::kDestination). Permanent
// (a null MX, a domain that does not exist): its recipients fail for the rest of the run.
// Temporary: not tried again before retry_at; its recipients are postponed until then without an
// attempt, and the delay grows with each failure in a row (store.h, "Destination backoff").
struct DownDestination {
  Outcome outcome;      // permanent: what its recipients get
  DeliveryError error;  // temporary: the last failure, as stored
  int failures = 0;                   // temporary failures in a row, over runs
  std::optional<TimePoint> retry_at;  // none: permanent
};

// The account's path through the engine for this run.
struct AccountRuntime {
  const AccountConfig* config = nullptr;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ConnectionPool> pool;
  AccountOverrides overrides;
  MinimumWait minimum_wait{Duration(0)};
  std::optional<Outcome> failure;  // set once the account failed as a whole in this run
  std::uint64_t waiting = 0;  // recipients that wait for it (failed, no secondary left) for the next run
  // Direct delivery: destinations (recipient domains) that could not be reached — in this run,
  // or (temporary failures) in an earlier one, as the store's destination backoff says.
  std::map<std::string, DownDestination> down;
  // Direct delivery: destinations that refused this sending host by policy in this run (a
  // blocklisted address, no reverse DNS, SPF): recipients a secondary takes go there at once.
  std::set<std::string> refusing;
  // Direct delivery: destinations at one of their own sending limits, and until when (their
  // recipients are postponed meanwhile; the account's other destinations go on).
  std::map<std::string, RefusedInFlight> limited;
  // Direct delivery: the minimum waits of the destinations that have their own.
  std::map<std::string, MinimumWait> destination_waits;
  TimePoint announced_limit{};     // the sending-limit wait last told to the observer
  // Jobs handed to workers and not finished, per destination and in all: the dispatcher hands
  // out work for destinations with a free connection first (see Run::TakeJob).
  std::map<std::string, std::uint32_t> busy;
  std::uint32_t busy_total = 0;

  // Whether one more job for `destination` would find a connection without waiting for one.
  bool HasRoom(const std::string& destination) const {
    if (busy_total >= config->max_connections) return false;
    auto found = busy.find(destination);
    return found == busy.end() || found->second < pool->DestinationLimit(destination);
  }
  MinimumWait* DestinationWait(const std::string& destination) {
    auto found = destination_waits.find(destination);
    if (found != destination_waits.end()) return &found->second;
    const DestinationRule* rule = config->DestinationRuleFor(destination);
    if (rule == nullptr || rule->minimum_wait <= Duration(0)) return nullptr;
    return &destination_waits.emplace(destination, MinimumWait(rule->minimum_wait)).first->second;
  }
};

// One recipient on its way: the stored record and its parsed address.
struct Pending {
  RecipientRecord record;
  Address to;
};

// A recipient and the account it is routed to.
using Routed = std::pair<Pending, AccountRuntime*>;

// What one worker sends in one go: one recipient (personalised) or up to the account's
// recipients per message (turbo mode), all routed to the same account.
struct Job {
  std::vector<Pending> recipients;
  AccountRuntime* account = nullptr;
  std::string destination;  // the account transport's Destination() of every recipient
  // Handed over from an account that failed as a whole: the first such account on the way, the
  // one its recipients wait for when no account down the chain is left.
  AccountRuntime* origin = nullptr;
};

// Recipients read ahead of the workers for one account and destination, in list order.
struct HeldGroup {
  AccountRuntime* account = nullptr;
  std::string destination;
  std::deque<Pending> recipients;
};

class Run {
 public:
  Run(const TaskConfig& task, const TaskRecord& record, const PreparedTask& prepared,
      std::vector<AccountRuntime>& accounts, const Router& router, Store& store, const Clock& clock,
      Sleeper& sleeper, RunObserver& observer, asio::io_context& io, RunReport& report)
      : task_(task),
        record_(record),
        prepared_(prepared),
        accounts_(accounts),
        router_(router),
        store_(store),
        clock_(clock),
        sleeper_(sleeper),
        observer_(observer),
        io_(io),
        report_(report),
        writer_(store, clock, io.get_executor()),
        workers_done_(io.get_executor()),
        job_done_(io.get_executor()),
        progress_timer_(io),
        pacing_(task.sending.limit, task.sending.block_size, task.sending.block_pause),
        turbo_(task.sending.mode == SendMode::kTurbo),
        empty_columns_(prepared.fields.column_count()) {}

  Status Prepare() {
    Result<StatusCounts> counts = store_.CountByStatus(task_.id);
    if (!counts.ok()) return counts.status();
    counts_ = *counts;
    started_ = clock_.Now();
    return Status::Ok();
  }

  asio::awaitable<void> Main() {
    asio::co_spawn(io_, ReportProgress(), asio::detached);
    TimePoint pending_until = record_.submitted_at + task_.sending.pending_delay;
    if (clock_.Now() < pending_until) {
      Announce(PendingText(), "the pending delay", pending_until);
      // Cut short when nothing is left to send (`herald cancel` during the delay).
      co_await sleeper_.SleepUntil(pending_until,
                                   [this, pending_until] { return stopping_ || !AnythingDue(pending_until); });
    }
    for (std::uint32_t i = 0; i < task_.sending.concurrency; ++i) {
      ++workers_running_;
      asio::co_spawn(io_, Worker(), asio::detached);
    }
    while (workers_running_ > 0) co_await workers_done_.Wait();
    for (const AccountRuntime* account : failed_accounts_) {
      if (account->waiting == 0) continue;
      report_.waiting_for_accounts.push_back(
          AccountWait{account->config->name, Cause(*account->failure), account->waiting});
    }
    for (AccountRuntime& account : accounts_) {
      if (account.pool) co_await account.pool->CloseAll();
    }
    Status flushed = co_await writer_.Flush();
    if (!flushed.ok() && report_.stopped_by.ok()) report_.stopped_by = flushed;
    finished_ = true;
    progress_timer_.cancel();
    EndWait(/*run_over=*/true);
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
  // --- texts, built outside the coroutines: g++ 12 cannot compile arrays (string literals passed
  // to templates, braced lists) as temporaries in a coroutine ("array used as initializer").
  std::string PendingText() const {
    return fmt::format("pending delay of {}; `herald cancel {}` withdraws the task until then",
                       FormatDuration(task_.sending.pending_delay), task_.id);
  }
  static std::string BlockText(std::uint64_t size) { return fmt::format("pause after a block of {} messages", size); }
  static std::string LimitShortText(const AccountRuntime& account, const RefusedInFlight& refused) {
    return fmt::format("the sending limit of {} of account \"{}\"", refused.limit.ToString(), account.config->name);
  }
  // What an account failure was, for the one line that tells it: "AUTH: 535 5.7.8 bad credentials".
  static std::string Cause(const Outcome& failure) {
    std::string code = failure.reply_code == 0 ? std::string() : fmt::format("{} ", failure.reply_code);
    if (!failure.enhanced_status.empty()) code += failure.enhanced_status + " ";
    return fmt::format("{}: {}{}", StageName(failure.stage), code, failure.text);
  }
  static std::string LimitText(const AccountRuntime& account, const RefusedInFlight& refused) {
    if (!refused.destination.empty()) {
      return fmt::format("account \"{}\" reached its sending limit of {} for {}", account.config->name,
                         refused.limit.ToString(), refused.destination);
    }
    return fmt::format("account \"{}\" reached its sending limit of {}", account.config->name, refused.limit.ToString());
  }
  static std::string LimitStopText(const AccountRuntime& account, const RefusedInFlight& refused) {
    return fmt::format("{} (sending.on_limit = \"stop\"); the next message fits at {}",
                       LimitText(account, refused), FormatLocalTime(*refused.retry_at));
  }
  static Outcome TooLarge(const AccountRuntime& account, std::size_t size) {
    Outcome outcome;
    outcome.disposition = Disposition::kPermanent;
    outcome.scope = Scope::kMessage;
    outcome.stage = Stage::kPrepare;
    outcome.text = fmt::format("the message is {} ({} bytes), over the max_message_size of {} of account \"{}\"",
                               FormatByteSize(size), size, FormatByteSize(account.config->max_message_size),
                               account.config->name);
    return outcome;
  }
  static std::string ColumnMismatch() { return "the stored recipient does not match the task's columns"; }

  std::string MessageId(std::int64_t recipient_id) const { return MessageIdOf(record_.nonce, recipient_id, task_); }

  RunProgress Progress() const {
    RunProgress progress;
    progress.total = counts_.total();
    progress.sent = counts_[RecipientStatus::kSent];
    progress.failed = counts_[RecipientStatus::kFailed];
    progress.deferred = counts_[RecipientStatus::kDeferred];
    progress.remaining = counts_[RecipientStatus::kUnsent] + counts_[RecipientStatus::kInFlight];
    progress.sent_this_run = report_.sent;
    progress.now = clock_.Now();
    Duration paused = paused_total_;
    if (waiting_until_) paused += std::min(progress.now, *waiting_until_) - paused_since_;
    if (waiting_until_ && *waiting_until_ > progress.now) {
      progress.waiting_until = waiting_until_;
      progress.waiting_for = waiting_for_;
    }
    progress.elapsed = std::max(Duration(0), progress.now - started_ - paused);
    return progress;
  }

  // Tells the observer that sending pauses until `until` (`why` in full, `what` in a few words
  // for the progress line, shown at once); until then the time does not count as spent sending.
  void Announce(const std::string& why, std::string what, TimePoint until) {
    EndWait();
    observer_.OnWaiting(why, until);
    TimePoint now = clock_.Now();
    if (until <= now) return;
    if (waiting_until_) {
      paused_total_ += now - paused_since_;  // a wait under way ends where this one begins
    }
    waiting_until_ = until;
    waiting_for_ = std::move(what);
    paused_since_ = now;
    observer_.OnProgress(Progress());
  }

  // The wait last announced is over once its time has come, or when the run is (cut short).
  void EndWait(bool run_over = false) {
    const TimePoint now = clock_.Now();
    if (waiting_until_ && (run_over || now >= *waiting_until_)) {
      paused_total_ += std::min(now, *waiting_until_) - paused_since_;
      waiting_until_.reset();
    }
  }

  asio::awaitable<void> ReportProgress() {
    while (!finished_) {
      EndWait();
      observer_.OnProgress(Progress());
      progress_timer_.expires_after(std::chrono::milliseconds(200));
      co_await progress_timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }

  asio::awaitable<void> Sleep(TimePoint until) {
    co_await sleeper_.SleepUntil(until, [this] { return stopping_; });
  }

  // Whether recipient `id` is still due, so that a wait for it ends when the task is cancelled
  // meanwhile (`herald cancel`) or another process took the recipient. A store error counts as
  // due: the wait goes on, and the store decides when the recipient is put in flight.
  bool StillDue(std::int64_t id) {
    Result<std::vector<RecipientRecord>> due = store_.FetchDue(task_.id, clock_.Now(), id - 1, 1);
    return !due.ok() || (!due->empty() && due->front().id == id);
  }

  // Whether any recipient of the task is due at `at` (errors count as yes, as above).
  bool AnythingDue(TimePoint at) {
    Result<std::vector<RecipientRecord>> due = store_.FetchDue(task_.id, at, 0, 1);
    return !due.ok() || !due->empty();
  }

  // Whether this run has anything left to send at `at`: recipients read ahead, or due then in
  // the store and not taken by this run (one waiting for its account is taken until the run
  // ends). Errors count as yes, as above.
  bool AnythingLeft(TimePoint at) {
    if (held_count_ > 0 || !queue_.empty()) return true;
    ReleaseWritten();
    std::int64_t after = 0;
    while (true) {
      Result<std::vector<RecipientRecord>> page = store_.FetchDue(task_.id, at, after, kFetchBatch);
      if (!page.ok()) return true;
      if (page->empty()) return false;
      for (const RecipientRecord& recipient : *page) {
        if (!taken_.contains(recipient.id)) return true;
        after = recipient.id;
      }
    }
  }

  void Stop(Status why) {
    if (report_.stopped_by.ok()) report_.stopped_by = std::move(why);
    stopping_ = true;
  }

  // --- the dispatcher: due recipients from the store, routed, grouped into jobs

  // Refills the queue a page at a time. When the store has nothing after the cursor, it starts
  // a new pass from the beginning, for retries that fell due while the run went on; the run is
  // over when a whole pass finds nothing that is not already taken. (A recipient stays taken
  // until its result is written, see Record; one given back may be fetched again at once.)
  bool Refill() {
    while (queue_.empty() && !exhausted_) {
      ReleaseWritten();
      Result<std::vector<RecipientRecord>> page = store_.FetchDue(task_.id, clock_.Now(), cursor_, kFetchBatch);
      if (!page.ok()) {
        Stop(page.status());
        return false;
      }
      if (page->empty()) {
        exhausted_ = !found_in_pass_;
        found_in_pass_ = false;
        cursor_ = 0;
        continue;
      }
      for (RecipientRecord& recipient : *page) {
        cursor_ = recipient.id;
        if (taken_.insert(recipient.id).second) {
          queue_.push_back(std::move(recipient));
          found_in_pass_ = true;
        }
      }
    }
    return !queue_.empty();
  }

  // The next recipient that can be routed; those that cannot fail here with the reason.
  std::optional<Routed> NextRouted() {
    while (Refill()) {
      RecipientRecord record = std::move(queue_.front());
      queue_.pop_front();
      Result<Address> to = ParseAddress(record.address);
      if (!to.ok()) {
        FailBeforeSending(record, to.status().message());
        continue;
      }
      if (record.fields.size() != prepared_.fields.column_count()) {
        FailBeforeSending(record, ColumnMismatch());
        continue;
      }
      Result<const AccountConfig*> account = router_.Route(task_.message.from.address, *to);
      if (!account.ok()) {
        FailBeforeSending(record, account.status().message());
        continue;
      }
      return std::make_pair(Pending{std::move(record), std::move(*to)}, Runtime(**account));
    }
    return std::nullopt;
  }

  // A job holds one recipient, or in turbo mode up to the account's recipients per message that
  // go through the same account to the same destination (a direct account hands one transaction
  // to one domain's mail exchangers). Jobs go first to destinations with a free connection: a
  // list sorted by domain would otherwise have every worker queue for the connections of its
  // first domain while the account could serve others. Recipients passed over wait in held_ —
  // at most kHoldLimit, so the dispatcher does not read far ahead of what is sent — and go out
  // in list order per destination. When every destination is busy, the oldest held one is
  // handed out and its worker waits for a connection.
  std::optional<Job> TakeJob(std::uint64_t room) {
    std::optional<std::size_t> ready;
    for (std::size_t i = 0; i < held_.size() && !ready; ++i) {
      if (held_[i].account->HasRoom(held_[i].destination)) ready = i;
    }
    while (!ready && held_count_ < kHoldLimit) {
      // Reading ahead only helps while an account of the held recipients could open another
      // connection (a relay at its total has no other destination to serve).
      if (!held_.empty() && !HeldAccountsHaveRoom()) break;
      std::optional<Routed> next = NextRouted();
      if (!next) break;
      std::size_t group = Hold(std::move(*next));
      if (held_[group].account->HasRoom(held_[group].destination)) ready = group;
    }
    if (!ready) {
      if (held_.empty()) return std::nullopt;
      ready = 0;
    }
    HeldGroup& group = held_[*ready];
    Job job;
    job.account = group.account;
    job.destination = group.destination;
    const std::uint64_t most =
        turbo_ ? std::min<std::uint64_t>(job.account->config->recipients_per_message, room) : 1;
    while (!group.recipients.empty() && job.recipients.size() < most) {
      job.recipients.push_back(std::move(group.recipients.front()));
      group.recipients.pop_front();
      --held_count_;
    }
    while (job.recipients.size() < most && held_count_ < kHoldLimit) {
      std::optional<Routed> next = NextRouted();
      if (!next) break;
      if (next->second == job.account && job.account->transport->Destination(next->first.to) == job.destination) {
        job.recipients.push_back(std::move(next->first));
      } else {
        Hold(std::move(*next));  // may add a group at the end: indexes stay valid
      }
    }
    if (held_[*ready].recipients.empty()) held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(*ready));
    ++job.account->busy[job.destination];
    ++job.account->busy_total;
    return job;
  }

  // Adds a routed recipient to its group in held_; returns the group's index.
  std::size_t Hold(Routed routed) {
    std::string destination = routed.second->transport->Destination(routed.first.to);
    std::size_t group = 0;
    while (group < held_.size() && (held_[group].account != routed.second || held_[group].destination != destination)) {
      ++group;
    }
    if (group == held_.size()) held_.push_back(HeldGroup{routed.second, std::move(destination), {}});
    held_[group].recipients.push_back(std::move(routed.first));
    ++held_count_;
    return group;
  }

  bool HeldAccountsHaveRoom() const {
    for (const HeldGroup& group : held_) {
      if (group.account->busy_total < group.account->config->max_connections) return true;
    }
    return false;
  }

  // A worker finished `job`'s account and destination (wherever failover took its recipients).
  static void ReleaseBusy(AccountRuntime& account, const std::string& destination) {
    auto found = account.busy.find(destination);
    if (--found->second == 0) account.busy.erase(found);
    --account.busy_total;
  }

  // The next job, after the task's block pauses; none when the task's limit is reached or
  // nothing is due.
  asio::awaitable<std::optional<Job>> NextJob() {
    while (!stopping_) {
      TimePoint now = clock_.Now();
      TaskPacing::Verdict verdict = pacing_.Next(now);
      if (verdict == TaskPacing::Verdict::kDone) {
        report_.task_limit_reached = true;
        co_return std::nullopt;
      }
      if (verdict == TaskPacing::Verdict::kWait) {
        // After the last block there is nothing to pause for.
        if (!AnythingLeft(pacing_.resume_at())) co_return std::nullopt;
        if (announced_block_ != pacing_.resume_at()) {
          announced_block_ = pacing_.resume_at();
          Announce(BlockText(task_.sending.block_size), "a block pause", pacing_.resume_at());
        }
        co_await Sleep(pacing_.resume_at());
        continue;
      }
      if (verdict == TaskPacing::Verdict::kBlockUnfinished) {
        co_await job_done_.Wait();
        continue;
      }
      std::uint64_t room = task_.sending.limit == 0 ? UINT64_MAX : task_.sending.limit - pacing_.started();
      std::optional<Job> job = TakeJob(room);
      if (!job) co_return std::nullopt;
      for (std::size_t i = 0; i < job->recipients.size(); ++i) pacing_.Started();
      co_return job;
    }
    co_return std::nullopt;
  }

  asio::awaitable<void> Worker() {
    while (true) {
      std::optional<Job> job = co_await NextJob();
      if (!job) break;
      std::size_t taken = job->recipients.size();
      AccountRuntime& account = *job->account;
      std::string destination = job->destination;
      std::size_t given_back = co_await Deliver(std::move(*job));
      ReleaseBusy(account, destination);
      for (std::size_t i = 0; i < given_back; ++i) pacing_.Unstarted();
      for (std::size_t i = given_back; i < taken; ++i) pacing_.Finished(clock_.Now());
      job_done_.NotifyAll();
    }
    --workers_running_;
    workers_done_.NotifyAll();
  }

  // --- results

  AccountRuntime* Runtime(const AccountConfig& config) {
    for (AccountRuntime& account : accounts_) {
      if (account.config == &config) return &account;
    }
    return nullptr;  // MakeAccounts creates a runtime for every account routing can reach
  }

  // Records `result`. A recipient that waits for its account (failed as a whole) stays taken: it
  // is due again at once, but for the next run.
  void Record(const RecipientRecord& recipient, AttemptResult result, std::string_view account,
              bool waits_for_account = false) {
    result.account = std::string(account);
    --counts_.by_status[static_cast<int>(recipient.status)];
    ++counts_.by_status[static_cast<int>(result.status)];
    switch (result.status) {
      case RecipientStatus::kSent: ++report_.sent; break;
      case RecipientStatus::kFailed: ++report_.failed; break;
      case RecipientStatus::kDeferred: ++report_.deferred; break;
      default: break;
    }
    observer_.OnResult(RecipientEvent{recipient, result, account, waits_for_account});
    writer_.AddResult(std::move(result));
    if (waits_for_account) return;
    // Still taken until the result is written: until then the store returns the recipient as
    // due, and a pass that fetched it again would decide it again — for a recipient that fails
    // before sending (no account takes it), over and over without ever yielding to the commit.
    written_soon_.emplace_back(recipient.id, writer_.scheduled_commit());
  }

  // Lets recipients whose results are written be fetched again (a retry due during the run).
  void ReleaseWritten() {
    while (!written_soon_.empty() && written_soon_.front().second <= writer_.commits()) {
      taken_.erase(written_soon_.front().first);
      written_soon_.pop_front();
    }
  }

  // A failure found before anything was sent: the recipient fails without an attempt.
  void FailBeforeSending(const RecipientRecord& recipient, std::string reason) {
    Outcome outcome;
    outcome.disposition = Disposition::kPermanent;
    outcome.stage = Stage::kPrepare;
    outcome.text = std::move(reason);
    Record(recipient, DecideResult(recipient.id, outcome, recipient.attempts, task_.sending, clock_.Now()), "");
  }

  // Recipients taken for a job that leave it without an attempt (stopped, refused by the store):
  // they stay as they are in the store. Returns how many, for the job's worker to take them off
  // the task's limit and block.
  std::size_t GiveBack(const std::vector<Pending>& recipients) {
    for (const Pending& pending : recipients) GiveBackOne(pending);
    return recipients.size();
  }
  void GiveBackOne(const Pending& pending) { taken_.erase(pending.record.id); }

  // The result that puts an in-flight recipient back to unsent after `outcome`.
  static AttemptResult PutBack(const Pending& pending, const Outcome& outcome, const AccountRuntime& account) {
    AttemptResult back;
    back.recipient_id = pending.record.id;
    back.status = RecipientStatus::kUnsent;
    back.error = ToDeliveryError(outcome);
    back.account = account.config->name;
    return back;
  }

  // What stops the run when this machine cannot take the messages (Scope::kLocal).
  static Status LocalFault(const AccountRuntime& account, const Outcome& outcome) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("account \"{}\": {}; the recipients not yet sent stay unsent: fix this and run "
                              "the same command again",
                              account.config->name, outcome.text));
  }

  // The one line that tells an account failed as a whole, and why.
  void NoteAccountFailure(AccountRuntime& account, const Outcome& failure) {
    if (account.failure) return;  // concurrent sends may all see it; say it once
    account.failure = failure;
    failed_accounts_.push_back(&account);
    observer_.OnWarning(fmt::format("account \"{}\" failed, not used again in this run: {}", account.config->name,
                                    Cause(failure)));
  }

  // The account that takes over from `account` for `to` — the first down its chain of
  // secondaries whose rules take the message and that has not failed in this run — or nullptr.
  AccountRuntime* Failover(const AccountRuntime& account, const Address& to) {
    std::vector<const AccountConfig*> failed;
    for (const AccountRuntime& runtime : accounts_) {
      if (runtime.failure) failed.push_back(runtime.config);
    }
    const AccountConfig* next = router_.NextAccount(*account.config, task_.message.from.address, to, failed);
    return next == nullptr ? nullptr : Runtime(*next);
  }

  // Whether an account down `account`'s chain of secondaries takes the message to `to` at all
  // (failed in this run or not).
  bool HasSecondaryFor(const AccountRuntime& account, const Address& to) const {
    return router_.NextAccount(*account.config, task_.message.from.address, to) != nullptr;
  }

  // The account down `account`'s chain that would take the message to `to` but failed as a
  // whole in this run: the one the recipient waits for when none is left.
  AccountRuntime* FailedInChain(const AccountRuntime& account, const Address& to) {
    const Address& from = task_.message.from.address;
    for (const AccountConfig* next = router_.NextAccount(*account.config, from, to); next != nullptr;
         next = router_.NextAccount(*next, from, to)) {
      AccountRuntime* runtime = Runtime(*next);
      if (runtime->failure) return runtime;
    }
    return nullptr;
  }

  // `pending` waits for `account`, which failed as a whole (DESIGN.md: a fault of the account,
  // not of the recipient): deferred without an attempt — its attempt taken back when it was in
  // flight — so retries never turn an account fault into a failed recipient; due again at once,
  // for the next run (it stays taken in this one). Said once per account (NoteAccountFailure)
  // and counted for the run's summary.
  void Park(const Pending& pending, AccountRuntime& account, bool in_flight) {
    AttemptResult result;
    result.recipient_id = pending.record.id;
    result.status = RecipientStatus::kDeferred;
    result.next_attempt_at = clock_.Now();
    result.error = ToDeliveryError(*account.failure);
    (in_flight ? result.withdrawn : result.postponed) = true;
    ++account.waiting;
    Record(pending.record, std::move(result), account.config->name, /*waits_for_account=*/true);
  }

  // Hands `recipients`, which `from` cannot deliver, each to the account that takes over for it
  // (Failover), in jobs per account and destination; those no account is left for wait for
  // `origin` (the account that failed first on their way) or the failed account of `from`'s
  // chain (Park). Returns how many were given back without an attempt.
  asio::awaitable<std::size_t> HandOver(std::vector<Pending> recipients, AccountRuntime& from, AccountRuntime* origin) {
    std::vector<Job> jobs;
    std::size_t given_back = 0;
    for (Pending& pending : recipients) {
      AccountRuntime* next = Failover(from, pending.to);
      if (next == nullptr) {
        AccountRuntime* waits_for = origin != nullptr ? origin : FailedInChain(from, pending.to);
        assert(waits_for != nullptr && waits_for->failure);  // only recipients some account takes are handed over
        Park(pending, *waits_for, /*in_flight=*/false);
        ++given_back;
        continue;
      }
      std::string destination = next->transport->Destination(pending.to);
      auto job = std::find_if(jobs.begin(), jobs.end(),
                              [&](const Job& j) { return j.account == next && j.destination == destination; });
      if (job == jobs.end()) {
        jobs.push_back(Job{{}, next, std::move(destination), origin});
        job = jobs.end() - 1;
      }
      job->recipients.push_back(std::move(pending));
    }
    for (Job& job : jobs) given_back += co_await Deliver(std::move(job));
    co_return given_back;
  }

  // Splits off the recipients an account down `account`'s chain takes (`relayable`: the failure
  // is one another path may get past), leaving the others in `recipients`.
  std::vector<Pending> SplitOffRelayable(std::vector<Pending>& recipients, const AccountRuntime& account,
                                         bool relayable) const {
    std::vector<Pending> elsewhere;
    if (!relayable) return elsewhere;
    std::vector<Pending> here;
    for (Pending& pending : recipients) {
      (HasSecondaryFor(account, pending.to) ? elsewhere : here).push_back(std::move(pending));
    }
    recipients = std::move(here);
    return elsewhere;
  }

  // A failure of a destination that another path may get past: it could not be reached for now,
  // or it refused this sending host by policy. A domain that does not exist or has a null MX
  // cannot be delivered to by any relay either.
  static bool Relayable(const Outcome& failure) {
    return failure.disposition == Disposition::kTemporary || failure.policy_refusal;
  }

  // --- composing

  // The message for `recipients`: personal for one; in turbo mode one message for all, addressed
  // to the sender (the recipients are in the envelope only, as Bcc).
  Status Compose(const std::vector<Pending>& recipients, const AccountRuntime& account, MessageData& message) const {
    const Pending& first = recipients.front();
    std::vector<std::string_view> values;
    if (turbo_) {
      values = empty_columns_;
    } else {
      values.assign(first.record.fields.begin(), first.record.fields.end());
    }
    std::string message_id = MessageId(first.record.id);
    const Address* to = turbo_ ? &task_.message.from.address : &first.to;
    RecipientParts parts{values, to, message_id, clock_.Now(), &account.overrides};
    return prepared_.composer->Compose(parts, message);
  }

  void SaveBackup(const Pending& recipient, const MessageData& message) {
    if (!prepared_.backup) return;
    std::vector<std::string_view> values(recipient.record.fields.begin(), recipient.record.fields.end());
    values.resize(prepared_.fields.size());
    std::string subject;
    std::string address = recipient.to.ToString();
    values[prepared_.fields.task_title_index()] = task_.title;
    values[prepared_.fields.recipient_index()] = address;
    prepared_.subject.Render(values, Escaping::kNone, subject);
    values[prepared_.fields.subject_index()] = subject;
    Result<std::string> saved = prepared_.backup->Save(values, message);
    if (!saved.ok()) {
      // The message went out; without its backup the user's record is incomplete, so stop
      // taking new work until the problem (usually a full disk) is fixed.
      Stop(saved.status().WithContext(fmt::format("backup of the message to {}", recipient.record.address)));
    }
  }

  std::vector<InFlight> InFlightEntries(const std::vector<Pending>& recipients, const AccountRuntime* account) const {
    std::vector<InFlight> entries;
    for (const Pending& pending : recipients) {
      InFlight entry;
      entry.recipient_id = pending.record.id;
      if (account != nullptr) {
        entry.account = account->config->name;
        entry.limits = account->config->limits;
        std::string destination = account->transport->Destination(pending.to);
        const DestinationRule* rule = account->config->DestinationRuleFor(destination);
        if (rule != nullptr && !rule->limits.empty()) {
          entry.destination = std::move(destination);
          entry.destination_limits = rule->limits;
        }
      }
      entries.push_back(std::move(entry));
    }
    return entries;
  }

  // Every recipient gets `failure` — of a destination that cannot be reached and no secondary
  // takes its recipients, or of a message too large — as the result of an attempt (so retries
  // end even when the destination never comes back): deferred or failed by its disposition.
  // Returns how many were given back instead.
  asio::awaitable<std::size_t> FailAll(std::vector<Pending> recipients, Outcome failure, std::string account) {
    Result<std::vector<RefusedInFlight>> marked = co_await writer_.PutInFlight(InFlightEntries(recipients, nullptr));
    if (!marked.ok()) {
      Stop(marked.status());
      co_return GiveBack(recipients);
    }
    std::size_t given_back = 0;
    for (const Pending& pending : recipients) {
      if (IsRefused(*marked, pending.record.id)) {
        GiveBackOne(pending);
        ++given_back;
        continue;
      }
      Record(pending.record,
             DecideResult(pending.record.id, failure, pending.record.attempts + 1, task_.sending, clock_.Now()),
             account);
    }
    co_return given_back;
  }

  // A destination could not be reached: permanent for the rest of the run, or backed off —
  // until the task's retry delay for its failures in a row has passed — for this run and (through
  // the store) every other. Parallel sends that fail together count as one failure.
  void NoteDestinationDown(AccountRuntime& account, const std::string& destination, const Outcome& failure) {
    auto known = account.down.find(destination);
    if (known != account.down.end() && !known->second.retry_at) return;  // permanent already
    DownDestination& down = account.down[destination];
    const TimePoint now = clock_.Now();
    if (failure.disposition == Disposition::kPermanent) {
      down = DownDestination{failure, ToDeliveryError(failure), 0, std::nullopt};
      return;
    }
    if (down.retry_at && *down.retry_at > now) return;  // already counted
    down.error = ToDeliveryError(failure);
    down.failures += 1;
    down.retry_at = now + RetryDelay(task_.sending, down.failures);
    DestinationBackoff backoff{account.config->name, destination, down.failures, *down.retry_at, down.error};
    if (Status saved = store_.SetDestinationBackoff(backoff); !saved.ok()) Stop(saved);
  }

  // Defers `recipients` until `until` without an attempt (their destination is backed off or at
  // its own sending limit), with `why` as their last error.
  void Postpone(const std::vector<Pending>& recipients, TimePoint until, const std::string& why,
                const DeliveryError& error, const AccountRuntime& account) {
    for (const Pending& pending : recipients) {
      AttemptResult result;
      result.recipient_id = pending.record.id;
      result.status = RecipientStatus::kDeferred;
      result.next_attempt_at = until;
      result.error = error;
      result.error.text = why;
      result.postponed = true;
      Record(pending.record, std::move(result), account.config->name);
    }
  }

  void PostponeBackedOff(const std::vector<Pending>& recipients, const DownDestination& down,
                         const AccountRuntime& account) {
    Postpone(recipients, *down.retry_at,
             fmt::format("{} (not tried again before {}, after {} failure(s) in a row)", down.error.text,
                         FormatLocalTime(*down.retry_at), down.failures),
             down.error, account);
  }

  // `pending` was refused by its destination's own sending limit: it waits until the destination
  // has room, and so does every recipient of the destination until then (said once).
  void PostponeForLimit(const Pending& pending, const std::string& destination, const RefusedInFlight& refused,
                        AccountRuntime& account) {
    auto [limited, first] = account.limited.emplace(destination, refused);
    if (first) {
      observer_.OnWarning(fmt::format("{}: its recipients wait until {}; other domains go on",
                                      LimitText(account, refused), FormatLocalTime(*refused.retry_at)));
    }
    Postpone(std::vector<Pending>{pending}, *limited->second.retry_at, LimitText(account, limited->second), {},
             account);
  }

  // What the recipients of a destination that failed more often than the task retries get.
  Outcome GaveUp(const std::string& destination, const DownDestination& down) const {
    Outcome outcome;
    outcome.disposition = Disposition::kPermanent;
    outcome.scope = Scope::kDestination;
    outcome.stage = Stage::kConnect;
    outcome.reply_code = down.error.reply_code;
    outcome.enhanced_status = down.error.enhanced_status;
    outcome.text = fmt::format("{} could not be reached in {} tries (retries = {}); the last time: {}", destination,
                               down.failures, task_.sending.retries, down.error.text);
    return outcome;
  }

  static bool IsRefused(const std::vector<RefusedInFlight>& refused, std::int64_t id) {
    for (const RefusedInFlight& entry : refused) {
      if (entry.recipient_id == id) return true;
    }
    return false;
  }

  // --- delivering one job

  // Whether `destination` of `account` is not to be tried now: it could not be reached and is
  // backed off (or for good), or it refused this sending host and a secondary may take over.
  bool DestinationDown(const AccountRuntime& account, const std::string& destination) const {
    auto down = account.down.find(destination);
    return down != account.down.end() && (!down->second.retry_at || clock_.Now() < *down->second.retry_at);
  }

  // Sends the job's recipients and records their results. Returns how many of them were given
  // back without an attempt.
  asio::awaitable<std::size_t> Deliver(Job job) {
    AccountRuntime* account = job.account;
    AccountRuntime* origin = job.origin;
    std::vector<Pending> recipients = std::move(job.recipients);
    std::size_t given_back = 0;
    while (!recipients.empty()) {
      if (stopping_) co_return given_back + GiveBack(recipients);
      // An account that failed as a whole in this run hands its work down its chain of
      // secondaries; what none is left for waits for the next run.
      if (account->failure) {
        std::size_t handed_back = co_await HandOver(std::move(recipients), *account, origin ? origin : account);
        co_return given_back + handed_back;
      }

      // Direct delivery to a domain that could not be reached (Scope::kDestination), or that
      // refused this sending host by policy: the recipients a secondary takes go there (DESIGN.md:
      // "in case a recipient's server does not accept mail sent directly from your computer, the
      // program uses the secondary server"); the others fail (permanent) or wait for the domain's
      // next try without an attempt. The account and its other destinations go on.
      std::string destination = account->transport->Destination(recipients.front().to);
      if (DestinationDown(*account, destination)) {
        const DownDestination& down = account->down.at(destination);
        std::vector<Pending> elsewhere =
            SplitOffRelayable(recipients, *account, down.retry_at.has_value() || down.outcome.policy_refusal);
        if (!elsewhere.empty()) given_back += co_await HandOver(std::move(elsewhere), *account, origin);
        if (recipients.empty()) co_return given_back;
        if (!DestinationDown(*account, destination)) continue;  // reachable again meanwhile
        const DownDestination& still = account->down.at(destination);
        if (!still.retry_at) {
          std::size_t failed_back = co_await FailAll(std::move(recipients), still.outcome, account->config->name);
          co_return given_back + failed_back;
        }
        if (still.failures > task_.sending.retries) {
          // Tried as often as the task retries a recipient: its recipients fail.
          std::size_t failed_back =
              co_await FailAll(std::move(recipients), GaveUp(destination, still), account->config->name);
          co_return given_back + failed_back;
        }
        PostponeBackedOff(recipients, still, *account);
        co_return given_back + recipients.size();
      }
      if (account->refusing.contains(destination)) {
        std::vector<Pending> elsewhere = SplitOffRelayable(recipients, *account, true);
        if (!elsewhere.empty()) given_back += co_await HandOver(std::move(elsewhere), *account, origin);
        if (recipients.empty()) co_return given_back;
      }
      if (auto limited = account->limited.find(destination); limited != account->limited.end()) {
        if (clock_.Now() < *limited->second.retry_at) {
          Postpone(recipients, *limited->second.retry_at, LimitText(*account, limited->second), DeliveryError(),
                   *account);
          co_return given_back + recipients.size();
        }
        account->limited.erase(limited);
      }

      auto message = std::make_shared<MessageData>();
      if (Status composed = Compose(recipients, *account, *message); !composed.ok()) {
        for (const Pending& pending : recipients) FailBeforeSending(pending.record, composed.message());
        co_return given_back;
      }
      if (account->config->max_message_size > 0 && message->size() > account->config->max_message_size) {
        std::size_t failed_back =
            co_await FailAll(std::move(recipients), TooLarge(*account, message->size()), account->config->name);
        co_return given_back + failed_back;
      }

      // The account's minimum wait between the starts of two messages: the slot is reserved and
      // waited for without a connection (none idles through the wait), then checked again with
      // the connection in hand against when the last message really left — connecting or
      // waiting for a free connection may have delayed it — right before this one leaves.
      // A destination's own minimum wait (direct delivery) applies as well, the same way.
      MinimumWait* destination_wait = account->DestinationWait(destination);
      TimePoint slot = account->minimum_wait.Reserve(clock_.Now());
      if (destination_wait != nullptr) slot = std::max(slot, destination_wait->Reserve(clock_.Now()));
      if (slot > clock_.Now()) co_await Sleep(slot);
      // The account or the destination may have failed meanwhile: no connection is tried again.
      if (stopping_ || account->failure || DestinationDown(*account, destination)) continue;

      Lease lease = co_await account->pool->Acquire(destination, [this] { return stopping_; });
      if (lease.connection == nullptr) {
        if (lease.failure.scope == Scope::kLocal) {
          Stop(LocalFault(*account, lease.failure));
          co_return given_back + GiveBack(recipients);
        }
        if (lease.failure.scope == Scope::kDestination) {
          NoteDestinationDown(*account, destination, lease.failure);
          // Another send's connect failed while this one waited for it: these recipients go
          // with the destination's others (see above), without an attempt.
          if (lease.shared) continue;
          // These recipients had their attempt, unless a secondary takes them.
          std::vector<Pending> elsewhere = SplitOffRelayable(recipients, *account, Relayable(lease.failure));
          if (!elsewhere.empty()) given_back += co_await HandOver(std::move(elsewhere), *account, origin);
          if (recipients.empty()) co_return given_back;
          std::size_t failed_back = co_await FailAll(std::move(recipients), lease.failure, account->config->name);
          co_return given_back + failed_back;
        }
        NoteAccountFailure(*account, lease.failure);
        continue;
      }
      if (auto down = account->down.find(destination); down != account->down.end()) {
        // Reachable again: its failures are forgotten, here and for every later run.
        account->down.erase(down);
        if (Status cleared = store_.ClearDestinationBackoff(account->config->name, destination); !cleared.ok()) {
          Stop(cleared);
        }
      }
      TimePoint leave = account->minimum_wait.NextLeave(clock_.Now());
      if (destination_wait != nullptr) leave = std::max(leave, destination_wait->NextLeave(clock_.Now()));
      if (leave > clock_.Now()) co_await Sleep(leave);
      if (stopping_) {
        co_await account->pool->Release(std::move(lease));
        continue;
      }
      account->minimum_wait.Left(clock_.Now());
      if (destination_wait != nullptr) destination_wait->Left(clock_.Now());

      // In flight before the message leaves (docs/design.md, "The recipient's state machine"), counted against
      // the account's sending limits in the same write.
      Result<std::vector<RefusedInFlight>> marked =
          co_await writer_.PutInFlight(InFlightEntries(recipients, account));
      if (!marked.ok()) {
        Stop(marked.status());
        co_await account->pool->Release(std::move(lease));
        co_return given_back + GiveBack(recipients);
      }
      std::vector<Pending> sending;
      std::vector<Pending> waiting;  // refused by a sending limit of the account
      std::optional<RefusedInFlight> limit;
      for (Pending& pending : recipients) {
        const RefusedInFlight* refused = nullptr;
        for (const RefusedInFlight& entry : *marked) {
          if (entry.recipient_id == pending.record.id) refused = &entry;
        }
        if (refused == nullptr) {
          sending.push_back(std::move(pending));
        } else if (refused->reason == RefusedInFlight::Reason::kLimit && !refused->destination.empty()) {
          // The destination's own limit: only its recipients wait, postponed until it has room;
          // the account's other destinations go on.
          PostponeForLimit(pending, destination, *refused, *account);
          ++given_back;
        } else if (refused->reason == RefusedInFlight::Reason::kLimit) {
          if (!limit || *refused->retry_at > *limit->retry_at) limit = *refused;
          waiting.push_back(std::move(pending));
        } else {
          GiveBackOne(pending);  // cancelled meanwhile, or taken by another process
          ++given_back;
        }
      }

      std::vector<Pending> elsewhere;  // to go through another account
      if (!sending.empty()) {
        Envelope envelope;
        envelope.mail_from = EnvelopeSender(task_, *account->config).ToString();
        envelope.smtputf8 = EnvelopeSender(task_, *account->config).needs_smtputf8;
        for (const Pending& pending : sending) {
          envelope.recipients.push_back(pending.to.ToString());
          envelope.smtputf8 = envelope.smtputf8 || pending.to.needs_smtputf8;
        }
        std::vector<Outcome> outcomes = co_await lease.connection->Send(std::move(envelope), message);
        co_await account->pool->Release(std::move(lease));
        TimePoint now = clock_.Now();
        bool backed_up = false;
        for (std::size_t i = 0; i < sending.size(); ++i) {
          Outcome outcome = i < outcomes.size() ? outcomes[i] : NoResult();
          const Pending& pending = sending[i];
          if (!outcome.delivered() && outcome.scope == Scope::kLocal) {
            // Not the recipient's fault: back to unsent, and the run stops.
            Stop(LocalFault(*account, outcome));
            writer_.AddResult(PutBack(pending, outcome, *account));
            GiveBackOne(pending);
            ++given_back;
            continue;
          }
          if (!outcome.delivered() && outcome.scope == Scope::kAccount) {
            // Not the recipient's fault either: the account's secondary takes over (a new
            // attempt), or the recipient waits for the account without this attempt counted.
            NoteAccountFailure(*account, outcome);
            if (Failover(*account, pending.to) == nullptr) {
              Park(pending, origin != nullptr ? *origin : *account, /*in_flight=*/true);
              ++given_back;
              continue;
            }
            writer_.AddResult(PutBack(pending, outcome, *account));
            elsewhere.push_back(pending);
            elsewhere.back().record.attempts += 1;
            continue;
          }
          if (!outcome.delivered() && outcome.policy_refusal && Failover(*account, pending.to) != nullptr) {
            // The server refused this sending host or sender by policy, not the recipient: the
            // secondary may get through (a new attempt). A mail exchanger that refuses this host
            // sends its domain's other recipients the same way at once.
            if (account->config->kind == AccountKind::kDirect) account->refusing.insert(destination);
            writer_.AddResult(PutBack(pending, outcome, *account));
            elsewhere.push_back(pending);
            elsewhere.back().record.attempts += 1;
            continue;
          }
          if (outcome.delivered() && !backed_up) {
            SaveBackup(pending, *message);
            backed_up = true;
          }
          Record(pending.record,
                 DecideResult(pending.record.id, outcome, pending.record.attempts + 1, task_.sending, now),
                 account->config->name);
        }
      } else {
        co_await account->pool->Release(std::move(lease));
      }
      if (!elsewhere.empty()) {
        given_back += co_await HandOver(std::move(elsewhere), *account,
                                        account->failure && origin == nullptr ? account : origin);
      }

      if (!waiting.empty()) {
        if (task_.sending.on_limit == OnLimit::kStop) {
          if (report_.limit_stop.empty()) report_.limit_stop = LimitStopText(*account, *limit);
          stopping_ = true;
          given_back += GiveBack(waiting);
          waiting.clear();
        } else {
          if (account->announced_limit != *limit->retry_at) {
            account->announced_limit = *limit->retry_at;
            Announce(LimitText(*account, *limit), LimitShortText(*account, *limit), *limit->retry_at);
          }
          // A wait of up to a month: it ends early when the task is cancelled meanwhile, and
          // then nothing is left to connect for.
          std::int64_t first = waiting.front().record.id;
          co_await sleeper_.SleepUntil(*limit->retry_at, [this, first] { return stopping_ || !StillDue(first); });
          if (!stopping_ && !StillDue(first)) {
            given_back += GiveBack(waiting);
            waiting.clear();
          }
        }
      }
      recipients = std::move(waiting);
    }
    co_return given_back;
  }

  const TaskConfig& task_;
  const TaskRecord& record_;
  const PreparedTask& prepared_;
  std::vector<AccountRuntime>& accounts_;
  const Router& router_;
  Store& store_;
  const Clock& clock_;
  Sleeper& sleeper_;
  RunObserver& observer_;
  asio::io_context& io_;
  RunReport& report_;
  StoreWriter writer_;
  Event workers_done_;
  Event job_done_;  // a worker finished a job (the block it ended may be done)
  asio::steady_timer progress_timer_;
  TaskPacing pacing_;
  bool turbo_;
  std::vector<std::string_view> empty_columns_;
  std::uint32_t workers_running_ = 0;
  std::deque<RecipientRecord> queue_;
  std::unordered_set<std::int64_t> taken_;  // fetched and not yet decided: never fetched twice
  // Decided recipients still in taken_, with the number of the commit that writes their result.
  std::deque<std::pair<std::int64_t, std::uint64_t>> written_soon_;
  std::deque<HeldGroup> held_;  // read ahead, waiting for a job (see TakeJob)
  std::size_t held_count_ = 0;  // recipients in held_
  std::int64_t cursor_ = 0;
  bool found_in_pass_ = false;  // the current pass over the store found a recipient not yet taken
  bool exhausted_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  TimePoint announced_block_{};
  std::vector<AccountRuntime*> failed_accounts_;  // in the order they failed
  // The wait last announced (Announce) and the time the run spent waiting, not counted as spent
  // sending.
  std::optional<TimePoint> waiting_until_;
  std::string waiting_for_;
  TimePoint paused_since_{};
  Duration paused_total_{0};
  StatusCounts counts_;
  TimePoint started_{};  // when sending started in this run
};

// How many connections a direct account opens to one recipient domain: the domain's rule, or the
// account's destination_max_connections. Null for other kinds (one destination, max_connections).
std::function<std::uint32_t(const std::string&)> DestinationLimit(const AccountConfig& account) {
  if (account.kind != AccountKind::kDirect) return nullptr;
  return [&account](const std::string& domain) {
    const DestinationRule* rule = account.DestinationRuleFor(domain);
    return rule != nullptr && rule->max_connections > 0 ? rule->max_connections
                                                        : account.destination_max_connections;
  };
}

// The engine's runtime of each account the preflight made ready.
std::vector<AccountRuntime> MakeAccounts(std::vector<ReadyAccount> ready, const Clock& clock, Sleeper& sleeper,
                                         asio::io_context& io) {
  std::vector<AccountRuntime> runtimes;
  runtimes.reserve(ready.size());
  for (ReadyAccount& account : ready) {
    const AccountConfig* config = account.config;
    AccountRuntime runtime;
    runtime.config = config;
    runtime.transport = std::move(account.transport);
    runtime.pool = std::make_unique<ConnectionPool>(
        *runtime.transport,
        PoolSettings{config->max_connections, config->reconnect_every, config->pause_between_chunks,
                     DestinationLimit(*config)},
        clock, sleeper, io.get_executor());
    runtime.overrides = OverridesOf(*config);
    runtime.minimum_wait = MinimumWait(config->minimum_wait);
    runtimes.push_back(std::move(runtime));
  }
  return runtimes;
}

}  // namespace

Result<RunReport> RunTask(const TaskConfig& task, const AccountSet& accounts, Store& store, const Clock& clock,
                          TransportFactory& transports, RunObserver& observer, RunOptions options) {
  RunReport report;
  Result<Preflight> preflight = PreflightTask(task, accounts, transports);
  if (!preflight.ok()) return preflight.status();
  for (const std::string& warning : preflight->warnings) observer.OnWarning(warning);
  const std::vector<std::string>& columns = preflight->columns;
  const PreparedTask& prepared = preflight->prepared;

  asio::io_context io(1);
  SteadySleeper steady_sleeper(clock);
  Sleeper& sleeper = options.sleeper != nullptr ? *options.sleeper : steady_sleeper;
  std::vector<AccountRuntime> runtimes = MakeAccounts(std::move(preflight->accounts), clock, sleeper, io);
  for (AccountRuntime& account : runtimes) {
    if (account.config->kind != AccountKind::kDirect) continue;
    Result<std::vector<DestinationBackoff>> backoffs = store.DestinationBackoffs(account.config->name);
    if (!backoffs.ok()) return backoffs.status();
    for (const DestinationBackoff& backoff : *backoffs) {
      account.down[backoff.destination] = DownDestination{{}, backoff.error, backoff.failures, backoff.retry_at};
    }
  }

  Result<SyncedTask> synced =
      SyncTask(task, columns, prepared.address_column, store, clock, options.accept_changes);
  if (!synced.ok()) return synced.status();
  if (synced->import) {
    observer.OnImport(*synced->import);
    report.import = std::move(synced->import);
  }
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
  Result<std::size_t> blacklisted = MarkBlacklisted(task, store, clock);
  if (!blacklisted.ok()) return blacklisted.status();
  report.blacklisted = *blacklisted;
  if (*blacklisted > 0) observer.OnBlacklisted(*blacklisted);

  Router router(accounts, task.sending.accounts);
  Run run(task, synced->record, prepared, runtimes, router, store, clock, sleeper, observer, io, report);
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
