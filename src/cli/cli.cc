#include "cli/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "address/address.h"
#include "cli/console_observer.h"
#include "cli/csv_dialect.h"
#include "cli/preview.h"
#include "config/loader.h"
#include "config/secret.h"
#include "config/task_file.h"
#include "core/text.h"
#include "engine/preflight.h"
#include "engine/prepared_task.h"
#include "engine/recipient_import.h"
#include "engine/task_runner.h"
#include "engine/task_sync.h"
#include "merge/csv_reader.h"
#include "mime/composer.h"
#include "smtp/helo_name.h"
#include "cli/send_one.h"

namespace herald {
namespace {

struct ExitCodeMeaning {
  int code;
  std::string_view meaning;
};

// The end of a command's --help: what its exit codes mean — 0 (`success`), then 1 and 2, which
// mean the same for every command, then the command's own `failures`.
std::string ExitCodes(std::string_view success, std::initializer_list<ExitCodeMeaning> failures) {
  std::string text = fmt::format("Exit codes:\n  0  {}", success);
  text += "\n  1  herald itself failed (a bug or an unexpected system error)\n  2  the command line is wrong";
  for (const ExitCodeMeaning& failure : failures) text += fmt::format("\n  {}  {}", failure.code, failure.meaning);
  return text;
}

std::string SendExitCodes() {
  return ExitCodes("done: every recipient handled, none failed or waiting",
                   {{kExitConfig, "the configuration, task, recipient list or store cannot be used; nothing was sent"},
                    {kExitIncomplete, "the run finished, but some recipients failed or wait for a retry, or rows of the "
                                      "recipient list were rejected (see `herald status`)"},
                    {kExitStopped, "the run stopped early: interrupted, or a fault (store, disk); run it again to go "
                                   "on"}});
}

// "herald sned": the command it was probably meant to be, and the commands there are.
int UnknownCommand(std::string_view word, const std::vector<CLI::App*>& commands) {
  std::vector<std::string_view> names;
  for (const CLI::App* command : commands) names.push_back(command->get_name());
  std::string_view closest = ClosestWord(word, names);
  fmt::print(stderr, "herald: \"{}\" is not a command{}\nthe commands are: {} (`herald COMMAND --help` for each)\n",
             Printable(word), closest.empty() ? "" : fmt::format("; did you mean `herald {}`?", closest),
             fmt::join(names, ", "));
  return kExitUsage;
}

int Fail(const Status& status, int code = kExitConfig) {
  fmt::print(stderr, "herald: {}\n", status.message());
  return code;
}

struct LoadedTask {
  TaskConfig task;
  AccountSet accounts;
};

Result<LoadedTask> LoadTaskAndAccounts(const std::string& task_file, const std::string& accounts_override) {
  Result<TaskConfig> task = LoadTask(task_file);
  if (!task.ok()) return task.status();
  if (!accounts_override.empty()) task->accounts_file = std::filesystem::absolute(accounts_override).string();
  Result<AccountSet> accounts = LoadAccounts(task->accounts_file);
  if (!accounts.ok()) return accounts.status();
  HERALD_RETURN_IF_ERROR(CheckTaskAccounts(*task, *accounts));
  return LoadedTask{std::move(*task), std::move(*accounts)};
}

// A task named on the command line — a task file, or a task id in the store given by --store —
// with its store, for a command that reads or changes what is stored: the store is never created.
struct OpenedTask {
  std::string id;  // as stored (engine/task_sync.h, StoredTaskId)
  std::string store_file;
  std::optional<TaskConfig> config;  // when named by its task file
  std::unique_ptr<Store> store;
};

Result<OpenedTask> OpenTask(const CliDependencies& deps, const std::string& task, const std::string& store_override) {
  OpenedTask opened;
  std::error_code ec;
  if (task.ends_with(".toml") || std::filesystem::is_regular_file(task, ec)) {
    Result<TaskConfig> loaded = LoadTask(task);
    if (!loaded.ok()) return loaded.status();
    if (!store_override.empty()) loaded->store_file = store_override;
    opened.id = loaded->id;
    opened.store_file = loaded->store_file;
    opened.config = std::move(*loaded);
  } else {
    opened.id = task;
    opened.store_file = store_override.empty() ? "herald.db" : store_override;
  }
  Result<std::unique_ptr<Store>> store = deps.open_store(opened.store_file, StoreOpening::kExistingOnly);
  if (store.status().code() == StatusCode::kNotFound) {
    return NotFound(fmt::format("no task \"{}\": {}; the first `herald send` of a task creates the store",
                                opened.id, store.status().message()));
  }
  if (!store.ok()) return store.status();
  opened.store = std::move(*store);
  if (opened.config) {
    Result<std::string> id = StoredTaskId(*opened.config, *opened.store);
    if (!id.ok()) return id.status();
    opened.id = *id;
  }
  return opened;
}

std::vector<std::string> UsedAccounts(const LoadedTask& loaded) {
  std::vector<std::string> names = loaded.task.sending.accounts;
  if (names.empty()) {
    for (const AccountConfig& account : loaded.accounts.accounts()) names.push_back(account.name);
  }
  return names;
}

// What `herald status` says about the mailing before the counts.
std::string MailingLines(const TaskRecord& task, const std::string& store_file) {
  std::string lines = fmt::format("  {:<12} {}\n", "title", task.title);
  if (task.task_file.empty()) {
    lines += fmt::format("  {:<12} not recorded yet (stored by an older herald; its next send records it)\n",
                         "task file");
  } else {
    lines += fmt::format("  {:<12} {}\n", "task file", TaskFileFromStore(task.task_file, store_file));
  }
  lines += fmt::format("  {:<12} {}\n", "first run", FormatLocalTime(task.submitted_at));
  if (task.last_run_at) lines += fmt::format("  {:<12} {}\n", "last run", FormatLocalTime(*task.last_run_at));
  return lines;
}

// `about`: lines printed after the first.
void PrintCounts(std::FILE* out, std::string_view id, const StatusCounts& counts, std::string_view about = {}) {
  fmt::print(out, "task {}: {} recipient(s)\n{}", id, GroupDigits(counts.total()), about);
  for (std::size_t i = 0; i < kRecipientStatusCount; ++i) {
    auto status = static_cast<RecipientStatus>(i);
    if (counts[status] == 0 && status != RecipientStatus::kSent && status != RecipientStatus::kUnsent) continue;
    fmt::print(out, "  {:<12} {}\n", RecipientStatusName(status), GroupDigits(counts[status]));
  }
  if (counts.possible_duplicates > 0) {
    fmt::print(out, "  possible duplicates: {} (may have got the message twice: in flight when a run stopped "
                    "abruptly, or the connection was lost after the message went out)\n",
               GroupDigits(counts.possible_duplicates));
  }
}

int Send(const CliDependencies& deps, const std::string& task_file, const std::string& accounts_file, bool quiet,
         bool accept_changes) {
  Result<LoadedTask> loaded = LoadTaskAndAccounts(task_file, accounts_file);
  if (!loaded.ok()) return Fail(loaded.status());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(loaded->task.store_file).parent_path(), ec);
  if (ec) {
    return Fail(IoError(fmt::format("cannot create the folder of the store {}: {}", loaded->task.store_file,
                                    ec.message())));
  }
  Result<std::unique_ptr<Store>> store = deps.open_store(loaded->task.store_file, StoreOpening::kCreateIfMissing);
  if (!store.ok()) return Fail(store.status());
  Result<std::string> stored_id = StoredTaskId(loaded->task, **store);
  if (!stored_id.ok()) return Fail(stored_id.status());
  loaded->task.id = *stored_id;

