#include "cli/cli.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "address/address.h"
#include "cli/console_observer.h"
#include "config/loader.h"
#include "config/secret.h"
#include "core/text.h"
#include "engine/prepared_task.h"
#include "engine/recipient_import.h"
#include "engine/task_runner.h"
#include "merge/csv_reader.h"
#include "mime/composer.h"
#include "cli/send_one.h"

namespace herald {
namespace {

constexpr std::string_view kExitCodes = R"(Exit codes:
  0  done: every recipient handled, none failed or waiting
  1  herald itself failed (a bug or an unexpected system error)
  2  the command line is wrong
  3  the configuration, task, recipient list or store cannot be used; nothing was sent
  4  the run finished, but some recipients failed or wait for a retry (see `herald status`)
  5  the run stopped early: interrupted, or a fault (store, disk); run it again to go on)";

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

// A task named on the command line: a task file, or a task id in the store given by --store.
struct TaskRef {
  std::string id;
  std::string store_file;
};

Result<TaskRef> ResolveTask(const std::string& task, const std::string& store_override) {
  std::error_code ec;
  if (task.ends_with(".toml") || std::filesystem::is_regular_file(task, ec)) {
    Result<TaskConfig> config = LoadTask(task);
    if (!config.ok()) return config.status();
    return TaskRef{config->id, store_override.empty() ? config->store_file : store_override};
  }
  return TaskRef{task, store_override.empty() ? "herald.db" : store_override};
}

std::vector<std::string> UsedAccounts(const LoadedTask& loaded) {
  std::vector<std::string> names = loaded.task.sending.accounts;
  if (names.empty()) {
    for (const AccountConfig& account : loaded.accounts.accounts()) names.push_back(account.name);
  }
  return names;
}

void PrintCounts(std::FILE* out, std::string_view id, const StatusCounts& counts) {
  fmt::print(out, "task {}: {} recipient(s)\n", id, GroupDigits(counts.total()));
  for (std::size_t i = 0; i < kRecipientStatusCount; ++i) {
    auto status = static_cast<RecipientStatus>(i);
    if (counts[status] == 0 && status != RecipientStatus::kSent && status != RecipientStatus::kUnsent) continue;
    fmt::print(out, "  {:<12} {}\n", RecipientStatusName(status), GroupDigits(counts[status]));
  }
  if (counts.possible_duplicates > 0) {
    fmt::print(out, "  possible duplicates: {} (in flight when a run stopped abruptly)\n",
               GroupDigits(counts.possible_duplicates));
  }
}

int Send(const CliDependencies& deps, const std::string& task_file, const std::string& accounts_file, bool quiet) {
  Result<LoadedTask> loaded = LoadTaskAndAccounts(task_file, accounts_file);
  if (!loaded.ok()) return Fail(loaded.status());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(loaded->task.store_file).parent_path(), ec);
  if (ec) {
    return Fail(IoError(fmt::format("cannot create the folder of the store {}: {}", loaded->task.store_file,
                                    ec.message())));
  }
  Result<std::unique_ptr<Store>> store = deps.open_store(loaded->task.store_file);
  if (!store.ok()) return Fail(store.status());

  ConsoleObserver observer(stderr, ::isatty(STDERR_FILENO) == 1, quiet);
  Result<RunReport> report = RunTask(loaded->task, loaded->accounts, **store, *deps.clock, *deps.transports, observer,
                                     RunOptions{.handle_signals = true});
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
  if (report->next_attempt_at) fmt::print("  next retry due at {}\n", LocalTime(*report->next_attempt_at));
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
      counts[RecipientStatus::kUnsent] > 0 || counts[RecipientStatus::kInFlight] > 0) {
    return kExitIncomplete;
  }
  return kExitOk;
}

