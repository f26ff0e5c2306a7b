#include "core/units.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace herald {
namespace {

constexpr std::string_view kDurationExpected =
    "a duration like \"500ms\", \"30s\", \"2m\", \"1h30m\", \"1d\" or \"1w\"";

bool ParseCount(std::string_view digits, std::uint64_t& out) {
  if (digits.empty()) return false;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return ec == std::errc() && end == digits.data() + digits.size();
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  auto invalid = [&] {
    return InvalidArgument(fmt::format("\"{}\" is not {}", text, kDurationExpected));
  };
  if (text == "0") return Duration(0);
  if (text.empty()) return invalid();
  std::int64_t total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t digits_end = i;
    while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') ++digits_end;
    std::uint64_t value = 0;
    if (!ParseCount(text.substr(i, digits_end - i), value)) return invalid();
    std::size_t unit_end = digits_end;
    while (unit_end < text.size() && (text[unit_end] < '0' || text[unit_end] > '9')) ++unit_end;
    std::string_view unit = text.substr(digits_end, unit_end - digits_end);
    std::int64_t unit_ms = 0;
    if (unit == "ms") unit_ms = 1;
    else if (unit == "s") unit_ms = 1000;
    else if (unit == "m") unit_ms = 60'000;
    else if (unit == "h") unit_ms = 3'600'000;
    else if (unit == "d") unit_ms = 86'400'000;
    else if (unit == "w") unit_ms = 7 * 86'400'000LL;
    else return invalid();
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 2;
    if (value > static_cast<std::uint64_t>(kMax / unit_ms) || total_ms > kMax - static_cast<std::int64_t>(value) * unit_ms) {
      return InvalidArgument(fmt::format("duration \"{}\" is too long", text));
    }
    total_ms += static_cast<std::int64_t>(value) * unit_ms;
    i = unit_end;
  }
  return Duration(total_ms);
}

std::string FormatDuration(Duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out += '-';
    ms = -ms;
  }
  struct Unit {
    std::int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const Unit& unit : kUnits) {
    if (ms >= unit.ms) {
      out += fmt::format("{}{}", ms / unit.ms, unit.name);
      ms %= unit.ms;
    }
  }
  return out;
}

std::string_view LimitWindowName(LimitWindow window) {
  switch (window) {
    case LimitWindow::kMinute: return "minute";
    case LimitWindow::kHour: return "hour";
    case LimitWindow::kDay: return "day";
    case LimitWindow::kWeek: return "week";
    case LimitWindow::kMonth: return "month";
  }
  return "?";
}

std::string SendingLimit::ToString() const { return fmt::format("{}/{}", count, LimitWindowName(window)); }

Result<SendingLimit> ParseSendingLimit(std::string_view text) {
  auto invalid = [&] {
    return InvalidArgument(fmt::format(
        "\"{}\" is not a sending limit like \"200/hour\" (count at least 1; per minute, hour, day, week or month)",
        text));
  };
  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return invalid();
  SendingLimit limit;
  if (!ParseCount(text.substr(0, slash), limit.count) || limit.count == 0) return invalid();
  std::string_view window = text.substr(slash + 1);
  if (window == "minute") limit.window = LimitWindow::kMinute;
  else if (window == "hour") limit.window = LimitWindow::kHour;
  else if (window == "day") limit.window = LimitWindow::kDay;
  else if (window == "week") limit.window = LimitWindow::kWeek;
  else if (window == "month") limit.window = LimitWindow::kMonth;
  else return invalid();
  return limit;
}

Result<std::uint64_t> ParseByteSize(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  struct Unit {
    std::string_view name;
    std::uint64_t bytes;
  };
  // In capitals: the unit is compared in capitals ("25mb" is meant as 25 MB).
  static constexpr Unit kUnits[] = {{"", 1},          {"B", 1},           {"KB", 1000},      {"MB", 1000000},
                                    {"GB", 1000000000}, {"KIB", 1u << 10}, {"MIB", 1u << 20}, {"GIB", 1u << 30}};
  std::uint64_t count = 0;
  std::string unit(text.substr(digits));
  for (char& c : unit) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  for (const Unit& known : kUnits) {
    if (unit != known.name || !ParseCount(text.substr(0, digits), count)) continue;
    if (count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / known.bytes) break;
    return count * known.bytes;
  }
  return InvalidArgument(fmt::format(
      "\"{}\" is not a size like \"25MB\", \"500KB\", \"10MiB\" or a number of bytes (at most 2^63)", text));
}

std::string FormatByteSize(std::uint64_t bytes) {
  if (bytes < 1000) return fmt::format("{} bytes", bytes);
  static constexpr std::string_view kUnits[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
  double value = static_cast<double>(bytes) / 1000;
  std::size_t unit = 0;
  while (value >= 999.95 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace herald