  ConsoleObserver observer(stderr, ::isatty(STDERR_FILENO) == 1, quiet);
  Result<RunReport> report = RunTask(loaded->task, loaded->accounts, **store, *deps.clock, *deps.transports, observer,
                                     RunOptions{.handle_signals = true, .accept_changes = accept_changes});
  observer.Finish();
  if (!report.ok()) return Fail(report.status());

  PrintCounts(stdout, loaded->task.id, report->counts);
  fmt::print("  this run: {} sent, {} failed, {} deferred\n", GroupDigits(report->sent), GroupDigits(report->failed),
             GroupDigits(report->deferred));
  for (const std::string& name : UsedAccounts(*loaded)) {
    const AccountConfig* account = loaded->accounts.Find(name);
    if (account != nullptr && account->kind == AccountKind::kPickup) {
      fmt::print("  account {} writes to the folder {}\n", name, account->folder);
    }
  }
  if (!loaded->task.backup.folder.empty()) fmt::print("  backups are in {}\n", loaded->task.backup.folder);
  if (report->blacklisted > 0) {
    fmt::print("  {} recipient(s) found on a blacklist before this run\n", GroupDigits(report->blacklisted));
  }
  if (report->task_limit_reached) {
    fmt::print("  the task's limit of {} message(s) per run is reached; the rest is sent by the next run\n",
               GroupDigits(loaded->task.sending.limit));
  }
  if (!report->limit_stop.empty()) fmt::print("  stopped: {}\n", report->limit_stop);
  for (const AccountWait& wait : report->waiting_for_accounts) {
    fmt::print("  {} recipient(s) wait for account {}, which failed: {}; once it is fixed, run the same command "
               "again\n",
               GroupDigits(wait.recipients), wait.account, wait.cause);
  }
  // Recipients waiting for an account are due at once, for the next run: that is no retry time.
  if (report->next_attempt_at && *report->next_attempt_at > deps.clock->Now()) {
    fmt::print("  next retry due at {}\n", FormatLocalTime(*report->next_attempt_at));
  }
  fmt::print("  store: {}\n", loaded->task.store_file);
  std::fflush(stdout);

