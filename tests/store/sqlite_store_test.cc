#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_clock.h"
#include "store/internal/dedup_hash.h"
#include "store/internal/field_codec.h"
#include "store/internal/schema.h"
#include "store/internal/send_limits.h"

namespace herald {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

namespace fs = std::filesystem;

// A directory of its own under the system's temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "herald_store_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string File(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Runs SQL on a store file through a connection of its own, as another program would.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// A hex literal of the field_codec encoding of `values`, for raw SQL.
std::string EncodedLiteral(const std::vector<std::string>& values) {
  std::string blob;
  store_internal::EncodeStrings(values, blob);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "x'";
  for (unsigned char c : blob) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out + "'";
}

// The rows of a query on the file as another program sees them, "a|b|c" each.
std::vector<std::string> RawRows(const std::string& path, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        std::string row;
        for (int i = 0; i < n; ++i) row += (i > 0 ? "|" : "") + std::string(values[i] != nullptr ? values[i] : "NULL");
        static_cast<std::vector<std::string>*>(out)->push_back(std::move(row));
        return 0;
      },
      &rows, &error);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return rows;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TaskRecord MakeTask(std::string id, std::vector<std::string> columns = {"email", "first_name"}) {
  TaskRecord task;
  task.id = std::move(id);
  task.title = "Spring newsletter for " + task.id;
  task.columns = std::move(columns);
  task.submitted_at = FromUnixMillis(1'767'225'600'000);
  task.source_digest = "sha256:0f1e";
  task.nonce = "n-" + task.id;
  return task;
}

NewRecipient MakeRecipient(std::string address, std::size_t line, std::string first_name = "Ann") {
  NewRecipient r;
  r.dedup_key = address;
  for (char& c : r.dedup_key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  r.fields = {address, std::move(first_name)};
  r.address = std::move(address);
  r.line = line;
  return r;
}

std::vector<NewRecipient> MakeRecipients(std::size_t count, std::size_t first_line = 2) {
  std::vector<NewRecipient> list;
  for (std::size_t i = 0; i < count; ++i) {
    list.push_back(MakeRecipient("user" + std::to_string(i) + "@example.com", first_line + i));
  }
  return list;
}

std::vector<std::int64_t> Ids(const std::vector<RecipientRecord>& records) {
  std::vector<std::int64_t> ids;
  for (const RecipientRecord& r : records) ids.push_back(r.id);
  return ids;
}

// In-flight entries for `ids`, through `account` (empty: not counted) with `limits`.
std::vector<InFlight> Entries(const std::vector<std::int64_t>& ids, const std::string& account = "",
                              const std::vector<SendingLimit>& limits = {}) {
  std::vector<InFlight> entries;
  for (std::int64_t id : ids) entries.push_back(InFlight{id, account, limits});
  return entries;
}

SendingLimit Limit(std::string_view text) {
  Result<SendingLimit> limit = ParseSendingLimit(text);
  EXPECT_TRUE(limit.ok()) << text << ": " << limit.status().ToString();
  return limit.ok() ? *limit : SendingLimit{};
}

std::string Describe(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::int64_t id : ids) out += (out.size() > 1 ? " " : "") + std::to_string(id);
  return out + "]";
}

// Imports `list` into `task_id` and returns, per recipient, whether it was added.
std::vector<bool> ImportInto(Store& store, const std::string& task_id, const std::vector<NewRecipient>& list) {
  std::vector<bool> added;
  Result<std::unique_ptr<RecipientImport>> import = store.BeginImport(task_id);
  EXPECT_TRUE(import.ok()) << import.status().ToString();
  if (!import.ok()) return added;
  for (const NewRecipient& r : list) {
    Result<bool> got = (*import)->Add(r);
    EXPECT_TRUE(got.ok()) << r.address << ": " << got.status().ToString();
    added.push_back(got.ok() && *got);
  }
  Status finished = (*import)->Finish();
  EXPECT_TRUE(finished.ok()) << finished.ToString();
  return added;
}

// Every recipient of the task, in id order.
std::vector<RecipientRecord> AllOf(Store& store, const std::string& task_id) {
  std::vector<RecipientRecord> all;
  Status status = store.ForEachRecipient(task_id, [&](const RecipientRecord& r) {
    all.push_back(r);
    return Status::Ok();
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return all;
}

class SqliteStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    path_ = GetParam() ? std::string(":memory:") : dir_.File("herald.db");
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<SqliteStore> OpenStore(std::size_t batch_rows = 10'000) {
    SqliteStore::Options options;
    options.clock = &clock_;
    options.import_batch_rows = batch_rows;
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Imports `list` into `task_id` and returns, per recipient, whether it was added.
  std::vector<bool> Import(const std::string& task_id, const std::vector<NewRecipient>& list) {
    return ImportInto(*store_, task_id, list);
  }

  // A task "t" with `count` imported recipients; returns their ids in import order.
  std::vector<std::int64_t> SetUpTask(std::size_t count, const std::string& task_id = "t") {
    Status created = store_->CreateTask(MakeTask(task_id));
    EXPECT_TRUE(created.ok()) << created.ToString();
    Import(task_id, MakeRecipients(count));
    return Ids(All(task_id));
  }

  std::vector<RecipientRecord> All(const std::string& task_id) { return AllOf(*store_, task_id); }

  RecipientRecord Get(std::int64_t id, const std::string& task_id = "t") {
    for (RecipientRecord& r : All(task_id)) {
      if (r.id == id) return r;
    }
    ADD_FAILURE() << "no recipient " << id;
    return {};
  }

  // Applies a batch that must be written whole.
  void ApplyOk(const StoreBatch& batch, TimePoint now) {
    Result<ApplyReport> report = store_->Apply(batch, now);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_TRUE(report->refused.empty()) << report->refused.size() << " entries refused, first "
                                         << report->refused.front().recipient_id;
  }

  // Puts the first `count` due recipients of the task in flight through `account` at `now`.
  ApplyReport Send(std::size_t count, const std::string& account, TimePoint now,
                   const std::vector<SendingLimit>& limits = {}, const std::string& task_id = "t") {
    Result<std::vector<RecipientRecord>> due = store_->FetchDue(task_id, now, 0, count);
    EXPECT_TRUE(due.ok()) << due.status().ToString();
    EXPECT_EQ(due.ok() ? due->size() : 0, count) << "due recipients of task " << task_id;
    StoreBatch batch;
    if (due.ok()) batch.in_flight = Entries(Ids(*due), account, limits);
    Result<ApplyReport> report = store_->Apply(batch, now);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : ApplyReport();
  }

  // Send() that must not be refused.
  void SendOk(std::size_t count, const std::string& account, TimePoint now,
              const std::vector<SendingLimit>& limits = {}) {
    const ApplyReport report = Send(count, account, now, limits);
    EXPECT_TRUE(report.refused.empty()) << report.refused.size() << " of " << count << " through " << account
                                        << " refused";
  }

  StatusCounts Counts(const std::string& task_id = "t") {
    Result<StatusCounts> counts = store_->CountByStatus(task_id);
    EXPECT_TRUE(counts.ok()) << counts.status().ToString();
    return counts.ok() ? *counts : StatusCounts();
  }

  TempDir dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
};

INSTANTIATE_TEST_SUITE_P(FileAndMemory, SqliteStoreTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Memory" : "File"; });

// --- tasks

TEST_P(SqliteStoreTest, CreatesFindsAndListsTasks) {
  const TaskRecord first = MakeTask("spring", {"email", "first_name", "", "city"});
  TaskRecord second = MakeTask("autumn", {});
  second.submitted_at = FromUnixMillis(1'700'000'000'123);
  second.source_digest = "";
  ASSERT_TRUE(store_->CreateTask(first).ok());
  ASSERT_TRUE(store_->CreateTask(second).ok());

  Result<std::optional<TaskRecord>> found = store_->FindTask("spring");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  const TaskRecord& got = **found;
  EXPECT_EQ(got.id, first.id);
  EXPECT_EQ(got.title, first.title);
  EXPECT_EQ(got.columns, first.columns);
  EXPECT_EQ(got.submitted_at, first.submitted_at);
  EXPECT_EQ(got.source_digest, first.source_digest);
  EXPECT_EQ(got.nonce, first.nonce);
  EXPECT_EQ(got.task_file, first.task_file);
  EXPECT_EQ(got.fingerprint, first.fingerprint);
  EXPECT_EQ(got.last_run_at, first.last_run_at);

  Result<std::optional<TaskRecord>> missing = store_->FindTask("winter");
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_FALSE(missing->has_value());

  Result<std::vector<TaskRecord>> all = store_->ListTasks();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "spring");  // creation order
  EXPECT_EQ((*all)[1].id, "autumn");
  EXPECT_EQ((*all)[1].submitted_at, second.submitted_at);
  EXPECT_TRUE((*all)[1].columns.empty());
  EXPECT_TRUE((*all)[1].task_file.empty());
  EXPECT_FALSE((*all)[1].last_run_at.has_value());
}

TEST_P(SqliteStoreTest, RecordsEachRunOfATask) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("spring")).ok());
  ASSERT_TRUE(store_->CreateTask(MakeTask("autumn")).ok());
  const TaskRun run{"Spring 2027", "mailings/spring/task.toml", "from=1f2e subject=3d4c", clock_.Now() + hours(2)};
  ASSERT_TRUE(store_->RecordTaskRun("spring", run).ok());
  const TaskRecord got = **store_->FindTask("spring");
  EXPECT_EQ(got.title, run.title);
  EXPECT_EQ(got.task_file, run.task_file);
  EXPECT_EQ(got.fingerprint, run.fingerprint);
  EXPECT_EQ(got.last_run_at, run.at);
  EXPECT_EQ(got.submitted_at, MakeTask("spring").submitted_at);  // the first run stays
  const TaskRecord other = **store_->FindTask("autumn");
  EXPECT_EQ(other.title, MakeTask("autumn").title);
  EXPECT_FALSE(other.last_run_at.has_value());
  EXPECT_EQ(store_->RecordTaskRun("winter", run).code(), StatusCode::kNotFound);
}

TEST_P(SqliteStoreTest, RefusesADuplicateTaskIdAndKeepsTheFirst) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("spring")).ok());
  TaskRecord again = MakeTask("spring");
  again.title = "Another title";
  Status status = store_->CreateTask(again);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  EXPECT_NE(status.message().find("'spring'"), std::string::npos) << status.message();
  EXPECT_EQ((*store_->FindTask("spring"))->title, MakeTask("spring").title);
  EXPECT_EQ(store_->ListTasks()->size(), 1u);

  EXPECT_EQ(store_->CreateTask(MakeTask("")).code(), StatusCode::kInvalidArgument);
}

TEST_P(SqliteStoreTest, SetsTheSourceDigest) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("spring")).ok());
  ASSERT_TRUE(store_->SetTaskSourceDigest("spring", "sha256:beef").ok());
  EXPECT_EQ((*store_->FindTask("spring"))->source_digest, "sha256:beef");
  EXPECT_EQ(store_->SetTaskSourceDigest("winter", "x").code(), StatusCode::kNotFound);
}

TEST_P(SqliteStoreTest, TaskOperationsOnAnUnknownTaskAreNotFound) {
  const RecipientStatus from[] = {RecipientStatus::kFailed};
  EXPECT_EQ(store_->BeginImport("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->FetchDue("nope", clock_.Now(), 0, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->RecoverInFlight("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->NextAttemptAt("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ChangeStatus("nope", from, RecipientStatus::kUnsent).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->CountByStatus("nope").status().code(), StatusCode::kNotFound);
  Status status = store_->ForEachRecipient("nope", [](const RecipientRecord&) { return Status::Ok(); });
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("'nope'"), std::string::npos) << status.message();
}

// --- import

TEST_P(SqliteStoreTest, ImportSkipsDuplicatesWithinAndAcrossImports) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  ASSERT_TRUE(store_->CreateTask(MakeTask("other")).ok());
  const std::vector<NewRecipient> list = {
      MakeRecipient("a@example.com", 2), MakeRecipient("b@example.com", 3),
      MakeRecipient("A@Example.com", 4),  // same dedup key as line 2
      MakeRecipient("c@example.com", 5), MakeRecipient("b@example.com", 6),
  };
  EXPECT_EQ(Import("t", list), (std::vector<bool>{true, true, false, true, false}));
  EXPECT_EQ(Counts().total(), 3u);

  // The same list again adds nobody; a new address among old ones is added.
  EXPECT_EQ(Import("t", list), (std::vector<bool>(5, false)));
  EXPECT_EQ(Import("t", {MakeRecipient("d@example.com", 7), MakeRecipient("a@example.com", 8)}),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(Counts().total(), 4u);

  // Dedup keys are per task.
  EXPECT_EQ(Import("other", list), (std::vector<bool>{true, true, false, true, false}));

  const std::vector<RecipientRecord> all = All("t");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].address, "a@example.com");
  EXPECT_EQ(all[0].line, 2u);  // the first occurrence wins
  EXPECT_EQ(all[3].address, "d@example.com");
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].id, all[i].id);
}