int Check(const std::string& task_file, const std::string& accounts_file) {
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
    std::string where = account.kind == AccountKind::kPickup ? account.folder
                        : account.host.empty()               ? std::string(AccountKindName(account.kind))
                                                             : fmt::format("{}:{} {}", account.host, account.port,
                                                                           SecurityName(account.security));
    fmt::print("  account {} ({}): {}\n", name, AccountKindName(account.kind), where);
    for (const SecretRef* secret : {&account.password, &account.oauth2_token, &account.client_secret}) {
      if (secret->empty()) continue;
      Result<std::string> value = ReadSecret(*secret);
      if (!value.ok()) {
        fmt::print("    problem: {}\n", value.status().message());
        ++problems;
      }
    }
  }

  Result<std::vector<std::string>> columns = ReadRecipientColumns(task.recipients);
  if (!columns.ok()) return Fail(columns.status());
  Result<PreparedTask> prepared = PrepareTask(task, *columns);
  if (!prepared.ok()) return Fail(prepared.status());

  // Every row is read and every message composed (nothing is stored or sent), so a bad cell is
  // found now rather than at recipient 10,000.
  Result<std::unique_ptr<CsvReader>> reader =
      CsvReader::Open(task.recipients.file,
                      CsvOptions{.delimiter = task.recipients.delimiter, .encoding = task.recipients.encoding});
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
      to = ParseAddress(TrimBlanks(record.fields[prepared->address_column]));
      if (!to.ok()) problem = fmt::format("column \"{}\": {}", (*columns)[prepared->address_column], to.status().message());
    }
    if (!problem.empty()) {
      if (++bad <= 20) fmt::print("  bad row, line {}: {}\n", record.line, problem);
      continue;
    }
    values.assign(record.fields.begin(), record.fields.end());
    RecipientParts parts{values, &*to, "check@herald.invalid", FromUnixMillis(0), nullptr};
    if (Status composed = prepared->composer->Compose(parts, message); !composed.ok()) {
      if (++would_fail <= 20) fmt::print("  line {}: {} would fail: {}\n", record.line, to->ToString(), composed.message());
    }
  }
  if (bad > 20 || would_fail > 20) fmt::print("  ... (only the first 20 of each are listed)\n");
  fmt::print("  recipients: {} row(s) in {} (read as {}), {} bad ({})\n", GroupDigits(rows), task.recipients.file,
             (*reader)->encoding(), GroupDigits(bad),
             task.recipients.bad_rows == BadRows::kFail ? "a bad row stops the import" : "bad rows are skipped");
  fmt::print("  messages: {} composed, {} would fail\n", GroupDigits(rows - bad - would_fail), GroupDigits(would_fail));
  if (bad > 0 && task.recipients.bad_rows == BadRows::kFail) ++problems;
  if (problems > 0) {
    fmt::print("not ready: {} problem(s)\n", problems);
    return kExitConfig;
  }
  fmt::print("ready to send; nothing was sent\n");
  return kExitOk;
}