  if (!report->stopped_by.ok()) {
    fmt::print(stderr, "herald: stopped early: {}\n", report->stopped_by.message());
    return kExitStopped;
  }
  if (report->interrupted) {
    fmt::print(stderr, "herald: interrupted; run the same command again to go on\n");
    return kExitStopped;
  }
  const StatusCounts& counts = report->counts;
  if (counts[RecipientStatus::kFailed] > 0 || counts[RecipientStatus::kDeferred] > 0 ||
      counts[RecipientStatus::kUnsent] > 0 || counts[RecipientStatus::kInFlight] > 0 ||
      counts[RecipientStatus::kRejected] > 0) {
    return kExitIncomplete;
  }
  return kExitOk;
}

int Check(const CliDependencies& deps, const std::string& task_file, const std::string& accounts_file) {
  Result<LoadedTask> loaded = LoadTaskAndAccounts(task_file, accounts_file);
  if (!loaded.ok()) return Fail(loaded.status());
  const TaskConfig& task = loaded->task;
  int problems = 0;
  fmt::print("task {} ({})\n", task.id, task.path);
  const MessageConfig& bodies = task.message;
  if (!bodies.text_body_encoding.empty()) {
    fmt::print("  text body: {} (read as {})\n", bodies.text_body_origin, bodies.text_body_encoding);
  }
  if (!bodies.html_body_encoding.empty()) {
    fmt::print("  HTML body: {} (read as {})\n", bodies.html_body_origin, bodies.html_body_encoding);
  }

  for (const std::string& name : UsedAccounts(*loaded)) {
    const AccountConfig& account = *loaded->accounts.Find(name);
    fmt::print("  account {} ({}): {}\n", name, AccountKindName(account.kind), account.Where());
    for (const SecretRef* secret : {&account.password, &account.oauth2_token, &account.client_secret}) {
      if (secret->empty()) continue;
      Result<std::string> value = ReadSecret(*secret);
      if (!value.ok()) {
        fmt::print("    problem: {}\n", value.status().message());
        ++problems;
      }
    }
  }

  // Whatever `herald send` refuses before its first message, refused here the same way.
  Result<Preflight> preflight = PreflightTask(task, loaded->accounts, *deps.transports);
  if (!preflight.ok()) return Fail(preflight.status());
  for (const std::string& warning : preflight->warnings) fmt::print("  warning: {}\n", warning);
  const std::vector<std::string>& columns = preflight->columns;
  const PreparedTask& prepared = preflight->prepared;

  // Every row is read and every message composed (nothing is stored or sent), so a bad cell is
  // found now rather than at recipient 10,000.
  Result<std::unique_ptr<CsvReader>> reader = OpenRecipientList(task.recipients);
  if (!reader.ok()) return Fail(reader.status());
  std::size_t rows = 0, bad = 0, would_fail = 0;
  CsvRecord record;
  MessageData message;
  std::vector<std::string_view> values;
  while (true) {
    Result<bool> more = (*reader)->Next(record);
    if (!more.ok()) return Fail(more.status());
    if (!*more) break;
    ++rows;
    std::string problem = record.problem;
    Result<Address> to = InvalidArgument("");
    if (problem.empty()) {
      to = ParseAddress(TrimBlanks(record.fields[prepared.address_column]));
      if (!to.ok()) problem = fmt::format("column \"{}\": {}", columns[prepared.address_column], to.status().message());
    }
    if (!problem.empty()) {
      if (++bad <= 20) fmt::print("  bad row, line {}: {}\n", record.line, problem);
      continue;
    }
    values.assign(record.fields.begin(), record.fields.end());
    RecipientParts parts{values, &*to, "check@herald.invalid", FromUnixMillis(0), nullptr};
    if (Status composed = prepared.composer->Compose(parts, message); !composed.ok()) {
      if (++would_fail <= 20) fmt::print("  line {}: {} would fail: {}\n", record.line, to->ToString(), composed.message());
    }
  }
  if (bad > 20 || would_fail > 20) fmt::print("  ... (only the first 20 of each are listed)\n");
  fmt::print("  recipients: {} row(s) in {} (read as {}), {} bad ({})\n", GroupDigits(rows), task.recipients.file,
             (*reader)->encoding(), GroupDigits(bad),
             task.recipients.bad_rows == BadRows::kFail ? "a bad row stops the import" : "bad rows are rejected");
  fmt::print("  messages: {} composed, {} would fail\n", GroupDigits(rows - bad - would_fail), GroupDigits(would_fail));
  if (bad > 0 && task.recipients.bad_rows == BadRows::kFail) ++problems;
  if (problems > 0) {
    fmt::print("not ready: {} problem(s)\n", problems);
    return kExitConfig;
  }
  fmt::print("ready to send; nothing was sent\n");
  return kExitOk;
}

int Preview(const CliDependencies& deps, const std::string& task_file, const std::string& accounts_file,
            long long row, const std::string& to, const std::string& output) {
  if (row < 1) return Fail(InvalidArgument("--row: rows count from 1, the first row after the header"), kExitUsage);
  PreviewOptions options{.row = static_cast<std::size_t>(row), .to = std::nullopt, .output = output};
  if (!to.empty()) {
    Result<Address> address = ParseAddress(to);
    if (!address.ok()) return Fail(address.status().WithContext("--to"), kExitUsage);
    options.to = std::move(*address);
  }
  Result<LoadedTask> loaded = LoadTaskAndAccounts(task_file, accounts_file);
  if (!loaded.ok()) return Fail(loaded.status());
  // With the message on standard output, the summary goes to standard error.
  Status written =
      WritePreview(loaded->task, loaded->accounts, options, *deps.clock, options.output == "-" ? stderr : stdout);
  return written.ok() ? kExitOk : Fail(written);
}

int ShowStatus(const CliDependencies& deps, const std::string& task, const std::string& store_file,
               bool list_recipients) {
  Result<OpenedTask> ref = OpenTask(deps, task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  Store* store = ref->store.get();
  Result<std::optional<TaskRecord>> record = store->FindTask(ref->id);
  if (!record.ok()) return Fail(record.status());
  if (!record->has_value()) {
    return Fail(NotFound(fmt::format("no task \"{}\" in the store {} (it is created by its first `herald send`)",
                                     ref->id, ref->store_file)));
  }
  Result<StatusCounts> counts = store->CountByStatus(ref->id);
  if (!counts.ok()) return Fail(counts.status());
  PrintCounts(stdout, ref->id, *counts, MailingLines(**record, ref->store_file));
  Result<std::optional<TimePoint>> next = store->NextAttemptAt(ref->id);
  if (next.ok() && next->has_value()) fmt::print("  next retry due at {}\n", FormatLocalTime(**next));
  // Destinations of direct accounts that could not be reached: no task sends to them before then.
  Result<std::vector<DestinationBackoff>> backoffs = store->DestinationBackoffs("");
  if (!backoffs.ok()) return Fail(backoffs.status(), kExitStopped);
  if (!backoffs->empty()) fmt::print("  domains not tried again before (direct delivery, every task of this store):\n");
  for (const DestinationBackoff& backoff : *backoffs) {
    fmt::print("    {:<30} {}  account \"{}\", {} failure(s) in a row: {}\n", backoff.destination,
               FormatLocalTime(backoff.retry_at), backoff.account, backoff.failures, Printable(backoff.error.text, 100));
  }
  if (list_recipients) {
    Status listed = store->ForEachRecipient(ref->id, [](const RecipientRecord& r) {
      std::string reply = r.last_error.reply_code == 0 ? std::string() : std::to_string(r.last_error.reply_code);
      if (!r.last_error.enhanced_status.empty()) reply += " " + r.last_error.enhanced_status;
      if (r.status == RecipientStatus::kRejected) reply = fmt::format("line {}:", r.line);
      fmt::print("  {:<11} {:<40} {} {}\n", RecipientStatusName(r.status), r.address, reply,
                 Printable(r.last_error.text, 100));
      return Status::Ok();
    });
    if (!listed.ok()) return Fail(listed, kExitStopped);
  }
  return kExitOk;
}

// How `herald export` writes its CSV.
struct ExportOptions {
  std::string output;     // empty or "-": standard output
  bool excel = false;     // a UTF-8 byte-order mark and the locale's list separator
  std::string delimiter;  // ",", ";" or "tab" from --delimiter; empty: as the others say
};

// The export's delimiter: --delimiter; with --excel the locale's list separator; else the
// recipient list's own (as the task sets it or as detected), or a comma for a task named by id.
char ExportDelimiter(const ExportOptions& options, const OpenedTask& ref) {
  if (!options.delimiter.empty()) return options.delimiter == "tab" ? '\t' : options.delimiter[0];
  if (options.excel) return SpreadsheetDelimiter();
  if (!ref.config) return ',';
  Result<std::unique_ptr<CsvReader>> list = OpenRecipientList(ref.config->recipients);
  if (!list.ok()) {
    fmt::print(stderr, "herald: {}; the export is written with commas\n", list.status().message());
    return ',';
  }
  return (*list)->delimiter();
}

int ExportCsv(const CliDependencies& deps, const std::string& task, const std::string& store_file,
              const ExportOptions& options) {
  const std::string& output = options.output;
  Result<OpenedTask> ref = OpenTask(deps, task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  Store* store = ref->store.get();
  Result<std::optional<TaskRecord>> record = store->FindTask(ref->id);
  if (!record.ok()) return Fail(record.status());
  if (!record->has_value()) return Fail(NotFound(fmt::format("no task \"{}\" in {}", ref->id, ref->store_file)));

  std::ofstream file;
  if (!output.empty() && output != "-") {
    file.open(output, std::ios::binary);
    if (!file) return Fail(IoError(fmt::format("cannot write {}", output)));
  }
  std::ostream& out = output.empty() || output == "-" ? std::cout : file;
  const char delimiter = ExportDelimiter(options, *ref);
  // Excel takes a CSV for UTF-8 only with a byte-order mark.
  if (options.excel) out << "\xEF\xBB\xBF";
  std::string line;
  auto add = [&line, delimiter](std::string_view value) {
    if (!line.empty()) line += delimiter;
    AppendCsvField(line, value, delimiter);
  };
  for (std::string_view name : {"address", "status", "attempts", "reply_code", "enhanced_status", "last_error",
                                "account", "updated_at", "possible_duplicate", "line"}) {
    add(name);
  }
  for (const std::string& column : (*record)->columns) add(column);
  line += "\r\n";
  out << line;
  const std::size_t columns = (*record)->columns.size();
  Status visited = store->ForEachRecipient(ref->id, [&](const RecipientRecord& r) {
    line.clear();
    add(r.address);
    add(RecipientStatusName(r.status));
    add(std::to_string(r.attempts));
    // A sent recipient has no error: the server's "250 2.0.0 Ok" would make every row look failed
    // to someone filtering on last_error.
    const bool failed = r.status != RecipientStatus::kSent;
    add(failed && r.last_error.reply_code != 0 ? std::to_string(r.last_error.reply_code) : "");
    add(failed ? r.last_error.enhanced_status : "");
    add(failed ? r.last_error.text : "");
    add(r.account);
    add(FormatLocalTime(r.updated_at));
    add(r.possible_duplicate ? "yes" : "no");
    add(std::to_string(r.line));
    // A rejected row may have no fields (store.h): its columns are empty.
    for (std::size_t i = 0; i < columns; ++i) add(i < r.fields.size() ? std::string_view(r.fields[i]) : "");
    line += "\r\n";
    out << line;
    return out ? Status::Ok() : IoError(fmt::format("cannot write {}", output.empty() ? "the output" : output));
  });
  out.flush();
  if (!visited.ok()) return Fail(visited, kExitStopped);
  return kExitOk;
}

int Cancel(const CliDependencies& deps, const std::string& task, const std::string& store_file) {
  Result<OpenedTask> ref = OpenTask(deps, task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  static constexpr RecipientStatus kNotYetSent[] = {RecipientStatus::kUnsent, RecipientStatus::kDeferred};
  Result<std::size_t> cancelled = ref->store->ChangeStatus(ref->id, kNotYetSent, RecipientStatus::kCancelled);
  if (!cancelled.ok()) return Fail(cancelled.status());
  fmt::print("task {}: {} recipient(s) cancelled; those sent or in flight are not affected\n", ref->id,
             GroupDigits(*cancelled));
  return kExitOk;
}

// Undoes `herald cancel`: the cancelled recipients go back to unsent (a deferred one's retry time
// was not kept), and the next `herald send` sends them.
int Resume(const CliDependencies& deps, const std::string& task, const std::string& store_file) {
  Result<OpenedTask> ref = OpenTask(deps, task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  static constexpr RecipientStatus kCancelled[] = {RecipientStatus::kCancelled};
  Result<std::size_t> resumed = ref->store->ChangeStatus(ref->id, kCancelled, RecipientStatus::kUnsent);
  if (!resumed.ok()) return Fail(resumed.status());
  fmt::print("task {}: {} cancelled recipient(s) back to unsent; the next `herald send` sends them\n", ref->id,
             GroupDigits(*resumed));
  return kExitOk;
}

// What a failed test send means, in plain words, before the server's own text.
std::string Explain(const Outcome& outcome, const std::string& from, const std::string& to) {
  switch (outcome.stage) {
    case Stage::kConnect: return "Could not reach the server";
    case Stage::kGreeting: return "The server refused the connection";
    case Stage::kHello: return "The server refused our greeting (EHLO/HELO)";
    case Stage::kStartTls: return "TLS could not be set up";
    case Stage::kAuth: return "Authentication was rejected";
    case Stage::kMailFrom: return fmt::format("The server refused the sender {}", from);
    case Stage::kRcptTo: return fmt::format("The server refused the recipient {}", to);
    case Stage::kData: return "The server refused the message";
    case Stage::kDataEnd: return "The server did not accept the message";
    case Stage::kWrite: return "The message could not be written";
    case Stage::kPrepare: return "The message could not be sent";
  }
  return "The test failed";
}

// Who else a failure concerns, in the words of Scope (transport/transport.h).
std::string Affected(const Outcome& outcome, const Address& to) {
  switch (outcome.scope) {
    case Scope::kAccount: return "the whole account is affected";
    case Scope::kDestination: return fmt::format("all mail to {} is affected", to.domain);
    case Scope::kLocal: return "nothing can go through this account until it is fixed on this machine";
    case Scope::kMessage:
    case Scope::kRecipient: break;
  }
  return "this message only";
}

int TestAccount(const CliDependencies& deps, const std::string& accounts_file, const std::string& name,
                const std::string& from_text, const std::string& to_text) {
  Result<AccountSet> accounts = LoadAccounts(accounts_file);
  if (!accounts.ok()) return Fail(accounts.status());
  const AccountConfig* account = accounts->Find(name);
  if (account == nullptr) {
    return Fail(NotFound(fmt::format("no account \"{}\" in {}; the accounts there: {}", name, accounts_file,
                                     accounts->Names())));
  }
  Result<Mailbox> from = ParseMailbox(from_text);
  if (!from.ok()) return Fail(from.status().WithContext("--from"), kExitUsage);
  Result<Address> to = ParseAddress(to_text);
  if (!to.ok()) return Fail(to.status().WithContext("--to"), kExitUsage);

  fmt::print("account {} ({}", account->name, AccountKindName(account->kind));
  if (!account->host.empty()) fmt::print(", {}:{} {}", account->host, account->port, SecurityName(account->security));
  fmt::print(")\n");
  if (!account->verify_certificate) fmt::print("warning: certificate verification is turned off for this account\n");
  if (std::optional<std::string> helo = HeloNameWarningForThisMachine(*account)) fmt::print("warning: {}\n", *helo);
  std::fflush(stdout);
  Result<std::unique_ptr<Transport>> transport = deps.transports->Create(*account, [](std::string_view line) {
    fmt::print("  {}\n", line);
    std::fflush(stdout);
  });
  if (!transport.ok()) return Fail(transport.status());

  FieldSet fields({});
  Result<Template> subject = Template::Compile("herald test message", fields, "subject");
  Result<Template> body = Template::Compile(
      fmt::format("This is a test message sent by herald through the account \"{}\".\n", account->name), fields,
      "body");
  ComposerSpec spec{.task_title = "test", .from_address = from->address, .subject = *subject, .text_body = *body};
  if (!from->display_name.empty()) spec.from_name = *Template::Compile(from->display_name, fields, "from");
  Result<std::shared_ptr<const MessageComposer>> composer = MessageComposer::Create(std::move(spec), fields);
  if (!composer.ok()) return Fail(composer.status());
  auto message = std::make_shared<MessageData>();
  std::string message_id = fmt::format("test.{}@{}", ToUnixMillis(deps.clock->Now()), from->address.domain);
  RecipientParts parts{{}, &*to, message_id, deps.clock->Now(), nullptr};
  if (Status composed = (*composer)->Compose(parts, *message); !composed.ok()) return Fail(composed);

  Envelope envelope{from->address.ToString(), {to->ToString()}, from->address.needs_smtputf8 || to->needs_smtputf8};
  Outcome outcome =
      SendOneMessage(**transport, (*transport)->Destination(*to), std::move(envelope), std::move(message));
  if (outcome.delivered()) {
    fmt::print("sent: the server accepted the test message for {} ({} {})\n", to->ToString(), outcome.reply_code,
               outcome.text);
    return kExitOk;
  }
  std::string code = outcome.reply_code == 0 ? std::string()
                                             : fmt::format(" ({}{}{})", outcome.reply_code,
                                                           outcome.enhanced_status.empty() ? "" : " ",
                                                           outcome.enhanced_status);
  fmt::print("failed: {}{}: {}\n", Explain(outcome, from->address.ToString(), to->ToString()), code, outcome.text);
  fmt::print("        ({} failure; {})\n",
             outcome.disposition == Disposition::kTemporary ? "a temporary" : "a permanent", Affected(outcome, *to));
  return kExitIncomplete;
}

}  // namespace

int RunCli(int argc, char** argv, const CliDependencies& deps) {
  CLI::App app("herald: a bulk mail-merge sending engine", "herald");
  app.footer(SendExitCodes() + "\n(of `herald send`; `herald COMMAND --help` says what they mean for each command)");
  app.require_subcommand(1);
  app.set_version_flag("--version", "herald 0.1.0");

  std::string task_file, accounts_file, store_file;
  bool quiet = false;

  CLI::App* send = app.add_subcommand("send", "Send a task: every recipient not yet sent, with live progress");
  send->add_option("TASK", task_file, "the task file (TOML)")->required();
  send->add_option("--accounts", accounts_file, "the accounts file (default: the task's `accounts` setting)");
  send->add_flag("-q,--quiet", quiet, "no line per sent recipient (failures are still shown)");
  bool accept_changes = false;
  send->add_flag("--accept-changes", accept_changes,
                 "go on with the mailing stored under the task's id although the task file now describes another "
                 "(recipients already sent are not sent again)");
  send->footer(SendExitCodes());

  CLI::App* check = app.add_subcommand("check", "Check a task, its accounts and every recipient; send nothing");
  check->add_option("TASK", task_file, "the task file (TOML)")->required();
  check->add_option("--accounts", accounts_file, "the accounts file (default: the task's `accounts` setting)");
  check->footer(ExitCodes("ready to send: the task, its accounts and every recipient's message can be used",
                          {{kExitConfig, "not ready: the configuration, an account's secret, the recipient list or "
                                         "a template has a problem (each is listed)"}}));

  CLI::App* preview = app.add_subcommand(
      "preview", "Write one recipient's message as it would be sent (an .eml file) and show it; send nothing");
  preview->add_option("TASK", task_file, "the task file (TOML)")->required();
  preview->add_option("--accounts", accounts_file, "the accounts file (default: the task's `accounts` setting)");
  long long preview_row = 1;
  std::string preview_to, preview_output;
  CLI::Option* row = preview->add_option("--row", preview_row,
                                         "the recipient in this data row of the list (default: 1, the first)");
  preview->add_option("--to", preview_to, "the recipient: the first row with this address")->excludes(row);
  preview->add_option("-o,--output", preview_output,
                      "the .eml file to write, or - for standard output (default: TASK-ID-preview.eml here)");
  preview->footer(ExitCodes("the message was written (and nothing sent)",
                            {{kExitConfig, "the configuration or the recipient list cannot be used, there is no row "
                                           "or address like that, no account takes the recipient, or the message "
                                           "cannot be composed or written"}}));

  auto add_task_ref = [&](CLI::App* command) {
    command->add_option("TASK", task_file, "the task file, or a task id with --store")->required();
    command->add_option("--store", store_file, "the store (default: the task's, or ./herald.db for an id)");
  };
  constexpr std::string_view kNoTask = "the task file or the store cannot be used, or the store has no such task";
  CLI::App* status = app.add_subcommand("status", "Count a task's recipients by status");
  add_task_ref(status);
  status->footer(ExitCodes("the task's recipients were counted",
                           {{kExitConfig, kNoTask}, {kExitStopped, "the store failed while it was being read"}}));
  bool list_recipients = false;
  status->add_flag("-l,--list", list_recipients, "also list every recipient with its status and last reply");
  CLI::App* export_command =
      app.add_subcommand("export", "Write a CSV of a task's recipients: status, attempts, last error, columns");
  add_task_ref(export_command);
  export_command->footer(ExitCodes("every recipient was written",
                                   {{kExitConfig, "the task file, the store or the output file cannot be used, or the "
                                                  "store has no such task"},
                                    {kExitStopped, "the store or the output failed while writing; the CSV is "
                                                   "incomplete"}}));
  ExportOptions export_options;
  export_command->add_option("-o,--output", export_options.output, "the CSV file to write (default: standard output)");
  export_command->add_flag("--excel", export_options.excel,
                           "for a spreadsheet: a UTF-8 byte-order mark, and ';' where the locale (LC_ALL, "
                           "LC_NUMERIC, LANG) writes decimals with a comma, ',' elsewhere");
  export_command->add_option("--delimiter", export_options.delimiter,
                             "the delimiter: \",\", \";\" or \"tab\" (default: the recipient list's, or a comma "
                             "for a task id)")
      ->check(CLI::IsMember({",", ";", "tab"}));
  CLI::App* cancel = app.add_subcommand("cancel", "Withdraw every recipient of a task not yet sent");
  add_task_ref(cancel);
  cancel->footer(ExitCodes("the recipients not yet sent were cancelled", {{kExitConfig, kNoTask}}));
  CLI::App* resume =
      app.add_subcommand("resume", "Undo `herald cancel`: the cancelled recipients are sent by the next send");
  add_task_ref(resume);
  resume->footer(ExitCodes("the cancelled recipients are unsent again", {{kExitConfig, kNoTask}}));

  std::string account_name, from, to;
  CLI::App* test_account = app.add_subcommand(
      "test-account", "Check an account: show the dialogue (secrets hidden) and send one test message");
  test_account->add_option("ACCOUNTS", accounts_file, "the accounts file (TOML)")->required();
  test_account->add_option("NAME", account_name, "the account to test")->required();
  test_account->add_option("--from", from, "the sender of the test message")->required();
  test_account->add_option("--to", to, "the recipient of the test message")->required();
  test_account->footer(ExitCodes(
      "the server accepted the test message",
      {{kExitConfig, "the accounts file cannot be used, or it has no such account"},
       {kExitIncomplete, "the test message was not accepted (what failed and the server's reply are shown)"}}));

  if (argc > 1 && argv[1][0] != '-') {
    const std::vector<CLI::App*> commands = app.get_subcommands({});
    if (std::none_of(commands.begin(), commands.end(), [&](CLI::App* c) { return c->check_name(argv[1]); })) {
      return UnknownCommand(argv[1], commands);
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (*send) return Send(deps, task_file, accounts_file, quiet, accept_changes);
    if (*check) return Check(deps, task_file, accounts_file);
    if (*preview) return Preview(deps, task_file, accounts_file, preview_row, preview_to, preview_output);
    if (*status) return ShowStatus(deps, task_file, store_file, list_recipients);
    if (*export_command) return ExportCsv(deps, task_file, store_file, export_options);
    if (*cancel) return Cancel(deps, task_file, store_file);
    if (*resume) return Resume(deps, task_file, store_file);
    if (*test_account) return TestAccount(deps, accounts_file, account_name, from, to);
  } catch (const std::exception& error) {
    fmt::print(stderr, "herald: internal error: {}\n", error.what());
    return kExitInternal;
  }
  return kExitUsage;
}

}  // namespace herald