TEST_P(SqliteStoreTest, ImportKeepsEveryFieldExactly) {
  const std::string with_nul("before\0after", 12);
  const std::string big(100 * 1024, 'x');
  const std::vector<std::vector<std::string>> cases = {
      {"", "", ""},
      {"plain", "Zoë Ångström", "日本語"},
      {with_nul, std::string(1, '\0'), "x"},
      {big, "", big + "y"},
      {"line1\r\nline2", "\t", " "},
  };
  ASSERT_TRUE(store_->CreateTask(MakeTask("t", {"a", "b", "c"})).ok());
  clock_.Advance(minutes(5));
  std::vector<NewRecipient> list;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    NewRecipient r;
    r.address = "r" + std::to_string(i) + "@example.com";
    r.dedup_key = r.address;
    r.fields = cases[i];
    r.line = 10 + i;
    list.push_back(r);
  }
  EXPECT_EQ(Import("t", list), std::vector<bool>(cases.size(), true));

  const std::vector<RecipientRecord> all = All("t");
  ASSERT_EQ(all.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const RecipientRecord& got = all[i];
    EXPECT_EQ(got.fields, cases[i]) << "case " << i;
    EXPECT_EQ(got.address, list[i].address);
    EXPECT_EQ(got.line, 10 + i);
    EXPECT_EQ(got.status, RecipientStatus::kUnsent);
    EXPECT_EQ(got.attempts, 0);
    EXPECT_FALSE(got.next_attempt_at.has_value());
    EXPECT_TRUE(got.last_error.empty());
    EXPECT_EQ(got.account, "");
    EXPECT_EQ(got.updated_at, clock_.Now());
    EXPECT_FALSE(got.possible_duplicate);
  }
  // FetchDue reads the same rows the same way.
  Result<std::vector<RecipientRecord>> due = store_->FetchDue("t", clock_.Now(), 0, 100);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  ASSERT_EQ(due->size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ((*due)[i].fields, cases[i]) << "case " << i;
}

TEST_P(SqliteStoreTest, ImportRefusesInvalidRecipientsAndGoesOn) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  Result<std::unique_ptr<RecipientImport>> import = store_->BeginImport("t");
  ASSERT_TRUE(import.ok()) << import.status().ToString();

  NewRecipient too_few = MakeRecipient("a@example.com", 7);
  too_few.fields.pop_back();
  Result<bool> got = (*import)->Add(too_few);
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("line 7"), std::string::npos) << got.status().message();

  NewRecipient no_key = MakeRecipient("b@example.com", 8);
  no_key.dedup_key.clear();
  EXPECT_EQ((*import)->Add(no_key).status().code(), StatusCode::kInvalidArgument);

  got = (*import)->Add(MakeRecipient("c@example.com", 9));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got);
  ASSERT_TRUE((*import)->Finish().ok());
  EXPECT_EQ((*import)->Add(MakeRecipient("d@example.com", 10)).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Counts().total(), 1u);
}

TEST_P(SqliteStoreTest, RejectedRowsAreKeptNeverSentAndReplacedByTheNextImport) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  ASSERT_TRUE(store_->CreateTask(MakeTask("other")).ok());
  auto import = [&](const std::string& task_id, const std::vector<NewRecipient>& good,
                    const std::vector<RejectedRow>& rejected) {
    Result<std::unique_ptr<RecipientImport>> started = store_->BeginImport(task_id);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    for (const NewRecipient& r : good) ASSERT_TRUE((*started)->Add(r).ok());
    for (const RejectedRow& row : rejected) {
      Status status = (*started)->Reject(row);
      ASSERT_TRUE(status.ok()) << status.ToString();
    }
    ASSERT_TRUE((*started)->Finish().ok());
  };
  const RejectedRow bad_address{"ann@", {"ann@", "Ann"}, 3, "column \"email\": no domain"};
  const RejectedRow short_row{"", {}, 4, "expected 2 fields as in the header row, got 1"};
  import("t", MakeRecipients(2), {bad_address, short_row});
  import("other", {}, {RejectedRow{"x@", {}, 9, "other's"}});

  std::vector<RecipientRecord> all = All("t");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].status, RecipientStatus::kRejected);
  EXPECT_EQ(all[2].address, "ann@");
  EXPECT_EQ(all[2].fields, bad_address.fields);
  EXPECT_EQ(all[2].line, 3u);
  EXPECT_EQ(all[2].last_error, (DeliveryError{0, "", bad_address.reason}));
  EXPECT_EQ(all[2].attempts, 0);
  EXPECT_EQ(all[3].status, RecipientStatus::kRejected);
  EXPECT_TRUE(all[3].fields.empty());
  EXPECT_EQ(all[3].last_error.text, short_row.reason);
  EXPECT_EQ(Counts()[RecipientStatus::kRejected], 2u);

  // Never due, never put in flight, never changed in bulk.
  Result<std::vector<RecipientRecord>> due = store_->FetchDue("t", clock_.Now() + hours(100), 0, 10);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 2u);
  StoreBatch batch;
  batch.in_flight = Entries({all[2].id});
  Result<ApplyReport> report = store_->Apply(batch, clock_.Now());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  EXPECT_EQ(report->refused[0].reason, RefusedInFlight::Reason::kNotDue);
  const RecipientStatus rejected[] = {RecipientStatus::kRejected};
  const RecipientStatus unsent[] = {RecipientStatus::kUnsent};
  EXPECT_EQ(store_->ChangeStatus("t", rejected, RecipientStatus::kUnsent).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ChangeStatus("t", unsent, RecipientStatus::kRejected).status().code(),
            StatusCode::kInvalidArgument);
  batch = {};
  batch.results = {{all[2].id, RecipientStatus::kRejected, std::nullopt, {}, ""}};
  EXPECT_EQ(store_->Apply(batch, clock_.Now()).status().code(), StatusCode::kInvalidArgument);

  // A row with the address of a rejected one is no duplicate, nor the other way round.
  NewRecipient fixed = MakeRecipient("ann@example.com", 3);
  // The next import (the list changed) replaces the rejected rows: the fixed row is a recipient,
  // a new bad row is rejected. The other task's are left alone.
  import("t", {fixed}, {RejectedRow{"bob@@example.com", {}, 7, "two @"}});
  all = All("t");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].address, "ann@example.com");
  EXPECT_EQ(all[2].status, RecipientStatus::kUnsent);
  EXPECT_EQ(all[3].status, RecipientStatus::kRejected);
  EXPECT_EQ(all[3].line, 7u);
  EXPECT_EQ(Counts("other")[RecipientStatus::kRejected], 1u);
  // An import without a bad row (or any row) leaves none.
  import("t", {}, {});
  EXPECT_EQ(Counts()[RecipientStatus::kRejected], 0u);
  EXPECT_EQ(Counts().total(), 3u);

  // Fields other than none or one per column are refused, and the import goes on.
  Result<std::unique_ptr<RecipientImport>> started = store_->BeginImport("t");
  ASSERT_TRUE(started.ok());
  EXPECT_EQ((*started)->Reject(RejectedRow{"a@", {"a@"}, 2, "x"}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*started)->Reject(RejectedRow{"a@", {}, 2, "x"}).ok());
  EXPECT_TRUE((*started)->Finish().ok());
  EXPECT_EQ(Counts()[RecipientStatus::kRejected], 1u);
}

TEST_P(SqliteStoreTest, ImportWithoutFinishKeepsOnlyCommittedBatches) {
  store_.reset();
  store_ = OpenStore(/*batch_rows=*/3);
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  {
    Result<std::unique_ptr<RecipientImport>> import = store_->BeginImport("t");
    ASSERT_TRUE(import.ok()) << import.status().ToString();
    for (const NewRecipient& r : MakeRecipients(8)) ASSERT_TRUE((*import)->Add(r).ok());
    // Destroyed without Finish(): rows 7 and 8 were in the unfinished batch.
  }
  EXPECT_EQ(Counts().total(), 6u);
  EXPECT_EQ(Import("t", MakeRecipients(8)), (std::vector<bool>{false, false, false, false, false, false, true, true}));
  EXPECT_EQ(Counts().total(), 8u);
}

TEST_P(SqliteStoreTest, WritesWaitForAnUnfinishedImportOnTheSameObject) {
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  Result<std::unique_ptr<RecipientImport>> import = store_->BeginImport("t");
  ASSERT_TRUE(import.ok());
  ASSERT_TRUE((*import)->Add(MakeRecipient("a@example.com", 2)).ok());

  // Reads see the unfinished batch; a write would be rolled back with it, so it is refused.
  EXPECT_EQ(Counts().total(), 1u);
  StoreBatch batch;
  batch.in_flight = Entries({All("t")[0].id}, "relay", {Limit("10/hour")});
  Result<ApplyReport> report = store_->Apply(batch, clock_.Now());
  EXPECT_EQ(report.status().code(), StatusCode::kFailedPrecondition) << report.status().ToString();
  EXPECT_EQ(store_->CreateTask(MakeTask("u")).code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE((*import)->Finish().ok());
  ApplyOk(batch, clock_.Now());
  EXPECT_EQ(*store_->CountSends("relay", clock_.Now(), clock_.Now() + minutes(1)), 1u);
}

// --- delivery

TEST_P(SqliteStoreTest, FetchDueReturnsUnsentAndDueDeferredInIdOrder) {
  const std::vector<std::int64_t> ids = SetUpTask(10);
  ASSERT_EQ(ids.size(), 10u);
  const TimePoint t0 = clock_.Now();
  // ids[1] sent, ids[2] failed, ids[3] in flight, ids[4] deferred to t0+10m, ids[6] deferred to
  // t0+20m, ids[8] blacklisted; the rest unsent.
  StoreBatch batch;
  batch.in_flight = Entries({ids[1], ids[2], ids[3], ids[4], ids[6]});
  ApplyOk(batch, t0);
  batch = {};
  batch.results = {
      {ids[1], RecipientStatus::kSent, std::nullopt, {250, "2.0.0", "queued"}, "relay"},
      {ids[2], RecipientStatus::kFailed, std::nullopt, {550, "5.1.1", "no such user"}, "relay"},
      {ids[4], RecipientStatus::kDeferred, t0 + minutes(10), {451, "4.7.1", "greylisted"}, "relay"},
      {ids[6], RecipientStatus::kDeferred, t0 + minutes(20), {421, "", "busy"}, "relay"},
      {ids[8], RecipientStatus::kBlacklisted, std::nullopt, {}, ""},
  };
  ApplyOk(batch, t0);

  struct Case {
    Duration at;
    std::int64_t after_index;  // -1: from the start
    std::size_t limit;
    std::vector<int> want;  // indexes into ids
  };
  const Case cases[] = {
      {minutes(0), -1, 100, {0, 5, 7, 9}},
      {minutes(10) - milliseconds(1), -1, 100, {0, 5, 7, 9}},
      {minutes(10), -1, 100, {0, 4, 5, 7, 9}},  // due exactly at next_attempt_at
      {minutes(30), -1, 100, {0, 4, 5, 6, 7, 9}},
      {minutes(30), -1, 3, {0, 4, 5}},
      {minutes(30), 4, 2, {5, 6}},
      {minutes(30), 6, 100, {7, 9}},
      {minutes(30), 9, 100, {}},
      {minutes(30), -1, 0, {}},
      {minutes(30), 0, 1, {4}},  // a deferred row before an unsent one
  };
  for (const Case& c : cases) {
    const std::int64_t after_id = c.after_index < 0 ? 0 : ids[static_cast<std::size_t>(c.after_index)];
    Result<std::vector<RecipientRecord>> due = store_->FetchDue("t", t0 + c.at, after_id, c.limit);
    ASSERT_TRUE(due.ok()) << due.status().ToString();
    std::vector<std::int64_t> want;
    for (int i : c.want) want.push_back(ids[static_cast<std::size_t>(i)]);
    EXPECT_EQ(Ids(*due), want) << "at +" << c.at.count() << " ms after index " << c.after_index << " limit "
                               << c.limit << ": got " << Describe(Ids(*due)) << ", want " << Describe(want);
  }
}

TEST_P(SqliteStoreTest, ApplyMovesRecipientsThroughTheirStates) {
  const std::vector<std::int64_t> ids = SetUpTask(3);
  const TimePoint t0 = clock_.Now() + minutes(1);

  StoreBatch batch;
  batch.in_flight = Entries({ids[0], ids[1], ids[2]}, "relay-a");
  ApplyOk(batch, t0);
  EXPECT_EQ(*store_->CountSends("relay-a", t0, t0 + minutes(1)), 3u);
  for (std::int64_t id : ids) {
    const RecipientRecord r = Get(id);
    EXPECT_EQ(r.status, RecipientStatus::kInFlight);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_EQ(r.updated_at, t0);
  }
  EXPECT_EQ(Counts()[RecipientStatus::kInFlight], 3u);

  const TimePoint t1 = t0 + seconds(3);
  batch = {};
  batch.results = {
      {ids[0], RecipientStatus::kSent, std::nullopt, {}, "relay-a"},
      {ids[1], RecipientStatus::kDeferred, t1 + hours(1), {451, "4.4.2", "timeout"}, "relay-b"},
      {ids[2], RecipientStatus::kFailed, std::nullopt, {550, "5.1.1", "User unknown"}, "relay-a"},
  };
  ApplyOk(batch, t1);

  RecipientRecord sent = Get(ids[0]);
  EXPECT_EQ(sent.status, RecipientStatus::kSent);
  EXPECT_EQ(sent.account, "relay-a");
  EXPECT_TRUE(sent.last_error.empty());
  EXPECT_EQ(sent.updated_at, t1);
  RecipientRecord deferred = Get(ids[1]);
  EXPECT_EQ(deferred.status, RecipientStatus::kDeferred);
  EXPECT_EQ(deferred.next_attempt_at, std::optional<TimePoint>(t1 + hours(1)));
  EXPECT_EQ(deferred.last_error, (DeliveryError{451, "4.4.2", "timeout"}));
  EXPECT_EQ(deferred.account, "relay-b");
  RecipientRecord failed = Get(ids[2]);
  EXPECT_EQ(failed.status, RecipientStatus::kFailed);
  EXPECT_EQ(failed.last_error, (DeliveryError{550, "5.1.1", "User unknown"}));
  EXPECT_FALSE(failed.next_attempt_at.has_value());

  Result<std::optional<TimePoint>> next = store_->NextAttemptAt("t");
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(*next, std::optional<TimePoint>(t1 + hours(1)));

  // The retry: in flight again (second attempt), then sent; the error of the last attempt goes.
  const TimePoint t2 = t1 + hours(1);
  batch = {};
  batch.in_flight = Entries({ids[1]});
  ApplyOk(batch, t2);
  RecipientRecord retried = Get(ids[1]);
  EXPECT_EQ(retried.status, RecipientStatus::kInFlight);
  EXPECT_EQ(retried.attempts, 2);
  EXPECT_FALSE(retried.next_attempt_at.has_value());
  EXPECT_EQ(*store_->NextAttemptAt("t"), std::nullopt);

  batch = {};
  batch.results = {{ids[1], RecipientStatus::kSent, std::nullopt, {250, "2.0.0", "ok"}, "relay-a"}};
  ApplyOk(batch, t2);
  EXPECT_EQ(Get(ids[1]).last_error, (DeliveryError{250, "2.0.0", "ok"}));

  const StatusCounts counts = Counts();
  EXPECT_EQ(counts[RecipientStatus::kSent], 2u);
  EXPECT_EQ(counts[RecipientStatus::kFailed], 1u);
  EXPECT_EQ(counts.total(), 3u);
}

TEST_P(SqliteStoreTest, ApplyPutsBackAndRetriesInOneBatch) {
  const std::vector<std::int64_t> ids = SetUpTask(2);
  StoreBatch batch;
  batch.in_flight = Entries({ids[0]});
  ApplyOk(batch, clock_.Now());
  // The account failed before MAIL FROM: put back and claimed again for the secondary account.
  batch = {};
  batch.results = {{ids[0], RecipientStatus::kUnsent, std::nullopt, {421, "4.3.2", "shutting down"}, "primary"}};
  batch.in_flight = Entries({ids[0]});
  ApplyOk(batch, clock_.Now());
  const RecipientRecord r = Get(ids[0]);
  EXPECT_EQ(r.status, RecipientStatus::kInFlight);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.account, "primary");
}

