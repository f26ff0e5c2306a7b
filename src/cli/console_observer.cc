#include "cli/console_observer.h"

#include <chrono>

#include <fmt/format.h>

#include "core/units.h"

namespace herald {
namespace {

std::string Now() {
  return FormatLocalTime(std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now()));
}

std::string ClockTime(std::int64_t seconds) {
  if (seconds >= 3600) return fmt::format("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
  return fmt::format("{}:{:02}", seconds / 60, seconds % 60);
}

}  // namespace

std::string GroupDigits(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

ConsoleObserver::ConsoleObserver(std::FILE* out, bool terminal, bool quiet)
    : out_(out), terminal_(terminal), quiet_(quiet) {}

void ConsoleObserver::ClearLiveLine() {
  if (terminal_ && !live_line_.empty()) {
    fmt::print(out_, "\r\x1b[K");
  }
}

void ConsoleObserver::PrintLine(std::string_view line) {
  ClearLiveLine();
  if (terminal_) {
    fmt::print(out_, "{}\n", line);
    if (!live_line_.empty()) fmt::print(out_, "{}", live_line_);
  } else {
    fmt::print(out_, "{} {}\n", Now(), line);
  }
  std::fflush(out_);
}

void ConsoleObserver::OnImport(const ImportReport& report) {
  PrintLine(fmt::format("imported {} recipient(s) from {} row(s); {} duplicate(s) dropped, {} bad row(s) rejected "
                        "(never sent; see `herald status --list`)",
                        GroupDigits(report.imported), GroupDigits(report.rows), GroupDigits(report.duplicates),
                        GroupDigits(report.bad)));
  for (const BadRow& row : report.bad_rows) PrintLine(fmt::format("  rejected line {}: {}", row.line, row.reason));
  if (report.bad > report.bad_rows.size()) {
    PrintLine(fmt::format("  ... and {} more bad row(s)", GroupDigits(report.bad - report.bad_rows.size())));
  }
}

void ConsoleObserver::OnRecovered(std::size_t possible_duplicates) {
  PrintLine(fmt::format("{} recipient(s) were in flight when the last run stopped abruptly; they are sent again "
                        "and marked as possible duplicates",
                        GroupDigits(possible_duplicates)));
}

void ConsoleObserver::OnResult(const RecipientEvent& event) {
  // Said once for its account (a warning when it failed, and the run's summary).
  if (event.waits_for_account) return;
  const AttemptResult& result = event.result;
  switch (result.status) {
    case RecipientStatus::kSent:
      if (!quiet_ && !terminal_) PrintLine(fmt::format("sent {} via {}", event.recipient.address, event.account));
      break;
    case RecipientStatus::kDeferred:
      PrintLine(fmt::format("deferred {} via {} until {}: {}", event.recipient.address, event.account,
                            FormatLocalTime(*result.next_attempt_at), result.error.text));
      break;
    case RecipientStatus::kFailed:
      PrintLine(fmt::format("failed {} (line {}): {}", event.recipient.address, event.recipient.line,
                            result.error.text));
      break;
    default:
      break;
  }
}

void ConsoleObserver::OnProgress(const RunProgress& progress) {
  if (!terminal_) return;
  // The rate over the time spent sending (the engine leaves its waits out), and the time left:
  // the wait under way, then the rest at that rate.
  double seconds = std::chrono::duration<double>(progress.elapsed).count();
  double rate = seconds > 0.5 ? static_cast<double>(progress.sent_this_run) / seconds : 0;
  std::int64_t wait = 0;
  if (progress.waiting_until && *progress.waiting_until > progress.now) {
    wait = std::chrono::duration_cast<std::chrono::seconds>(*progress.waiting_until - progress.now).count();
  }
  std::string left;
  if (progress.remaining == 0) {
    left = ClockTime(0);
  } else if (rate > 0) {
    left = ClockTime(wait + static_cast<std::int64_t>(static_cast<double>(progress.remaining) / rate));
  } else {
    left = wait > 0 ? "over " + ClockTime(wait) : "-";
  }
  live_line_ = fmt::format("sent {}  failed {}  deferred {}  remaining {}  {:.0f} msg/s  left {}",
                           GroupDigits(progress.sent), GroupDigits(progress.failed), GroupDigits(progress.deferred),
                           GroupDigits(progress.remaining), rate, left);
  if (wait > 0) {
    live_line_ += fmt::format("  waiting for {} until {}", progress.waiting_for, FormatLocalTime(*progress.waiting_until));
  }
  fmt::print(out_, "\r\x1b[K{}", live_line_);
  std::fflush(out_);
}

void ConsoleObserver::OnWarning(std::string_view warning) { PrintLine(fmt::format("warning: {}", warning)); }

void ConsoleObserver::OnWaiting(std::string_view why, TimePoint until) {
  PrintLine(fmt::format("waiting until {}: {}", FormatLocalTime(until), why));
}

void ConsoleObserver::OnBlacklisted(std::size_t count) {
  PrintLine(fmt::format("{} recipient(s) are on a blacklist: marked blacklisted, never sent", GroupDigits(count)));
}

void ConsoleObserver::Finish() {
  if (terminal_ && !live_line_.empty()) {
    fmt::print(out_, "\n");
    live_line_.clear();
    std::fflush(out_);
  }
}

}  // namespace herald