int ShowStatus(const CliDependencies& deps, const std::string& task, const std::string& store_file,
               bool list_recipients) {
  Result<TaskRef> ref = ResolveTask(task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  Result<std::unique_ptr<Store>> store = deps.open_store(ref->store_file);
  if (!store.ok()) return Fail(store.status());
  Result<std::optional<TaskRecord>> record = (*store)->FindTask(ref->id);
  if (!record.ok()) return Fail(record.status());
  if (!record->has_value()) {
    return Fail(NotFound(fmt::format("no task \"{}\" in the store {} (it is created by its first `herald send`)",
                                     ref->id, ref->store_file)));
  }
  Result<StatusCounts> counts = (*store)->CountByStatus(ref->id);
  if (!counts.ok()) return Fail(counts.status());
  PrintCounts(stdout, ref->id, *counts);
  Result<std::optional<TimePoint>> next = (*store)->NextAttemptAt(ref->id);
  if (next.ok() && next->has_value()) fmt::print("  next retry due at {}\n", LocalTime(**next));
  // Destinations of direct accounts that could not be reached: no task sends to them before then.
  Result<std::vector<DestinationBackoff>> backoffs = (*store)->DestinationBackoffs("");
  if (!backoffs.ok()) return Fail(backoffs.status(), kExitStopped);
  if (!backoffs->empty()) fmt::print("  domains not tried again before (direct delivery, every task of this store):\n");
  for (const DestinationBackoff& backoff : *backoffs) {
    fmt::print("    {:<30} {}  account \"{}\", {} failure(s) in a row: {}\n", backoff.destination,
               LocalTime(backoff.retry_at), backoff.account, backoff.failures, Printable(backoff.error.text, 100));
  }
  if (list_recipients) {
    Status listed = (*store)->ForEachRecipient(ref->id, [](const RecipientRecord& r) {
      std::string reply = r.last_error.reply_code == 0 ? std::string() : std::to_string(r.last_error.reply_code);
      if (!r.last_error.enhanced_status.empty()) reply += " " + r.last_error.enhanced_status;
      fmt::print("  {:<11} {:<40} {} {}\n", RecipientStatusName(r.status), r.address, reply,
                 Printable(r.last_error.text, 100));
      return Status::Ok();
    });
    if (!listed.ok()) return Fail(listed, kExitStopped);
  }
  return kExitOk;
}

// RFC 4180 field: quoted when it holds a delimiter, quote or line break.
void AppendCsvField(std::string& line, std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
    line += value;
    return;
  }
  line += '"';
  for (char c : value) {
    if (c == '"') line += '"';
    line += c;
  }
  line += '"';
}