TEST_P(SqliteStoreTest, ApplyIsAllOrNothing) {
  const std::vector<std::int64_t> ids = SetUpTask(3);
  StoreBatch sent;
  sent.in_flight = Entries({ids[2]});
  ApplyOk(sent, clock_.Now());
  sent = {};
  sent.results = {{ids[2], RecipientStatus::kSent, std::nullopt, {}, "relay"}};
  ApplyOk(sent, clock_.Now());

  struct Case {
    const char* name;
    StoreBatch batch;
    StatusCode want;
    std::string want_in_message;
  };
  const std::int64_t missing = ids.back() + 1000;
  const std::vector<SendingLimit> limits = {Limit("5/hour")};
  const Case cases[] = {
      {"unknown recipient in a result",
       {Entries({ids[0]}, "relay", limits), {{missing, RecipientStatus::kSent, std::nullopt, {}, "relay"}}},
       StatusCode::kNotFound,
       std::to_string(missing)},
      {"unknown recipient in flight after a counted one",
       {Entries({ids[0], missing}, "relay", limits), {}},
       StatusCode::kNotFound,
       std::to_string(missing)},
      {"deferred without a time",
       {Entries({ids[0]}, "relay"), {{ids[1], RecipientStatus::kDeferred, std::nullopt, {}, "relay"}}},
       StatusCode::kInvalidArgument,
       "next attempt"},
      {"in flight as a result",
       {{}, {{ids[1], RecipientStatus::kInFlight, std::nullopt, {}, "relay"}}},
       StatusCode::kInvalidArgument,
       "in-flight"},
      {"a limit of 0 messages",
       {{InFlight{ids[0], "relay", {Limit("5/hour"), SendingLimit{0, LimitWindow::kDay}}}}, {}},
       StatusCode::kInvalidArgument,
       "sending limit 0"},
      {"an unknown window",
       {{InFlight{ids[0], "relay", {SendingLimit{5, static_cast<LimitWindow>(9)}}}}, {}},
       StatusCode::kInvalidArgument,
       "sending limit 5"},
  };
  for (const Case& c : cases) {
    Status status = store_->Apply(c.batch, clock_.Now() + minutes(1)).status();
    EXPECT_EQ(status.code(), c.want) << c.name << ": " << status.ToString();
    EXPECT_NE(status.message().find(c.want_in_message), std::string::npos)
        << c.name << ": got " << status.message() << ", want it to contain " << c.want_in_message;
    const RecipientRecord first = Get(ids[0]);
    EXPECT_EQ(first.status, RecipientStatus::kUnsent) << c.name;
    EXPECT_EQ(first.attempts, 0) << c.name;
    EXPECT_EQ(*store_->CountSends("relay", clock_.Now() - hours(1), clock_.Now() + hours(1)), 0u) << c.name;
  }
  Result<ApplyReport> empty = store_->Apply(StoreBatch(), clock_.Now());
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->refused.empty());
}

TEST_P(SqliteStoreTest, RecoverInFlightMarksPossibleDuplicates) {
  const std::vector<std::int64_t> ids = SetUpTask(4);
  ASSERT_TRUE(store_->CreateTask(MakeTask("other")).ok());
  Import("other", MakeRecipients(1));
  const std::int64_t other_id = All("other")[0].id;

  StoreBatch batch;
  batch.in_flight = Entries({ids[0], ids[1], ids[2], other_id});
  ApplyOk(batch, clock_.Now());
  batch = {};
  batch.results = {{ids[0], RecipientStatus::kSent, std::nullopt, {}, "relay"}};
  ApplyOk(batch, clock_.Now());

  clock_.Advance(minutes(3));
  Result<std::size_t> recovered = store_->RecoverInFlight("t");
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(*recovered, 2u);
  for (std::int64_t id : {ids[1], ids[2]}) {
    const RecipientRecord r = Get(id);
    EXPECT_EQ(r.status, RecipientStatus::kUnsent) << id;
    EXPECT_TRUE(r.possible_duplicate) << id;
    EXPECT_EQ(r.attempts, 1) << id;
    EXPECT_EQ(r.updated_at, clock_.Now()) << id;
  }
  EXPECT_FALSE(Get(ids[0]).possible_duplicate);
  EXPECT_FALSE(Get(ids[3]).possible_duplicate);
  EXPECT_EQ(Get(other_id, "other").status, RecipientStatus::kInFlight);  // another task's run

  const StatusCounts counts = Counts();
  EXPECT_EQ(counts.possible_duplicates, 2u);
  EXPECT_EQ(counts[RecipientStatus::kUnsent], 3u);
  EXPECT_EQ(counts[RecipientStatus::kSent], 1u);
  EXPECT_EQ(counts[RecipientStatus::kInFlight], 0u);
  EXPECT_EQ(*store_->RecoverInFlight("t"), 0u);

  // They are due again, and a later successful send keeps the mark for the report.
  EXPECT_EQ(Ids(*store_->FetchDue("t", clock_.Now(), 0, 10)), (std::vector<std::int64_t>{ids[1], ids[2], ids[3]}));
  batch = {};
  batch.in_flight = Entries({ids[1]});
  ApplyOk(batch, clock_.Now());
  batch = {};
  batch.results = {{ids[1], RecipientStatus::kSent, std::nullopt, {}, "relay"}};
  ApplyOk(batch, clock_.Now());
  EXPECT_TRUE(Get(ids[1]).possible_duplicate);
  EXPECT_EQ(Counts().possible_duplicates, 2u);
}

// An attempt that may have delivered the message (the connection was lost after the final dot)
// makes the recipient a possible duplicate; later results, a success included, keep the mark.
TEST_P(SqliteStoreTest, ApplyMarksAPossibleDuplicateForGood) {
  const std::vector<std::int64_t> ids = SetUpTask(2);
  StoreBatch batch;
  batch.in_flight = Entries({ids[0], ids[1]});
  ApplyOk(batch, clock_.Now());
  AttemptResult lost{ids[0], RecipientStatus::kDeferred, clock_.Now() + minutes(5),
                     {0, "", "end of data: the connection was lost"}, "relay"};
  lost.possible_duplicate = true;
  AttemptResult refused{ids[1], RecipientStatus::kDeferred, clock_.Now() + minutes(5), {451, "4.3.0", "later"},
                        "relay"};
  batch = {};
  batch.results = {lost, refused};
  ApplyOk(batch, clock_.Now());
  EXPECT_TRUE(Get(ids[0]).possible_duplicate);
  EXPECT_FALSE(Get(ids[1]).possible_duplicate);
  EXPECT_EQ(Counts().possible_duplicates, 1u);

  clock_.Advance(minutes(5));
  batch = {};
  batch.in_flight = Entries({ids[0]});
  ApplyOk(batch, clock_.Now());
  batch = {};
  batch.results = {{ids[0], RecipientStatus::kSent, std::nullopt, {250, "2.0.0", "ok"}, "relay"}};
  ApplyOk(batch, clock_.Now());
  const RecipientRecord sent = Get(ids[0]);
  EXPECT_EQ(sent.status, RecipientStatus::kSent);
  EXPECT_TRUE(sent.possible_duplicate) << "sent again after a lost end of data: maybe twice";
  EXPECT_EQ(Counts().possible_duplicates, 1u);
}

// --- bulk changes and reporting

TEST_P(SqliteStoreTest, ChangeStatusMovesOnlyTheGivenStatuses) {
  const std::vector<std::int64_t> ids = SetUpTask(5);
  ASSERT_TRUE(store_->CreateTask(MakeTask("other")).ok());
  Import("other", MakeRecipients(2));
  StoreBatch batch;
  batch.in_flight = Entries({ids[0], ids[1], ids[2]});
  ApplyOk(batch, clock_.Now());
  batch = {};
  batch.results = {
      {ids[0], RecipientStatus::kFailed, std::nullopt, {550, "5.1.1", "unknown"}, "relay"},
      {ids[1], RecipientStatus::kDeferred, clock_.Now() + hours(1), {451, "", "later"}, "relay"},
      {ids[2], RecipientStatus::kSent, std::nullopt, {}, "relay"},
  };
  ApplyOk(batch, clock_.Now());

  clock_.Advance(minutes(1));
  const RecipientStatus erroneous[] = {RecipientStatus::kFailed, RecipientStatus::kDeferred,
                                       RecipientStatus::kFailed, RecipientStatus::kUnsent};
  Result<std::size_t> changed = store_->ChangeStatus("t", erroneous, RecipientStatus::kUnsent);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(*changed, 2u);
  const RecipientRecord was_failed = Get(ids[0]);
  EXPECT_EQ(was_failed.status, RecipientStatus::kUnsent);
  EXPECT_EQ(was_failed.last_error, (DeliveryError{550, "5.1.1", "unknown"}));  // kept
  EXPECT_EQ(was_failed.updated_at, clock_.Now());
  const RecipientRecord was_deferred = Get(ids[1]);
  EXPECT_EQ(was_deferred.status, RecipientStatus::kUnsent);
  EXPECT_FALSE(was_deferred.next_attempt_at.has_value());
  EXPECT_EQ(Get(ids[2]).status, RecipientStatus::kSent);

  const RecipientStatus pending[] = {RecipientStatus::kUnsent, RecipientStatus::kDeferred};
  changed = store_->ChangeStatus("t", pending, RecipientStatus::kCancelled);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(*changed, 4u);
  const StatusCounts counts = Counts();
  EXPECT_EQ(counts[RecipientStatus::kCancelled], 4u);
  EXPECT_EQ(counts[RecipientStatus::kSent], 1u);
  EXPECT_EQ(Counts("other")[RecipientStatus::kUnsent], 2u);

  for (RecipientStatus to : {RecipientStatus::kInFlight, RecipientStatus::kDeferred, RecipientStatus::kRejected}) {
    EXPECT_EQ(store_->ChangeStatus("t", pending, to).status().code(), StatusCode::kInvalidArgument)
        << RecipientStatusName(to);
  }
}

TEST_P(SqliteStoreTest, CountByStatusCountsEveryStatus) {
  const std::vector<std::int64_t> ids = SetUpTask(9);
  StoreBatch batch;
  batch.in_flight = Entries({ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]});
  ApplyOk(batch, clock_.Now());
  batch = {};
  batch.results = {
      {ids[0], RecipientStatus::kSent, std::nullopt, {}, "relay"},
      {ids[1], RecipientStatus::kSent, std::nullopt, {}, "relay"},
      {ids[2], RecipientStatus::kFailed, std::nullopt, {}, "relay"},
      {ids[3], RecipientStatus::kDeferred, clock_.Now() + hours(1), {}, "relay"},
      {ids[4], RecipientStatus::kBlacklisted, std::nullopt, {}, ""},
  };
  ApplyOk(batch, clock_.Now());
  const RecipientStatus unsent[] = {RecipientStatus::kUnsent};
  ASSERT_TRUE(store_->ChangeStatus("t", unsent, RecipientStatus::kCancelled).ok());

  const StatusCounts counts = Counts();
  const std::uint64_t want[kRecipientStatusCount] = {0, 1, 2, 1, 1, 1, 3, 0};
  for (std::size_t i = 0; i < kRecipientStatusCount; ++i) {
    EXPECT_EQ(counts.by_status[i], want[i]) << RecipientStatusName(static_cast<RecipientStatus>(i));
  }
  EXPECT_EQ(counts.total(), 9u);
  EXPECT_EQ(counts.possible_duplicates, 0u);
}

TEST_P(SqliteStoreTest, ForEachRecipientVisitsAllInIdOrderAndStopsOnError) {
  // More than one chunk of the export, with another task's rows in between.
  ASSERT_TRUE(store_->CreateTask(MakeTask("t")).ok());
  ASSERT_TRUE(store_->CreateTask(MakeTask("other")).ok());
  Import("t", MakeRecipients(400));
  Import("other", MakeRecipients(300));
  std::vector<NewRecipient> more;
  for (std::size_t i = 0; i < 300; ++i) {
    more.push_back(MakeRecipient("late" + std::to_string(i) + "@example.com", 1000 + i));
  }
  Import("t", more);

  std::vector<RecipientRecord> all = All("t");
  ASSERT_EQ(all.size(), 700u);
  for (std::size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1].id, all[i].id) << i;
  EXPECT_EQ(all[0].address, "user0@example.com");
  EXPECT_EQ(all[699].address, "late299@example.com");

  // `visit` may use the store; its error stops the walk and is returned.
  std::size_t visited = 0;
  Status status = store_->ForEachRecipient("t", [&](const RecipientRecord& r) {
    ++visited;
    Result<StatusCounts> counts = store_->CountByStatus("t");
    if (!counts.ok()) return counts.status();
    if (r.address == "user300@example.com") return Status(StatusCode::kCancelled, "stop here");
    return Status::Ok();
  });
  EXPECT_EQ(status, Status(StatusCode::kCancelled, "stop here"));
  EXPECT_EQ(visited, 301u);
}

