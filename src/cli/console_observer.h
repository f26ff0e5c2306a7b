// ConsoleObserver: how `herald send` shows a run. On a terminal, one progress line redrawn in
// place (sent, failed, remaining, rate, time left, and while sending pauses what for and until
// when) with failures and warnings printed above it;
// otherwise one plain log line per recipient result, for log files and scripts.
// Used from the engine's thread only.
#pragma once

#include <cstdio>
#include <string>

#include "engine/task_runner.h"

namespace herald {

class ConsoleObserver final : public RunObserver {
 public:
  // `out` is where progress and log lines go (stderr); `terminal` selects the live line.
  // `quiet` leaves out the line per sent recipient (failures and warnings are still shown).
  ConsoleObserver(std::FILE* out, bool terminal, bool quiet);

  void OnImport(const ImportReport& report) override;
  void OnRecovered(std::size_t possible_duplicates) override;
  void OnResult(const RecipientEvent& event) override;
  void OnProgress(const RunProgress& progress) override;
  void OnWarning(std::string_view warning) override;
  void OnWaiting(std::string_view why, TimePoint until) override;
  void OnBlacklisted(std::size_t count) override;

  // Ends the live line so that what follows starts on a fresh line.
  void Finish();

 private:
  void PrintLine(std::string_view line);
  void ClearLiveLine();

  std::FILE* out_;
  bool terminal_;
  bool quiet_;
  std::string live_line_;
};

// "1,234,567".
std::string GroupDigits(std::uint64_t n);

}  // namespace herald