int ExportCsv(const CliDependencies& deps, const std::string& task, const std::string& store_file,
           const std::string& output) {
  Result<TaskRef> ref = ResolveTask(task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  Result<std::unique_ptr<Store>> store = deps.open_store(ref->store_file);
  if (!store.ok()) return Fail(store.status());
  Result<std::optional<TaskRecord>> record = (*store)->FindTask(ref->id);
  if (!record.ok()) return Fail(record.status());
  if (!record->has_value()) return Fail(NotFound(fmt::format("no task \"{}\" in {}", ref->id, ref->store_file)));

  std::ofstream file;
  if (!output.empty() && output != "-") {
    file.open(output, std::ios::binary);
    if (!file) return Fail(IoError(fmt::format("cannot write {}", output)));
  }
  std::ostream& out = output.empty() || output == "-" ? std::cout : file;
  std::string line;
  for (std::string_view name : {"address", "status", "attempts", "reply_code", "enhanced_status", "last_error",
                                "account", "updated_at", "possible_duplicate", "line"}) {
    if (!line.empty()) line += ',';
    line += name;
  }
  for (const std::string& column : (*record)->columns) {
    line += ',';
    AppendCsvField(line, column);
  }
  line += "\r\n";
  out << line;
  Status visited = (*store)->ForEachRecipient(ref->id, [&](const RecipientRecord& r) {
    line.clear();
    AppendCsvField(line, r.address);
    line += ',';
    line += RecipientStatusName(r.status);
    line += fmt::format(",{},{},", r.attempts, r.last_error.reply_code == 0 ? "" : std::to_string(r.last_error.reply_code));
    AppendCsvField(line, r.last_error.enhanced_status);
    line += ',';
    AppendCsvField(line, r.last_error.text);
    line += ',';
    AppendCsvField(line, r.account);
    line += fmt::format(",{},{},{}", LocalTime(r.updated_at), r.possible_duplicate ? "yes" : "no", r.line);
    for (const std::string& value : r.fields) {
      line += ',';
      AppendCsvField(line, value);
    }
    line += "\r\n";
    out << line;
    return out ? Status::Ok() : IoError(fmt::format("cannot write {}", output.empty() ? "the output" : output));
  });
  out.flush();
  if (!visited.ok()) return Fail(visited, kExitStopped);
  return kExitOk;
}

int Cancel(const CliDependencies& deps, const std::string& task, const std::string& store_file) {
  Result<TaskRef> ref = ResolveTask(task, store_file);
  if (!ref.ok()) return Fail(ref.status());
  Result<std::unique_ptr<Store>> store = deps.open_store(ref->store_file);
  if (!store.ok()) return Fail(store.status());
  static constexpr RecipientStatus kNotYetSent[] = {RecipientStatus::kUnsent, RecipientStatus::kDeferred};
  Result<std::size_t> cancelled = (*store)->ChangeStatus(ref->id, kNotYetSent, RecipientStatus::kCancelled);
  if (!cancelled.ok()) return Fail(cancelled.status());
  fmt::print("task {}: {} recipient(s) cancelled; those sent or in flight are not affected\n", ref->id,
             GroupDigits(*cancelled));
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
  app.footer(std::string(kExitCodes));
  app.require_subcommand(1);
  app.set_version_flag("--version", "herald 0.1.0");

  std::string task_file, accounts_file, store_file, output;
  bool quiet = false;

  CLI::App* send = app.add_subcommand("send", "Send a task: every recipient not yet sent, with live progress");
  send->add_option("TASK", task_file, "the task file (TOML)")->required();
  send->add_option("--accounts", accounts_file, "the accounts file (default: the task's `accounts` setting)");
  send->add_flag("-q,--quiet", quiet, "no line per sent recipient (failures are still shown)");
  send->footer(std::string(kExitCodes));

  CLI::App* check = app.add_subcommand("check", "Check a task, its accounts and every recipient; send nothing");
  check->add_option("TASK", task_file, "the task file (TOML)")->required();
  check->add_option("--accounts", accounts_file, "the accounts file (default: the task's `accounts` setting)");
  check->footer(std::string(kExitCodes));

  auto add_task_ref = [&](CLI::App* command) {
    command->add_option("TASK", task_file, "the task file, or a task id with --store")->required();
    command->add_option("--store", store_file, "the store (default: the task's, or ./herald.db for an id)");
    command->footer(std::string(kExitCodes));
  };
  CLI::App* status = app.add_subcommand("status", "Count a task's recipients by status");
  add_task_ref(status);
  bool list_recipients = false;
  status->add_flag("-l,--list", list_recipients, "also list every recipient with its status and last reply");
  CLI::App* export_command =
      app.add_subcommand("export", "Write a CSV of a task's recipients: status, attempts, last error, columns");
  add_task_ref(export_command);
  export_command->add_option("-o,--output", output, "the CSV file to write (default: standard output)");
  CLI::App* cancel = app.add_subcommand("cancel", "Withdraw every recipient of a task not yet sent");
  add_task_ref(cancel);

  std::string account_name, from, to;
  CLI::App* test_account = app.add_subcommand(
      "test-account", "Check an account: show the dialogue (secrets hidden) and send one test message");
  test_account->add_option("ACCOUNTS", accounts_file, "the accounts file (TOML)")->required();
  test_account->add_option("NAME", account_name, "the account to test")->required();
  test_account->add_option("--from", from, "the sender of the test message")->required();
  test_account->add_option("--to", to, "the recipient of the test message")->required();
  test_account->footer(std::string(kExitCodes));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (*send) return Send(deps, task_file, accounts_file, quiet);
    if (*check) return Check(task_file, accounts_file);
    if (*status) return ShowStatus(deps, task_file, store_file, list_recipients);
    if (*export_command) return ExportCsv(deps, task_file, store_file, output);
    if (*cancel) return Cancel(deps, task_file, store_file);
    if (*test_account) return TestAccount(deps, accounts_file, account_name, from, to);
  } catch (const std::exception& error) {
    fmt::print(stderr, "herald: internal error: {}\n", error.what());
    return kExitInternal;
  }
  return kExitUsage;
}

}  // namespace herald