// --- sending limits

TEST_P(SqliteStoreTest, CountSendsSumsTheMinutesOfAWindow) {
  SetUpTask(16);
  const TimePoint t0 = clock_.Now();  // on a minute boundary
  SendOk(1, "a", t0 + seconds(10));  // minute 0
  SendOk(1, "a", t0 + seconds(50));
  SendOk(3, "a", t0 + seconds(70));  // minute 1
  SendOk(1, "a", t0 + seconds(130));  // minute 2
  SendOk(5, "b", t0 + seconds(10));
  SendOk(4, "a", t0 + hours(1));
  SendOk(1, "a", t0 + hours(1) + seconds(59));  // a later batch adds to its minute

  struct Case {
    std::string account;
    Duration from;
    Duration until;
    std::uint64_t want;
  };
  const Case cases[] = {
      {"a", seconds(0), seconds(60), 2},
      {"a", seconds(0), seconds(120), 5},
      {"a", seconds(60), seconds(180), 4},
      {"a", seconds(0), hours(2), 11},
      {"a", hours(1), hours(1) + minutes(1), 5},
      {"a", -hours(1), seconds(0), 0},
      {"a", seconds(180), hours(1), 0},
      // A window that cuts a minute counts the whole minute: never less than was sent.
      {"a", seconds(30), seconds(60), 2},
      {"a", seconds(61), seconds(62), 3},
      {"a", seconds(59), seconds(61), 5},
      {"a", seconds(60), seconds(60), 0},
      {"a", seconds(120), seconds(60), 0},
      {"b", seconds(0), hours(2), 5},
      {"c", seconds(0), hours(2), 0},
  };
  for (const Case& c : cases) {
    Result<std::uint64_t> got = store_->CountSends(c.account, t0 + c.from, t0 + c.until);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.account << " [" << c.from.count() << " ms, " << c.until.count() << " ms)";
  }
}

// The refused entry `got`, expected to be refused for `limit` with `retry_at`.
void ExpectLimitRefusal(const RefusedInFlight& got, std::int64_t id, const SendingLimit& limit, TimePoint retry_at,
                        const std::string& context) {
  EXPECT_EQ(got.recipient_id, id) << context;
  EXPECT_EQ(got.reason, RefusedInFlight::Reason::kLimit) << context;
  EXPECT_EQ(got.limit, limit) << context << ": got " << got.limit.ToString() << ", want " << limit.ToString();
  EXPECT_EQ(got.retry_at, std::optional<TimePoint>(retry_at))
      << context << ": got " << (got.retry_at ? std::to_string(ToUnixMillis(*got.retry_at)) : "none") << ", want "
      << ToUnixMillis(retry_at) << " ms";
}

std::vector<std::int64_t> RefusedIds(const ApplyReport& report) {
  std::vector<std::int64_t> ids;
  for (const RefusedInFlight& r : report.refused) ids.push_back(r.recipient_id);
  return ids;
}

TEST_P(SqliteStoreTest, EachWindowHoldsAtItsBoundaries) {
  // One message per window. The first is put in flight at T + first; its bucket (minute for
  // minute and hour limits, hour for day and week, day for month) counts whole until the
  // bucket's last millisecond is one window length old. So the second fits at T + room and is
  // refused, with retry_at T + room, a millisecond earlier: exactly one window after a message
  // sent in the last millisecond of its bucket, up to a bucket later for one sent earlier in it.
  // Never before one window has passed.
  struct Case {
    const char* limit;
    Duration first;
    Duration room;
  };
  constexpr Duration ms = milliseconds(1);
  const Duration last_ms_of_minute = seconds(59) + 999 * ms;
  const Duration last_ms_of_hour = minutes(59) + last_ms_of_minute;
  const Duration last_ms_of_day = hours(23) + last_ms_of_hour;
  using std::chrono::days;
  const Case cases[] = {
      {"1/minute", last_ms_of_minute, minutes(1) + last_ms_of_minute},  // exactly 60 s later
      {"1/minute", seconds(0), minutes(1) + last_ms_of_minute},
      {"1/minute", seconds(30), minutes(1) + last_ms_of_minute},
      {"1/hour", last_ms_of_minute, hours(1) + last_ms_of_minute},  // exactly 1 h later
      {"1/hour", seconds(0), hours(1) + last_ms_of_minute},
      {"1/day", last_ms_of_hour, days(1) + last_ms_of_hour},  // exactly 24 h later
      {"1/day", minutes(1), days(1) + last_ms_of_hour},
      {"1/week", last_ms_of_hour, days(7) + last_ms_of_hour},  // exactly 7 days later
      {"1/week", seconds(0), days(7) + last_ms_of_hour},
      {"1/month", last_ms_of_day, days(31) + last_ms_of_day},  // exactly 31 days later
      {"1/month", hours(12), days(31) + last_ms_of_day},
  };
  const std::vector<std::int64_t> ids = SetUpTask(2 * std::size(cases));
  const TimePoint t0 = clock_.Now();  // a whole day of Unix time
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    const std::string context = std::string(c.limit) + " after T+" + std::to_string(c.first.count()) + " ms";
    const std::string account = "relay-" + std::to_string(i);
    const std::vector<SendingLimit> limits = {Limit(c.limit)};
    const Duration length = store_internal::SpecOf(limits[0].window).length;
    StoreBatch batch;
    batch.in_flight = Entries({ids[2 * i]}, account, limits);
    ApplyOk(batch, t0 + c.first);

    batch.in_flight = Entries({ids[2 * i + 1]}, account, limits);
    for (const Duration at : {c.first + length - ms, c.room - ms}) {
      Result<ApplyReport> report = store_->Apply(batch, t0 + at);
      ASSERT_TRUE(report.ok()) << report.status().ToString();
      ASSERT_EQ(report->refused.size(), 1u) << context << ": fits at T+" << at.count() << " ms";
      ExpectLimitRefusal(report->refused[0], ids[2 * i + 1], limits[0], t0 + c.room,
                         context + ", at T+" + std::to_string(at.count()) + " ms");
    }
    EXPECT_EQ(Get(ids[2 * i + 1]).status, RecipientStatus::kUnsent) << context;
    Result<ApplyReport> report = store_->Apply(batch, t0 + c.room);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->refused.empty()) << context << ": refused at T+" << c.room.count() << " ms";
    EXPECT_EQ(Get(ids[2 * i + 1]).status, RecipientStatus::kInFlight) << context;
  }
}

TEST_P(SqliteStoreTest, SeveralLimitsAtOnceTheTightestWins) {
  // 2/minute and 4/hour. At T two fit and the third waits for the minute. At T+2min two more
  // fit; the fifth reaches both limits: the minute has room at T+3m59.999s, the hour only once
  // T's minute has left it, at T+1h0m59.999s — the later one is reported, whatever the order.
  const std::vector<std::vector<SendingLimit>> lists = {
      {Limit("2/minute"), Limit("4/hour")},
      {Limit("4/hour"), Limit("2/minute")},
      {Limit("100/month"), Limit("4/hour"), Limit("1000/day"), Limit("2/minute"), Limit("50/week")},
  };
  const std::vector<std::int64_t> ids = SetUpTask(5 * lists.size());
  const TimePoint t0 = clock_.Now();
  for (std::size_t i = 0; i < lists.size(); ++i) {
    const std::string account = "relay-" + std::to_string(i);
    const std::vector<SendingLimit>& limits = lists[i];
    const std::string context = "list " + std::to_string(i);
    auto id = [&](std::size_t k) { return ids[5 * i + k]; };
    StoreBatch batch;
    batch.in_flight = Entries({id(0), id(1), id(2)}, account, limits);
    Result<ApplyReport> report = store_->Apply(batch, t0);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->refused.size(), 1u) << context;
    ExpectLimitRefusal(report->refused[0], id(2), Limit("2/minute"), t0 + minutes(1) + seconds(59) + milliseconds(999),
                       context);

    batch.in_flight = Entries({id(2), id(3), id(4)}, account, limits);
    report = store_->Apply(batch, t0 + minutes(2));
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->refused.size(), 1u) << context;
    const TimePoint hour_room = t0 + hours(1) + seconds(59) + milliseconds(999);
    ExpectLimitRefusal(report->refused[0], id(4), Limit("4/hour"), hour_room, context);

    batch.in_flight = Entries({id(4)}, account, limits);
    report = store_->Apply(batch, hour_room - milliseconds(1));
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->refused.size(), 1u) << context;
    ExpectLimitRefusal(report->refused[0], id(4), Limit("4/hour"), hour_room, context + ", 1 ms early");
    report = store_->Apply(batch, hour_room);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->refused.empty()) << context;
    EXPECT_EQ(*store_->CountSends(account, t0, t0 + hours(2)), 5u) << context;
  }
}

TEST_P(SqliteStoreTest, ABurstInOneBatchGetsExactlyTheLimit) {
  const std::vector<std::int64_t> ids = SetUpTask(1000);
  const TimePoint t0 = clock_.Now() + seconds(10);
  const std::vector<SendingLimit> limits = {Limit("200/hour")};
  StoreBatch batch;
  batch.in_flight = Entries(ids, "relay", limits);
  Result<ApplyReport> report = store_->Apply(batch, t0);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  // The first 200 in batch order go; every later one waits until T's minute has left the hour.
  ASSERT_EQ(report->refused.size(), 800u);
  for (std::size_t i = 0; i < report->refused.size(); ++i) {
    ExpectLimitRefusal(report->refused[i], ids[200 + i], limits[0],
                       clock_.Now() + hours(1) + seconds(59) + milliseconds(999), "entry " + std::to_string(200 + i));
    if (HasFailure()) break;
  }
  const StatusCounts counts = Counts();
  EXPECT_EQ(counts[RecipientStatus::kInFlight], 200u);
  EXPECT_EQ(counts[RecipientStatus::kUnsent], 800u);
  const RecipientRecord refused = Get(ids[200]);
  EXPECT_EQ(refused.attempts, 0);
  EXPECT_EQ(*store_->CountSends("relay", t0 - hours(1), t0 + hours(1)), 200u);

  // When the slots free, again exactly 200 of the rest.
  batch.in_flight = Entries(RefusedIds(*report), "relay", limits);
  report = store_->Apply(batch, clock_.Now() + hours(1) + seconds(59) + milliseconds(999));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->refused.size(), 600u);
  EXPECT_EQ(Counts()[RecipientStatus::kInFlight], 400u);
}

TEST_P(SqliteStoreTest, ADestinationsLimitIsCountedApartFromItsAccountsAndBothMustFit) {
  const std::vector<std::int64_t> ids = SetUpTask(6);
  const TimePoint t0 = clock_.Now();
  auto to = [](std::int64_t id, std::string destination, std::vector<SendingLimit> limits) {
    InFlight entry{id, "mx", {Limit("4/hour")}};
    entry.destination = std::move(destination);
    entry.destination_limits = std::move(limits);
    return entry;
  };
  StoreBatch batch;
  batch.in_flight = {to(ids[0], "example.org", {Limit("1/hour")}), to(ids[1], "example.org", {Limit("1/hour")}),
                     to(ids[2], "example.net", {Limit("5/hour")})};
  Result<ApplyReport> report = store_->Apply(batch, t0);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  ExpectLimitRefusal(report->refused[0], ids[1], Limit("1/hour"), t0 + hours(1) + seconds(59) + milliseconds(999),
                     "example.org's own limit");
  EXPECT_EQ(report->refused[0].destination, "example.org");
  EXPECT_EQ(*store_->CountSends("mx", t0, t0 + hours(1)), 2u) << "the account counts every destination";
  EXPECT_EQ(*store_->CountSends(DestinationCounter("mx", "example.org"), t0, t0 + hours(1)), 1u);
  EXPECT_EQ(*store_->CountSends(DestinationCounter("mx", "example.net"), t0, t0 + hours(1)), 1u);

  // The account's limit (4/hour, 2 used) refuses too, whatever room the destination has left;
  // the refusal names the limit that has room last.
  batch.in_flight = {to(ids[3], "example.net", {Limit("5/hour")}), to(ids[4], "example.net", {Limit("5/hour")}),
                     to(ids[5], "example.net", {Limit("5/hour")})};
  report = store_->Apply(batch, t0 + minutes(1));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  EXPECT_EQ(report->refused[0].recipient_id, ids[5]);
  EXPECT_TRUE(report->refused[0].destination.empty()) << "the account's limit, not the destination's";
  EXPECT_EQ(*store_->CountSends(DestinationCounter("mx", "example.net"), t0, t0 + hours(1)), 3u);
}

TEST_P(SqliteStoreTest, DestinationBackoffsAreKeptPerAccountUntilCleared) {
  const TimePoint t0 = clock_.Now();
  DestinationBackoff org{"mx", "example.org", 1, t0 + minutes(10), {0, "", "connect: no mail exchanger answers"}};
  DestinationBackoff net{"mx", "example.net", 2, t0 + minutes(20), {421, "4.3.2", "greeting: busy"}};
  DestinationBackoff other{"mx2", "example.org", 1, t0 + minutes(5), {}};
  for (const DestinationBackoff* backoff : {&org, &net, &other}) {
    ASSERT_TRUE(store_->SetDestinationBackoff(*backoff).ok());
  }
  Result<std::vector<DestinationBackoff>> got = store_->DestinationBackoffs("mx");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (std::vector<DestinationBackoff>{net, org})) << "in destination order, this account's only";

  org.failures = 2;
  org.retry_at = t0 + minutes(30);
  ASSERT_TRUE(store_->SetDestinationBackoff(org).ok());
  ASSERT_TRUE(store_->ClearDestinationBackoff("mx", "example.net").ok());
  ASSERT_TRUE(store_->ClearDestinationBackoff("mx", "nowhere.example").ok()) << "nothing to forget is fine";
  got = store_->DestinationBackoffs("mx");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::vector<DestinationBackoff>{org});
  EXPECT_EQ(store_->DestinationBackoffs("mx2")->size(), 1u);
  got = store_->DestinationBackoffs("");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::vector<DestinationBackoff>{org, other})) << "every account's, by account";

  org.failures = 0;
  EXPECT_EQ(store_->SetDestinationBackoff(org).code(), StatusCode::kInvalidArgument);
}

TEST_P(SqliteStoreTest, APostponedRecipientIsDeferredWithoutAnAttemptOnlyWhileStillDue) {
  const std::vector<std::int64_t> ids = SetUpTask(3);
  const TimePoint t0 = clock_.Now();
  // ids[1] got its result from another process meanwhile; ids[2] is in flight elsewhere.
  ApplyOk({Entries({ids[1], ids[2]}), {}}, t0);
  StoreBatch failed;
  failed.results = {{ids[1], RecipientStatus::kFailed, std::nullopt, {550, "5.1.1", "no such user"}, "mx"}};
  ApplyOk(failed, t0);
  StoreBatch batch;
  for (std::int64_t id : ids) {
    AttemptResult postponed{id, RecipientStatus::kDeferred, t0 + minutes(10), {0, "", "connect: down (later)"}, "mx"};
    postponed.postponed = true;
    batch.results.push_back(postponed);
  }
  ApplyOk(batch, t0);
  EXPECT_EQ(Get(ids[0]).status, RecipientStatus::kDeferred);
  EXPECT_EQ(Get(ids[0]).attempts, 0);
  EXPECT_EQ(Get(ids[0]).next_attempt_at, std::optional<TimePoint>(t0 + minutes(10)));
  EXPECT_EQ(Get(ids[0]).last_error.text, "connect: down (later)");
  EXPECT_EQ(Get(ids[1]).status, RecipientStatus::kFailed) << "its result stands";
  EXPECT_EQ(Get(ids[2]).status, RecipientStatus::kInFlight) << "left to the process sending it";

  AttemptResult sent{ids[0], RecipientStatus::kSent, std::nullopt, {}, "mx"};
  sent.postponed = true;
  StoreBatch wrong;
  wrong.results = {sent};
  EXPECT_EQ(store_->Apply(wrong, t0).status().code(), StatusCode::kInvalidArgument)
      << "only a deferral can be postponed";
}

TEST_P(SqliteStoreTest, AWithdrawnAttemptIsTakenBackOnlyWhileTheRecipientIsInFlight) {
  const std::vector<std::int64_t> ids = SetUpTask(2);
  const TimePoint t0 = clock_.Now();
  ApplyOk({Entries({ids[0], ids[1]}), {}}, t0);
  // ids[1] was put back meanwhile (a run that stopped): it is no longer in flight.
  StoreBatch back;
  back.results = {{ids[1], RecipientStatus::kUnsent, std::nullopt, {}, "relay"}};
  ApplyOk(back, t0);
  StoreBatch batch;
  for (std::int64_t id : ids) {
    AttemptResult withdrawn{id, RecipientStatus::kDeferred, t0, {535, "5.7.8", "AUTH: bad credentials"}, "relay"};
    withdrawn.withdrawn = true;
    batch.results.push_back(withdrawn);
  }
  ApplyOk(batch, t0);
  EXPECT_EQ(Get(ids[0]).status, RecipientStatus::kDeferred);
  EXPECT_EQ(Get(ids[0]).attempts, 0) << "the attempt is not counted";
  EXPECT_EQ(Get(ids[0]).next_attempt_at, std::optional<TimePoint>(t0));
  EXPECT_EQ(Get(ids[0]).last_error.reply_code, 535);
  EXPECT_EQ(Get(ids[1]).status, RecipientStatus::kUnsent) << "not in flight: left as it is";
  EXPECT_EQ(Get(ids[1]).attempts, 1);

  AttemptResult failed{ids[1], RecipientStatus::kFailed, std::nullopt, {}, "relay"};
  failed.withdrawn = true;
  StoreBatch wrong;
  wrong.results = {failed};
  EXPECT_EQ(store_->Apply(wrong, t0).status().code(), StatusCode::kInvalidArgument)
      << "only a deferral withdraws its attempt";
}

TEST_P(SqliteStoreTest, AccountsAreCountedApartAndOnlyWhenNamed) {
  const std::vector<std::int64_t> ids = SetUpTask(8);
  const TimePoint t0 = clock_.Now();
  const std::vector<SendingLimit> one_per_hour = {Limit("1/hour")};
  ApplyOk({Entries({ids[0]}, "a", one_per_hour), {}}, t0);

  // "a" is full; the same limit on "b" is not. An attempt without an account (its account
  // failed before) is neither checked nor counted.
  StoreBatch batch;
  batch.in_flight = {InFlight{ids[1], "a", one_per_hour}, InFlight{ids[2], "b", one_per_hour},
                     InFlight{ids[3], "", one_per_hour}, InFlight{ids[4], "", {}}};
  Result<ApplyReport> report = store_->Apply(batch, t0 + minutes(5));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(RefusedIds(*report), (std::vector<std::int64_t>{ids[1]}));
  EXPECT_EQ(*store_->CountSends("a", t0, t0 + hours(1)), 1u);
  EXPECT_EQ(*store_->CountSends("b", t0, t0 + hours(1)), 1u);
  EXPECT_EQ(*store_->CountSends("", t0, t0 + hours(1)), 0u);
  for (std::int64_t id : {ids[2], ids[3], ids[4]}) EXPECT_EQ(Get(id).status, RecipientStatus::kInFlight) << id;

  // A deferred recipient refused for a limit stays deferred, its next attempt kept.
  ApplyOk({Entries({ids[5]}, "c"), {}}, t0);
  batch = {};
  batch.results = {{ids[5], RecipientStatus::kDeferred, t0 + minutes(10), {451, "4.7.1", "later"}, "c"}};
  ApplyOk(batch, t0);
  batch = {};
  batch.in_flight = Entries({ids[5]}, "c", one_per_hour);
  report = store_->Apply(batch, t0 + minutes(10));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  ExpectLimitRefusal(report->refused[0], ids[5], one_per_hour[0], t0 + hours(1) + seconds(59) + milliseconds(999),
                     "deferred");
  const RecipientRecord deferred = Get(ids[5]);
  EXPECT_EQ(deferred.status, RecipientStatus::kDeferred);
  EXPECT_EQ(deferred.next_attempt_at, std::optional<TimePoint>(t0 + minutes(10)));
  EXPECT_EQ(deferred.attempts, 1);

  // The same recipient twice in one batch: the second is not due, and counted once.
  batch.in_flight = Entries({ids[6], ids[6]}, "d", {Limit("5/hour")});
  report = store_->Apply(batch, t0);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  EXPECT_EQ(report->refused[0].reason, RefusedInFlight::Reason::kNotDue);
  EXPECT_EQ(*store_->CountSends("d", t0, t0 + hours(1)), 1u);
  EXPECT_EQ(Get(ids[6]).attempts, 1);
}

TEST_P(SqliteStoreTest, TheMonthWindowCountsThirtyOneDays) {
  using std::chrono::days;
  SetUpTask(120);
  const TimePoint t0 = clock_.Now();  // a whole day of Unix time
  const std::vector<SendingLimit> limits = {Limit("31/month")};
  const TimePoint room = t0 + days(32) - milliseconds(1);  // when day 0 has left the 31 days

  // One a day at noon for 31 days fits; the 32nd day's waits for day 0 to leave. (Counted
  // exactly it would fit at T+31d+12h; day 0 counts whole, until its last millisecond is 31
  // days old.)
  for (int day = 0; day < 31; ++day) SendOk(1, "daily", t0 + days(day) + hours(12), limits);
  ApplyReport report = Send(1, "daily", t0 + days(31) + hours(12), limits);
  ASSERT_EQ(report.refused.size(), 1u);
  ExpectLimitRefusal(report.refused[0], report.refused[0].recipient_id, limits[0], room, "daily");
  EXPECT_EQ(Send(1, "daily", room - milliseconds(1), limits).refused.size(), 1u);
  SendOk(1, "daily", room, limits);

  // Uneven: 20 on day 0, 11 on day 15. Full until day 0 leaves; then 20 fit, and the next waits
  // for day 15.
  SendOk(20, "uneven", t0 + hours(6), limits);
  SendOk(11, "uneven", t0 + days(15) + hours(6), limits);
  report = Send(1, "uneven", t0 + days(30), limits);
  ASSERT_EQ(report.refused.size(), 1u);
  ExpectLimitRefusal(report.refused[0], report.refused[0].recipient_id, limits[0], room, "uneven, day 30");
  report = Send(21, "uneven", room, limits);
  ASSERT_EQ(report.refused.size(), 1u);
  ExpectLimitRefusal(report.refused[0], report.refused[0].recipient_id, limits[0], t0 + days(47) - milliseconds(1),
                     "uneven, day 32");
  EXPECT_EQ(*store_->CountSends("uneven", t0, t0 + days(40)), 51u);
}

// The engine may fetch a recipient again before the result of its last attempt is written; the
// result comes first in the batch, and the recipient it leaves is not put in flight early.
TEST_P(SqliteStoreTest, ARecipientGivenAResultSinceItWasFetchedIsNotDue) {
  const std::vector<std::int64_t> ids = SetUpTask(2);
  const TimePoint t0 = clock_.Now();
  ApplyOk({Entries({ids[0], ids[1]}), {}}, t0);
  StoreBatch batch;
  batch.results = {{ids[0], RecipientStatus::kDeferred, t0 + minutes(10), {451, "4.3.0", "later"}, "relay"},
                   {ids[1], RecipientStatus::kSent, std::nullopt, {250, "2.0.0", "ok"}, "relay"}};
  batch.in_flight = Entries({ids[0], ids[1]});
  Result<ApplyReport> report = store_->Apply(batch, t0 + minutes(1));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(RefusedIds(*report), (std::vector<std::int64_t>{ids[0], ids[1]}));
  EXPECT_EQ(report->refused[0].reason, RefusedInFlight::Reason::kNotDue);
  EXPECT_EQ(report->refused[1].reason, RefusedInFlight::Reason::kNotDue);
  EXPECT_EQ(Get(ids[0]).status, RecipientStatus::kDeferred);
  EXPECT_EQ(Get(ids[0]).attempts, 1);

  // Once its retry is due, it is put in flight again.
  ApplyOk({Entries({ids[0]}), {}}, t0 + minutes(10));
  EXPECT_EQ(Get(ids[0]).status, RecipientStatus::kInFlight);
  EXPECT_EQ(Get(ids[0]).attempts, 2);
}

TEST_P(SqliteStoreTest, ACancelledRecipientIsNotDueAndTheRestIsApplied) {
  const std::vector<std::int64_t> ids = SetUpTask(5);
  ASSERT_TRUE(store_->CreateTask(MakeTask("u")).ok());
  Import("u", MakeRecipients(2));
  const std::vector<std::int64_t> u = Ids(All("u"));
  const TimePoint t0 = clock_.Now();
  const std::vector<SendingLimit> limits = {Limit("3/hour")};
  // ids[0] is being sent, ids[1] was deferred: 2 counted for the relay.
  ApplyOk({Entries({ids[0], ids[1]}, "relay", limits), {}}, t0);
  ApplyOk({{}, {{ids[1], RecipientStatus::kDeferred, t0 + minutes(1), {451, "", "later"}, "relay"}}}, t0);

  // The engine fetches the due recipients; `herald cancel` withdraws task t's before its batch.
  Result<std::vector<RecipientRecord>> due = store_->FetchDue("t", t0 + minutes(5), 0, 10);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  EXPECT_EQ(Ids(*due), (std::vector<std::int64_t>{ids[1], ids[2], ids[3], ids[4]}));
  const RecipientStatus pending[] = {RecipientStatus::kUnsent, RecipientStatus::kDeferred};
  ASSERT_EQ(*store_->ChangeStatus("t", pending, RecipientStatus::kCancelled), 4u);

  // ids[3] comes after the relay is full (u[0] takes the last slot): not due says more.
  StoreBatch batch;
  batch.results = {{ids[0], RecipientStatus::kSent, std::nullopt, {250, "2.0.0", "ok"}, "relay"}};
  batch.in_flight = Entries({ids[1], ids[2], u[0], ids[3], u[1], ids[4]}, "relay", limits);
  Result<ApplyReport> report = store_->Apply(batch, t0 + minutes(5));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(RefusedIds(*report), (std::vector<std::int64_t>{ids[1], ids[2], ids[3], u[1], ids[4]}));
  for (std::size_t i : {0, 1, 2, 4}) {
    EXPECT_EQ(report->refused[i].reason, RefusedInFlight::Reason::kNotDue) << i;
    EXPECT_FALSE(report->refused[i].retry_at.has_value()) << i;
  }
  ExpectLimitRefusal(report->refused[3], u[1], limits[0], t0 + hours(1) + seconds(59) + milliseconds(999), "u[1]");

  EXPECT_EQ(Get(ids[0]).status, RecipientStatus::kSent);
  EXPECT_EQ(Get(ids[1]).attempts, 1);
  EXPECT_EQ(Get(ids[2]).attempts, 0);
  const StatusCounts counts = Counts();
  EXPECT_EQ(counts[RecipientStatus::kSent], 1u);
  EXPECT_EQ(counts[RecipientStatus::kCancelled], 4u);
  EXPECT_EQ(Get(u[0], "u").status, RecipientStatus::kInFlight);
  EXPECT_EQ(Get(u[1], "u").status, RecipientStatus::kUnsent);
  EXPECT_EQ(*store_->CountSends("relay", t0, t0 + hours(1)), 3u);
}

// --- the file: several processes, reopening, refusing what is not a store

class SqliteStoreFileTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<SqliteStore>> Open(Duration busy_timeout = seconds(5)) {
    SqliteStore::Options options;
    options.clock = &clock_;
    options.busy_timeout = busy_timeout;
    return SqliteStore::Open(path_, options);
  }

  TempDir dir_;
  std::string path_ = dir_.File("herald.db");
  FakeClock clock_;
};

TEST_F(SqliteStoreFileTest, TwoStoreObjectsShareOneFile) {
  Result<std::unique_ptr<SqliteStore>> first = Open();
  Result<std::unique_ptr<SqliteStore>> second = Open();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  const TimePoint t0 = clock_.Now();

  // A task created by one is seen, imported into and worked on by the other.
  ASSERT_TRUE((*first)->CreateTask(MakeTask("t")).ok());
  Result<std::unique_ptr<RecipientImport>> import = (*second)->BeginImport("t");
  ASSERT_TRUE(import.ok()) << import.status().ToString();
  for (const NewRecipient& r : MakeRecipients(7)) ASSERT_TRUE((*import)->Add(r).ok());
  ASSERT_TRUE((*import)->Finish().ok());
  import->reset();
  Result<std::vector<RecipientRecord>> due = (*first)->FetchDue("t", t0, 0, 10);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  ASSERT_EQ(due->size(), 7u);
  const std::vector<std::int64_t> ids = Ids(*due);

  struct Step {
    SqliteStore* store;
    std::vector<std::int64_t> ids;
    Duration at;
  };
  const Step steps[] = {
      {first->get(), {ids[0], ids[1]}, seconds(5)},
      {second->get(), {ids[2], ids[3], ids[4]}, seconds(20)},
      {second->get(), {ids[5]}, minutes(2)},
  };
  for (const Step& step : steps) {
    StoreBatch batch;
    batch.in_flight = Entries(step.ids, "relay");
    Result<ApplyReport> report = step.store->Apply(batch, t0 + step.at);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->refused.empty());
  }
  for (SqliteStore* store : {first->get(), second->get()}) {
    EXPECT_EQ(*store->CountSends("relay", t0, t0 + minutes(1)), 5u);
    EXPECT_EQ(*store->CountSends("relay", t0, t0 + hours(1)), 6u);
  }

  // Both fetched the same recipient; only the first to put it in flight may send it. The other
  // is told it is not due, and nothing is counted for it.
  StoreBatch batch;
  batch.in_flight = Entries({ids[6]}, "relay", {Limit("100/hour")});
  Result<ApplyReport> report = (*first)->Apply(batch, t0 + minutes(3));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->refused.empty());
  report = (*second)->Apply(batch, t0 + minutes(3));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->refused.size(), 1u);
  EXPECT_EQ(report->refused[0].recipient_id, ids[6]);
  EXPECT_EQ(report->refused[0].reason, RefusedInFlight::Reason::kNotDue);
  EXPECT_FALSE(report->refused[0].retry_at.has_value());
  EXPECT_EQ((*(*second)->CountByStatus("t"))[RecipientStatus::kInFlight], 7u);
  EXPECT_EQ(*(*second)->CountSends("relay", t0, t0 + hours(1)), 7u);
}

TEST_F(SqliteStoreFileTest, TwoStoresTakingTurnsNeverExceedTheLimit) {
  Result<std::unique_ptr<SqliteStore>> first = Open();
  Result<std::unique_ptr<SqliteStore>> second = Open();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE((*first)->CreateTask(MakeTask("t")).ok());
  ImportInto(**first, "t", MakeRecipients(700));
  const TimePoint t0 = clock_.Now();
  const std::vector<SendingLimit> limits = {Limit("200/hour")};

  // Two processes' batches of 40 in turn, one every 7 minutes for 3 hours, each fetching what
  // is due (the refused stay due). Whatever one granted, the other sees.
  struct Granted {
    TimePoint at;
    std::size_t messages;
  };
  std::vector<Granted> granted;
  for (int i = 0; i * 7 < 180; ++i) {
    SqliteStore& store = i % 2 == 0 ? **first : **second;
    const TimePoint now = t0 + minutes(7 * i);
    Result<std::vector<RecipientRecord>> due = store.FetchDue("t", now, 0, 40);
    ASSERT_TRUE(due.ok()) << due.status().ToString();
    StoreBatch batch;
    batch.in_flight = Entries(Ids(*due), "relay", limits);
    Result<ApplyReport> report = store.Apply(batch, now);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    granted.push_back({now, due->size() - report->refused.size()});
  }
  // In every hour ending at a batch, at most 200 (exact times, not buckets); the limit is used
  // in full: 40 at minutes 0, 7, 14, 21, 28, then again from minute 63 and 126.
  std::size_t total = 0;
  for (const Granted& g : granted) {
    total += g.messages;
    std::size_t in_hour = 0;
    for (const Granted& h : granted) {
      if (h.at > g.at - hours(1) && h.at <= g.at) in_hour += h.messages;
    }
    EXPECT_LE(in_hour, 200u) << "in the hour up to T+" << (g.at - t0).count() << " ms";
  }
  EXPECT_EQ(total, 600u);
  EXPECT_EQ((*(*second)->CountByStatus("t"))[RecipientStatus::kInFlight], 600u);
}

TEST_F(SqliteStoreFileTest, ProcessesRacingForTheLastSlotsNeverExceedTheLimit) {
  {
    Result<std::unique_ptr<SqliteStore>> store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
    ImportInto(**store, "t", MakeRecipients(600));
  }
  // Three processes put the same due recipients in flight as fast as they can, in batches of
  // 25 within one minute, against 200/hour. Exit codes say what failed.
  constexpr int kProcesses = 3;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      Result<std::unique_ptr<SqliteStore>> store = Open(seconds(30));
      if (!store.ok()) _exit(2);
      for (int round = 0; round < 40; ++round) {
        const TimePoint now = clock_.Now() + milliseconds(round * 1000 + p);
        Result<std::vector<RecipientRecord>> due = (*store)->FetchDue("t", now, 0, 25);
        if (!due.ok()) _exit(3);
        StoreBatch batch;
        batch.in_flight = Entries(Ids(*due), "relay", {Limit("200/hour")});
        Result<ApplyReport> report = (*store)->Apply(batch, now);
        if (!report.ok()) _exit(4);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (const pid_t child : children) {
    int wait_status = 0;
    ASSERT_EQ(waitpid(child, &wait_status, 0), child);
    EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
        << "a sending process ended with " << (WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1);
  }
  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const StatusCounts counts = *(*store)->CountByStatus("t");
  EXPECT_EQ(counts[RecipientStatus::kInFlight], 200u);
  EXPECT_EQ(*(*store)->CountSends("relay", clock_.Now() - hours(1), clock_.Now() + hours(1)), 200u);
  for (const RecipientRecord& r : AllOf(**store, "t")) {
    EXPECT_LE(r.attempts, 1) << "recipient " << r.id << " put in flight twice";
  }
}

// Processes released together open the store at `path` and each creates a task of its own.
// Returns how many failed (a child's error goes to its standard error).
int OpenAtTheSameMoment(const std::string& path, int processes, const Clock& clock) {
  int release[2];
  if (pipe(release) != 0) return processes;
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t child = fork();
    if (child < 0) break;
    if (child == 0) {
      close(release[1]);
      char go = 0;
      if (read(release[0], &go, 1) != 0) _exit(9);
      SqliteStore::Options options;
      options.clock = &clock;
      Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path, options);
      if (!store.ok()) {
        std::cerr << "process " << p << ": " << store.status().ToString() << "\n";
        _exit(2);
      }
      Status created = (*store)->CreateTask(MakeTask("t" + std::to_string(p)));
      if (!created.ok()) {
        std::cerr << "process " << p << ": " << created.ToString() << "\n";
        _exit(3);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  close(release[0]);
  close(release[1]);  // end of file: every child starts now
  int failed = processes - static_cast<int>(children.size());
  for (const pid_t child : children) {
    int wait_status = 0;
    if (waitpid(child, &wait_status, 0) != child || !WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
      ++failed;
    }
  }
  return failed;
}

TEST_F(SqliteStoreFileTest, ProcessesCreatingANewStoreAtTheSameMomentAllGetIt) {
  // Round after round, processes open a store that does not exist yet: one creates it, the
  // others use it.
  constexpr int kRounds = 20;
  constexpr int kProcesses = 4;
  for (int round = 0; round < kRounds; ++round) {
    const std::string path = dir_.File("new-" + std::to_string(round) + ".db");
    EXPECT_EQ(OpenAtTheSameMoment(path, kProcesses, clock_), 0) << "round " << round;
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Result<std::vector<TaskRecord>> tasks = (*store)->ListTasks();
    ASSERT_TRUE(tasks.ok()) << tasks.status().ToString();
    EXPECT_EQ(tasks->size(), static_cast<std::size_t>(kProcesses)) << "round " << round;
  }
}

TEST_F(SqliteStoreFileTest, ProcessesSwitchingAStoreToWalAtTheSameMomentAllGetIt) {
  // A store in rollback-journal mode (as another tool may leave it), opened by several processes
  // at once: each wants to switch it to WAL, for which SQLite lets only one wait.
  constexpr int kRounds = 20;
  constexpr int kProcesses = 4;
  for (int round = 0; round < kRounds; ++round) {
    const std::string path = dir_.File("old-" + std::to_string(round) + ".db");
    ASSERT_TRUE(SqliteStore::Open(path).ok());
    RawExec(path, "PRAGMA journal_mode = DELETE");
    EXPECT_EQ(OpenAtTheSameMoment(path, kProcesses, clock_), 0) << "round " << round;
    EXPECT_EQ(RawRows(path, "SELECT count(*) FROM tasks"), std::vector<std::string>{std::to_string(kProcesses)});
    EXPECT_EQ(RawRows(path, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  }
}

TEST_F(SqliteStoreFileTest, OpeningWaitsForAReaderOfAStoreInAnotherJournalMode) {
  // A store in rollback-journal mode (as another tool may leave it) that another process is
  // reading: switching it to WAL needs that reader gone, and SQLite does not wait for it itself.
  ASSERT_TRUE(Open().ok());
  RawExec(path_, "PRAGMA journal_mode = DELETE");
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM tasks", nullptr, nullptr, nullptr), SQLITE_OK);
  std::thread finish_reading([reader] {
    std::this_thread::sleep_for(milliseconds(300));
    sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  });
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<SqliteStore>> store = Open();
  const auto waited = std::chrono::steady_clock::now() - start;
  finish_reading.join();
  sqlite3_close(reader);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_EQ(RawRows(path_, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});

  // Held past the busy timeout, the error says how long it waited.
  store->reset();
  RawExec(path_, "PRAGMA journal_mode = DELETE");
  ASSERT_EQ(sqlite3_open(path_.c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM tasks", nullptr, nullptr, nullptr), SQLITE_OK);
  store = Open(milliseconds(400));
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_NE(store.status().message().find("still locked after 4"), std::string::npos) << store.status().message();
}

TEST_F(SqliteStoreFileTest, CreatingAStoreLeavesNothingButTheStore) {
  ASSERT_TRUE(Open().ok());
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(path_).parent_path())) {
    files.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(files, std::vector<std::string>{"herald.db"});
  EXPECT_EQ(RawRows(path_, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  EXPECT_EQ(RawRows(path_, "PRAGMA user_version"),
            std::vector<std::string>{std::to_string(store_internal::SchemaVersion())});
}

TEST_F(SqliteStoreFileTest, WithoutCreateIfMissingNoStoreIsMade) {
  SqliteStore::Options options;
  options.create_if_missing = false;
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound) << store.status().ToString();
  EXPECT_NE(store.status().message().find("'" + path_ + "' does not exist"), std::string::npos)
      << store.status().message();
  EXPECT_FALSE(fs::exists(path_));

  // An SQLite database with nothing in it is not a store either, and stays as it was.
  RawExec(path_, "PRAGMA user_version = 0");
  const std::string before = ReadFile(path_);
  store = SqliteStore::Open(path_, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound) << store.status().ToString();
  EXPECT_NE(store.status().message().find("not yet a herald store"), std::string::npos) << store.status().message();
  EXPECT_TRUE(ReadFile(path_) == before);

  // A store that exists opens.
  fs::remove(path_);
  ASSERT_TRUE(Open().ok());
  store = SqliteStore::Open(path_, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
}

TEST_F(SqliteStoreFileTest, AnEmptyFileIsNeverTakenForANewStore) {
  std::ofstream(path_, std::ios::binary).close();
  for (const bool create : {true, false}) {
    SqliteStore::Options options;
    options.create_if_missing = create;
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_, options);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
    for (const std::string& part : {"'" + path_ + "' is empty (0 bytes)", std::string("delete it")}) {
      EXPECT_NE(store.status().message().find(part), std::string::npos) << store.status().message();
    }
    EXPECT_EQ(fs::file_size(path_), 0u);
  }
}

TEST_F(SqliteStoreFileTest, ALimitWindowSpansARestart) {
  const TimePoint t0 = clock_.Now();
  const std::vector<SendingLimit> limits = {Limit("200/hour")};
  auto send = [&](std::size_t count, TimePoint now) -> std::size_t {
    Result<std::unique_ptr<SqliteStore>> store = Open();  // a run of its own
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return 0;
    Result<std::vector<RecipientRecord>> due = (*store)->FetchDue("t", now, 0, count);
    EXPECT_TRUE(due.ok()) << due.status().ToString();
    StoreBatch batch;
    batch.in_flight = Entries(Ids(*due), "relay", limits);
    Result<ApplyReport> report = (*store)->Apply(batch, now);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? due->size() - report->refused.size() : 0;
  };
  {
    Result<std::unique_ptr<SqliteStore>> store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
    ImportInto(**store, "t", MakeRecipients(500));
  }
  EXPECT_EQ(send(150, t0), 150u);
  EXPECT_EQ(send(100, t0 + minutes(30)), 50u);
  EXPECT_EQ(send(100, t0 + hours(1)), 0u);
  // T's minute has left the hour; T+30min's 50 are still in it.
  EXPECT_EQ(send(200, t0 + hours(1) + seconds(59) + milliseconds(999)), 150u);
}

TEST_F(SqliteStoreFileTest, MigratesAVersion1StoreKeepingItsCounts) {
  // A store as herald with schema version 1 left it: a task, a recipient, and per-minute counts.
  const std::int64_t m0 = ToUnixMillis(clock_.Now()) / 60'000;  // a whole day
  const std::int64_t h0 = m0 / 60;
  const std::int64_t d0 = m0 / 1440;
  RawExec(path_, std::string(store_internal::MigrationScript(0)) + "PRAGMA user_version = 1; PRAGMA application_id = " +
                     std::to_string(store_internal::kApplicationId) + ";");
  RawExec(path_, "INSERT INTO tasks (key, id, title, columns, submitted_at, source_digest, nonce) VALUES (1, 't', "
                 "'Old task', " + EncodedLiteral({"email"}) + ", 0, '', 'n');"
                 "INSERT INTO recipients (task, dedup_key, dedup_hash, address, fields, line, status, updated_at) "
                 "VALUES (1, 'a@example.com', 0, 'a@example.com', " + EncodedLiteral({"a@example.com"}) + ", 2, 0, 0);");
  struct Minute {
    const char* account;
    std::int64_t minute;
    int messages;
  };
  const Minute minutes_v1[] = {
      {"relay", m0, 5},         {"relay", m0 + 59, 7},  // hour 0 of day 0
      {"relay", m0 + 60, 11},                            // hour 1
      {"relay", m0 + 1440, 13},                          // day 1
      {"other", m0 - 1, 2},                              // the day before
      {"old", -1, 3},                                    // 1969-12-31T23:59
  };
  for (const Minute& m : minutes_v1) {
    RawExec(path_, "INSERT INTO send_counts VALUES ('" + std::string(m.account) + "', " + std::to_string(m.minute) +
                       ", " + std::to_string(m.messages) + ")");
  }

  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(RawRows(path_, "PRAGMA user_version"),
            std::vector<std::string>{std::to_string(store_internal::SchemaVersion())});
  auto row = [](const char* account, std::int64_t bucket, int messages) {
    return std::string(account) + "|" + std::to_string(bucket) + "|" + std::to_string(messages);
  };
  EXPECT_EQ(RawRows(path_, "SELECT account, hour, messages FROM send_counts_hourly ORDER BY account, hour"),
            (std::vector<std::string>{row("old", -1, 3), row("other", h0 - 1, 2), row("relay", h0, 12),
                                      row("relay", h0 + 1, 11), row("relay", h0 + 24, 13)}));
  EXPECT_EQ(RawRows(path_, "SELECT account, day, messages FROM send_counts_daily ORDER BY account, day"),
            (std::vector<std::string>{row("old", -1, 3), row("other", d0 - 1, 2), row("relay", d0, 23),
                                      row("relay", d0 + 1, 13)}));
  EXPECT_EQ(RawRows(path_, "SELECT count(*) FROM send_counts"), std::vector<std::string>{"6"});

  // The old data is all there, and the limits see the old counts on every level.
  Result<std::optional<TaskRecord>> task = (*store)->FindTask("t");
  ASSERT_TRUE(task.ok() && task->has_value());
  EXPECT_EQ((*task)->title, "Old task");
  const std::vector<RecipientRecord> all = AllOf(**store, "t");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(*(*store)->CountSends("relay", clock_.Now(), clock_.Now() + hours(48)), 36u);
  const TimePoint now = clock_.Now() + hours(24) + minutes(30);
  struct Case {
    std::vector<SendingLimit> limits;
    std::optional<TimePoint> want_retry_at;  // none: fits
  };
  const Case cases[] = {
      // (now - 24h, now] overlaps hours 0, 1 and 24: 12 + 11 + 13; room once hour 0 has left.
      {{Limit("36/day")}, clock_.Now() + hours(25) - milliseconds(1)},
      {{Limit("36/week")}, clock_.Now() + std::chrono::days(7) + hours(1) - milliseconds(1)},
      // Days 0 and 1 (the day before is another account's).
      {{Limit("36/month")}, clock_.Now() + std::chrono::days(32) - milliseconds(1)},
      // The last hour holds minute 1440's 13.
      {{Limit("13/hour")}, clock_.Now() + hours(25) + seconds(59) + milliseconds(999)},
      {{Limit("37/day"), Limit("14/hour"), Limit("37/week"), Limit("37/month")}, std::nullopt},
  };
  for (const Case& c : cases) {
    StoreBatch batch;
    batch.in_flight = Entries({all[0].id}, "relay", c.limits);
    Result<ApplyReport> report = (*store)->Apply(batch, now);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    if (!c.want_retry_at) {
      EXPECT_TRUE(report->refused.empty()) << c.limits[0].ToString();
      continue;
    }
    ASSERT_EQ(report->refused.size(), 1u) << c.limits[0].ToString();
    EXPECT_EQ(report->refused[0].retry_at, c.want_retry_at)
        << c.limits[0].ToString() << ": got " << ToUnixMillis(*report->refused[0].retry_at) << ", want "
        << ToUnixMillis(*c.want_retry_at);
  }
}

TEST_F(SqliteStoreFileTest, MigratesAVersion3StoreKeepingEveryRecipientAndTask) {
  // A store as herald with schema version 3 left it: a task and recipients in several states.
  std::string script;
  for (int v = 0; v < 3; ++v) script += store_internal::MigrationScript(v);
  RawExec(path_, script + "PRAGMA user_version = 3; PRAGMA application_id = " +
                     std::to_string(store_internal::kApplicationId) + ";");
  RawExec(path_, "INSERT INTO tasks (key, id, title, columns, submitted_at, source_digest, nonce) VALUES (1, 't', "
                 "'Old task', " + EncodedLiteral({"email"}) + ", 1000, 'd1', 'n')");
  // id, address, then status, attempts, next_attempt_at, last reply, account, updated_at, possible_duplicate.
  auto insert = [&](int id, const std::string& address, const std::string& rest) {
    RawExec(path_, "INSERT INTO recipients (id, task, dedup_key, dedup_hash, address, fields, line, status, attempts, "
                   "next_attempt_at, last_code, last_enhanced, last_text, account, updated_at, possible_duplicate) "
                   "VALUES (" + std::to_string(id) + ", 1, '" + address + "', " +
                   std::to_string(store_internal::DedupHash(address)) + ", '" + address + "', " +
                   EncodedLiteral({address}) + ", " + std::to_string(id) + ", " + rest + ")");
  };
  insert(5, "a@example.com", "2, 1, NULL, 250, '2.0.0', 'ok', 'relay', 2000, 1");
  insert(9, "b@example.com", "4, 2, 7000, 451, '4.7.1', 'later', 'relay', 3000, 0");
  insert(12, "c@example.com", "0, 0, NULL, 0, '', '', '', 4000, 0");
  const std::string recipients_sql =
      "SELECT id, task, dedup_key, dedup_hash, address, fields, line, status, attempts, next_attempt_at, "
      "last_code, last_enhanced, last_text, account, updated_at, possible_duplicate FROM recipients ORDER BY id";
  const std::vector<std::string> before = RawRows(path_, recipients_sql);

  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(RawRows(path_, "PRAGMA user_version"),
            std::vector<std::string>{std::to_string(store_internal::SchemaVersion())});
  EXPECT_EQ(RawRows(path_, recipients_sql), before);
  EXPECT_EQ(RawRows(path_, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recipients' "
                            "ORDER BY name"),
            (std::vector<std::string>{"recipients_by_status", "recipients_dedup", "recipients_deferred",
                                      "recipients_possible_duplicates"}));
  const TaskRecord task = **(*store)->FindTask("t");
  EXPECT_EQ(task.title, "Old task");
  EXPECT_EQ(task.source_digest, "d1");
  EXPECT_TRUE(task.task_file.empty());
  EXPECT_TRUE(task.fingerprint.empty());
  EXPECT_FALSE(task.last_run_at.has_value());

  // The store works as before, and takes rejected rows; a new recipient gets a new id.
  Result<std::vector<RecipientRecord>> due = (*store)->FetchDue("t", FromUnixMillis(7000), 0, 10);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  EXPECT_EQ(Ids(*due), (std::vector<std::int64_t>{9, 12}));
  Result<std::unique_ptr<RecipientImport>> import = (*store)->BeginImport("t");
  ASSERT_TRUE(import.ok()) << import.status().ToString();
  NewRecipient again = MakeRecipient("a@example.com", 2);
  again.fields = {"a@example.com"};
  Result<bool> added = (*import)->Add(again);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_FALSE(*added);  // still a duplicate
  ASSERT_TRUE((*import)->Reject(RejectedRow{"d@", {}, 5, "no domain"}).ok());
  ASSERT_TRUE((*import)->Finish().ok());
  import->reset();
  const std::vector<RecipientRecord> all = AllOf(**store, "t");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_GT(all[3].id, 12);
  EXPECT_EQ(all[3].status, RecipientStatus::kRejected);
  EXPECT_EQ((*(*store)->CountByStatus("t")).possible_duplicates, 1u);
}

TEST_F(SqliteStoreFileTest, ApplyWithLimitsStaysCheap) {
  // A month of history: 10 accounts that each sent one message every minute for 31 days
  // (446,400 minute rows), then batches of 64 for one of them with 3 limits (hour, week,
  // month: the longest ranges on each level, 61 + 169 + 32 rows). Compared with the same
  // batches without an account (nothing checked or counted), the difference is the limits' cost.
  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
  constexpr std::size_t kBatch = 64;
  constexpr int kRounds = 100;
  ImportInto(**store, "t", MakeRecipients(2 * kBatch * kRounds));
  const std::int64_t m_end = ToUnixMillis(clock_.Now()) / 60'000;
  const std::string history =
      "WITH RECURSIVE a(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM a WHERE n < 9), "
      "m(k) AS (SELECT " + std::to_string(m_end - 31 * 1440) + " UNION ALL SELECT k + 1 FROM m WHERE k < " +
      std::to_string(m_end - 1) + ") ";
  RawExec(path_, history + "INSERT INTO send_counts SELECT 'relay-' || n, k, 1 FROM a, m;" + history +
                     "INSERT INTO send_counts_hourly SELECT 'relay-' || n, k / 60, count(*) FROM a, m GROUP BY n, k / 60;" +
                     history +
                     "INSERT INTO send_counts_daily SELECT 'relay-' || n, k / 1440, count(*) FROM a, m GROUP BY n, k / 1440;");
  const std::vector<SendingLimit> limits = {Limit("1000000/hour"), Limit("10000000/week"), Limit("100000000/month")};

  auto median_apply = [&](const std::string& account, const std::vector<SendingLimit>& batch_limits) {
    std::vector<double> micros;
    for (int round = 0; round < kRounds; ++round) {
      const TimePoint now = clock_.Now() + seconds(round);
      Result<std::vector<RecipientRecord>> due = (*store)->FetchDue("t", now, 0, kBatch);
      EXPECT_TRUE(due.ok() && due->size() == kBatch);
      StoreBatch batch;
      batch.in_flight = Entries(Ids(*due), account, batch_limits);
      const auto start = std::chrono::steady_clock::now();
      Result<ApplyReport> report = (*store)->Apply(batch, now);
      micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
      EXPECT_TRUE(report.ok() && report->refused.empty());
    }
    std::sort(micros.begin(), micros.end());
    return micros[micros.size() / 2];
  };
  const double without = median_apply("", {});
  const double with = median_apply("relay-3", limits);
  EXPECT_EQ(*(*store)->CountSends("relay-3", clock_.Now(), clock_.Now() + hours(1)), kBatch * kRounds);
  std::cout << "Apply of " << kBatch << " in flight, median of " << kRounds << ": " << with << " us with 3 limits, "
            << without << " us without an account; limits cost " << (with - without) << " us per batch\n";
  // Reading the history per entry, or without the primary key, would cost tens of times the
  // batch itself. A ratio, not a time: it holds on a slow or busy machine and under sanitizers
  // (about 1.4 in a release build, 2.2 under AddressSanitizer).
  EXPECT_LT(with, 5 * without);
}

TEST_F(SqliteStoreFileTest, ImportTellsKeysWithTheSameHashApart) {
  {
    Result<std::unique_ptr<SqliteStore>> store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
  }
  // A recipient whose key differs from a@example.com's but has the same hash, as a collision
  // would leave it.
  RawExec(path_, "INSERT INTO recipients (task, dedup_key, dedup_hash, address, fields, line, status, updated_at) "
                 "VALUES (1, 'collider', " +
                     std::to_string(store_internal::DedupHash("a@example.com")) + ", 'collider', x'', 1, 0, 0)");
  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<std::unique_ptr<RecipientImport>> import = (*store)->BeginImport("t");
  ASSERT_TRUE(import.ok()) << import.status().ToString();
  struct Case {
    std::string address;
    bool want_added;
  };
  const Case cases[] = {{"a@example.com", true}, {"A@example.com", false}, {"b@example.com", true}};
  for (const Case& c : cases) {
    Result<bool> added = (*import)->Add(MakeRecipient(c.address, 2));
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    EXPECT_EQ(*added, c.want_added) << c.address;
  }
  ASSERT_TRUE((*import)->Finish().ok());
  EXPECT_EQ((*store)->CountByStatus("t")->total(), 3u);
}

TEST_F(SqliteStoreFileTest, ALongImportDoesNotKeepOtherProcessesOut) {
  constexpr std::size_t kBatchRows = 1000;
  SqliteStore::Options import_options;
  import_options.import_batch_rows = kBatchRows;
  Result<std::unique_ptr<SqliteStore>> importer = SqliteStore::Open(path_, import_options);
  ASSERT_TRUE(importer.ok()) << importer.status().ToString();
  ASSERT_TRUE((*importer)->CreateTask(MakeTask("t")).ok());
  // The sender's recipient, put back and in flight again by every write (each counting one message).
  ASSERT_TRUE((*importer)->CreateTask(MakeTask("s")).ok());
  ImportInto(**importer, "s", MakeRecipients(1));
  const std::int64_t sent_id = (*(*importer)->FetchDue("s", clock_.Now(), 0, 1))[0].id;

  // The importer writes batch after batch, as fast as it can, until the sender is done.
  std::atomic<bool> stop = false;
  std::atomic<bool> failed = false;
  Status import_status;
  std::atomic<std::size_t> imported = 0;
  std::thread import_thread([&] {
    Result<std::unique_ptr<RecipientImport>> import = (*importer)->BeginImport("t");
    if (!import.ok()) {
      import_status = import.status();
      failed = true;
      return;
    }
    while (!stop) {
      Result<bool> added =
          (*import)->Add(MakeRecipient("user" + std::to_string(imported.load()) + "@example.com", 2));
      if (!added.ok()) {
        import_status = added.status();
        failed = true;
        return;
      }
      ++imported;
    }
    import_status = (*import)->Finish();
  });
  auto wait_for_rows = [&](std::size_t rows) {
    while (imported < rows && !failed) std::this_thread::sleep_for(milliseconds(1));
  };
  // How long one batch holds the lock here (sanitizer builds are many times slower).
  wait_for_rows(kBatchRows);
  const auto batches_start = std::chrono::steady_clock::now();
  wait_for_rows(3 * kBatchRows);
  const auto batch_time = (std::chrono::steady_clock::now() - batches_start) / 2;

  // Each write of the sender waits for about one batch. Without a fair share it would wait for
  // the end of the import, however many batches that takes.
  const Duration timeout = std::max<Duration>(milliseconds(300),
                                              std::chrono::duration_cast<milliseconds>(10 * batch_time));
  Result<std::unique_ptr<SqliteStore>> sender = Open(timeout);
  ASSERT_TRUE(sender.ok()) << sender.status().ToString();
  const auto start = std::chrono::steady_clock::now();
  const std::size_t imported_before = imported;
  StoreBatch batch;
  batch.results = {{sent_id, RecipientStatus::kUnsent, std::nullopt, {}, "relay"}};
  batch.in_flight = Entries({sent_id}, "relay");
  std::size_t written = 0;
  while (std::chrono::steady_clock::now() - start < std::max<Duration>(seconds(1), 3 * timeout)) {
    Result<ApplyReport> report = (*sender)->Apply(batch, clock_.Now());
    Status status = report.ok() && !report->refused.empty() ? Internal("refused") : report.status();
    if (!status.ok()) {
      ADD_FAILURE() << "write " << written << " after " << imported << " imported rows: " << status.ToString();
      break;
    }
    ++written;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const std::size_t imported_meanwhile = imported - imported_before;
  stop = true;
  import_thread.join();
  ASSERT_TRUE(import_status.ok()) << import_status.ToString();
  EXPECT_GT(imported_meanwhile, 3 * kBatchRows) << "the import did not compete for the lock";
  EXPECT_EQ(*(*sender)->CountSends("relay", clock_.Now(), clock_.Now() + minutes(1)), written);
  EXPECT_EQ((*sender)->CountByStatus("t")->total(), imported.load());
  std::cout << written << " writes in " << std::chrono::duration_cast<milliseconds>(elapsed).count()
            << " ms (busy timeout " << timeout.count() << " ms) while importing " << imported_meanwhile
            << " recipients\n";
}

TEST_F(SqliteStoreFileTest, ReopeningKeepsEverything) {
  const TimePoint t0 = clock_.Now();
  std::int64_t deferred_id = 0;
  {
    Result<std::unique_ptr<SqliteStore>> store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
    Result<std::unique_ptr<RecipientImport>> import = (*store)->BeginImport("t");
    ASSERT_TRUE(import.ok());
    for (const NewRecipient& r : MakeRecipients(3)) ASSERT_TRUE((*import)->Add(r).ok());
    ASSERT_TRUE((*import)->Finish().ok());
    import->reset();
    std::vector<RecipientRecord> due = *(*store)->FetchDue("t", t0, 0, 10);
    deferred_id = due[1].id;
    StoreBatch batch;
    batch.in_flight = Entries({due[0].id, due[1].id, due[2].id}, "relay");
    ASSERT_TRUE((*store)->Apply(batch, t0).ok());
    batch = {};
    batch.results = {{due[1].id, RecipientStatus::kDeferred, t0 + hours(1), {452, "4.2.2", "mailbox full"}, "relay"}};
    ASSERT_TRUE((*store)->Apply(batch, t0).ok());
  }
  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<std::optional<TaskRecord>> task = (*store)->FindTask("t");
  ASSERT_TRUE(task.ok() && task->has_value());
  EXPECT_EQ((*task)->columns, MakeTask("t").columns);
  const StatusCounts counts = *(*store)->CountByStatus("t");
  EXPECT_EQ(counts[RecipientStatus::kInFlight], 2u);
  EXPECT_EQ(counts[RecipientStatus::kDeferred], 1u);
  EXPECT_EQ(*(*store)->NextAttemptAt("t"), std::optional<TimePoint>(t0 + hours(1)));
  EXPECT_EQ(*(*store)->CountSends("relay", t0, t0 + minutes(1)), 3u);
  bool seen = false;
  ASSERT_TRUE((*store)
                  ->ForEachRecipient("t",
                                     [&](const RecipientRecord& r) {
                                       if (r.id == deferred_id) {
                                         seen = true;
                                         EXPECT_EQ(r.last_error, (DeliveryError{452, "4.2.2", "mailbox full"}));
                                         EXPECT_EQ(r.fields, MakeRecipients(3)[1].fields);
                                       }
                                       return Status::Ok();
                                     })
                  .ok());
  EXPECT_TRUE(seen);
  EXPECT_EQ(*(*store)->RecoverInFlight("t"), 2u);
}

TEST_F(SqliteStoreFileTest, CommittedWritesSurviveAKilledProcess) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The "sending process": puts two recipients in flight, is in the middle of another import,
    // and is killed. Any failure exits with a code the parent reports.
    Result<std::unique_ptr<SqliteStore>> store = Open();
    if (!store.ok() || !(*store)->CreateTask(MakeTask("t")).ok()) _exit(2);
    Result<std::unique_ptr<RecipientImport>> import = (*store)->BeginImport("t");
    if (!import.ok()) _exit(3);
    for (const NewRecipient& r : MakeRecipients(3)) {
      if (!(*import)->Add(r).ok()) _exit(4);
    }
    if (!(*import)->Finish().ok()) _exit(5);
    import->reset();
    Result<std::vector<RecipientRecord>> due = (*store)->FetchDue("t", clock_.Now(), 0, 2);
    if (!due.ok() || due->size() != 2) _exit(6);
    StoreBatch batch;
    batch.in_flight = Entries({(*due)[0].id, (*due)[1].id});
    if (!(*store)->Apply(batch, clock_.Now()).ok()) _exit(7);
    import = (*store)->BeginImport("t");
    if (!import.ok() || !(*import)->Add(MakeRecipient("unfinished@example.com", 9)).ok()) _exit(8);
    raise(SIGKILL);
    _exit(9);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
      << "the child exited with " << (WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1);

  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const StatusCounts counts = *(*store)->CountByStatus("t");
  EXPECT_EQ(counts[RecipientStatus::kInFlight], 2u);
  EXPECT_EQ(counts.total(), 3u);  // the unfinished import batch is gone
  Result<std::size_t> recovered = (*store)->RecoverInFlight("t");
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(*recovered, 2u);
  EXPECT_EQ((*store)->CountByStatus("t")->possible_duplicates, 2u);
}

TEST_F(SqliteStoreFileTest, RefusesAStoreFromANewerVersion) {
  ASSERT_TRUE(Open().ok());
  RawExec(path_, "PRAGMA user_version = 99");
  Result<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_FALSE(store.ok());
  const Status& status = store.status();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  for (const std::string& part :
       {path_, std::string("version 99"), "version " + std::to_string(store_internal::SchemaVersion()) + " "}) {
    EXPECT_NE(status.message().find(part), std::string::npos) << status.message() << "\nmissing: " << part;
  }
}

TEST_F(SqliteStoreFileTest, RefusesWhatIsNotAStoreNamingTheFile) {
  struct Case {
    const char* name;
    std::function<void(const std::string&)> make;
    std::string_view want_in_message;
  };
  const Case cases[] = {
      {"text file",
       [](const std::string& path) {
         std::ofstream out(path, std::ios::binary);
         for (int i = 0; i < 200; ++i) out << "email,first_name\nann@example.com,Ann\n";
       },
       "is damaged or is not a herald store"},
      {"another program's database",
       [](const std::string& path) { RawExec(path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x')"); },
       "not a herald store"},
      {"another application id",
       [](const std::string& path) { RawExec(path, "PRAGMA application_id = 42; CREATE TABLE x (y)"); },
       "another application"},
      {"a version without herald's id",
       [](const std::string& path) { RawExec(path, "PRAGMA user_version = 1; CREATE TABLE x (y)"); },
       "not a herald store"},
  };
  for (const Case& c : cases) {
    const std::string path = dir_.File(std::string(c.name) + ".db");
    c.make(path);
    const std::string before = ReadFile(path);
    Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    ASSERT_FALSE(store.ok()) << c.name;
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << c.name << ": " << store.status().ToString();
    EXPECT_NE(store.status().message().find("'" + path + "'"), std::string::npos) << store.status().message();
    EXPECT_NE(store.status().message().find(c.want_in_message), std::string::npos)
        << c.name << ": " << store.status().message();
    EXPECT_TRUE(ReadFile(path) == before) << c.name << ": the file was changed";
  }
}

TEST_F(SqliteStoreFileTest, ADamagedStoreGivesErrorsNamingTheFile) {
  {
    Result<std::unique_ptr<SqliteStore>> store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
    Result<std::unique_ptr<RecipientImport>> import = (*store)->BeginImport("t");
    ASSERT_TRUE(import.ok());
    for (const NewRecipient& r : MakeRecipients(3000)) ASSERT_TRUE((*import)->Add(r).ok());
    ASSERT_TRUE((*import)->Finish().ok());
  }
  // Overwrite everything after the first pages (schema and the tasks table) with garbage.
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 64u * 1024);
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(16 * 1024);
    const std::string garbage(size - 16 * 1024, '\xa5');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  Result<std::unique_ptr<SqliteStore>> store = Open();
  std::vector<Status> errors;
  if (!store.ok()) {
    errors.push_back(store.status());
  } else {
    errors.push_back((*store)->ForEachRecipient("t", [](const RecipientRecord&) { return Status::Ok(); }));
    errors.push_back((*store)->CountByStatus("t").status());
    errors.push_back((*store)->FetchDue("t", clock_.Now(), 0, 5000).status());
  }
  bool any_error = false;
  for (const Status& status : errors) {
    if (status.ok()) continue;
    any_error = true;
    EXPECT_NE(status.message().find("'" + path_ + "'"), std::string::npos) << status.ToString();
  }
  EXPECT_TRUE(any_error) << "the damage went unnoticed";
}

TEST_F(SqliteStoreFileTest, AStoreLockedByAnotherProcessIsUnavailable) {
  Result<std::unique_ptr<SqliteStore>> store = Open(milliseconds(200));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->CreateTask(MakeTask("t")).ok());
  ImportInto(**store, "t", MakeRecipients(1));
  const std::int64_t id = (*(*store)->FetchDue("t", clock_.Now(), 0, 1))[0].id;

  // Another "process" holds the write lock in an open transaction.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE; INSERT INTO send_counts VALUES ('x', 1, 1)", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);

  const auto start = std::chrono::steady_clock::now();
  Status status = (*store)->CreateTask(MakeTask("u"));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("'" + path_ + "'"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("in use by another process (still locked after 2"), std::string::npos)
      << status.message();
  EXPECT_GE(waited, milliseconds(150));

  StoreBatch batch;
  batch.in_flight = Entries({id}, "relay", {Limit("1/hour")});
  EXPECT_EQ((*store)->Apply(batch, clock_.Now()).status().code(), StatusCode::kUnavailable);
  // Readers do not wait for the writer (WAL), and opening an up-to-date store needs no lock.
  EXPECT_TRUE((*store)->FindTask("t").ok());
  EXPECT_TRUE((*store)->CountSends("relay", clock_.Now(), clock_.Now() + minutes(1)).ok());
  Result<std::unique_ptr<SqliteStore>> another = Open(milliseconds(200));
  EXPECT_TRUE(another.ok()) << another.status().ToString();

  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE((*store)->CreateTask(MakeTask("u")).ok());
  Result<ApplyReport> report = (*store)->Apply(batch, clock_.Now());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->refused.empty());
  EXPECT_EQ(*(*store)->CountSends("relay", clock_.Now(), clock_.Now() + minutes(1)), 1u);
}

TEST_F(SqliteStoreFileTest, ReportsFilesThatCannotBeOpened) {
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir_.File("no/such/dir/herald.db"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIo) << store.status().ToString();
  EXPECT_NE(store.status().message().find("no/such/dir/herald.db"), std::string::npos) << store.status().message();
  EXPECT_EQ(SqliteStore::Open("").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace herald
