// The sending-limit arithmetic of the SQLite store (store.h, "Sending limits"): which counter
// level a limit's window is checked on, which buckets of that level count in a window, when a
// reached limit has room again, and the check of one Apply batch. Pure logic over Unix time; the
// counters come from a loader, so it is tested without a database.
//
// Threading: a LimitCheck belongs to one Apply call on one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/units.h"

namespace herald::store_internal {

// The counter levels, finest first: messages per account and minute, hour and day of Unix time.
// Each bucket of a level is a whole number of buckets of the finer ones (Unix time has no leap
// seconds), so one message is counted once on every level.
enum class CountLevel { kMinute = 0, kHour = 1, kDay = 2 };
inline constexpr std::size_t kCountLevelCount = 3;
inline constexpr std::array<CountLevel, kCountLevelCount> kCountLevels = {CountLevel::kMinute, CountLevel::kHour,
                                                                          CountLevel::kDay};

// 60,000, 3,600,000 or 86,400,000.
std::int64_t BucketMillis(CountLevel level);
// The bucket of `level` that holds `at`: floor(Unix milliseconds / BucketMillis(level)).
std::int64_t BucketOf(CountLevel level, TimePoint at);

// How a limit's window is checked: its fixed length and the level it is checked on.
//   minute: 60 s on minutes      hour: 60 min on minutes     day: 24 h on hours
//   week: 7 days on hours        month: 31 days on days
// so a window spans at most 61, 25, 169 or 32 buckets.
struct WindowSpec {
  Duration length;
  CountLevel level;
};
WindowSpec SpecOf(LimitWindow window);

// The oldest bucket that counts in the check at `now`: the first one overlapping the window
// (now - length, now] — the window of the message put in flight at `now`. It and every later
// bucket count whole.
std::int64_t FirstCountedBucket(const WindowSpec& spec, TimePoint now);

struct BucketCount {
  std::int64_t bucket = 0;
  std::uint64_t messages = 0;
  friend bool operator==(const BucketCount&, const BucketCount&) = default;
};

// When one more message fits a limit of `limit` messages again: the first moment at which the
// buckets still counted hold at most limit - 1 messages, if no more are sent. `counts` are the
// counted buckets of spec.level in ascending order. Bucket b stops counting once its last
// millisecond, (b + 1) * BucketMillis - 1, is a whole window length in the past; the answer is
// that moment for the newest bucket that has to go. Nullopt when the counts already hold fewer
// than `limit` messages (one more fits now).
std::optional<TimePoint> RoomAt(std::span<const BucketCount> counts, const WindowSpec& spec, std::uint64_t limit);

// The check of the in-flight entries of one Apply batch, all at the batch's `now`. Reads each
// account's counters at most once per level (from the oldest bucket any of its limits needs) and
// keeps the messages counted in the batch in memory, so later entries see earlier ones. The
// count in each window is kept as a running total: an entry costs O(1) per limit, plus a walk
// over the window's buckets when a limit is reached.
class LimitCheck {
 public:
  // Appends the stored counters of `account` on `level` with bucket >= `first`, ascending.
  using Loader = std::function<Status(std::string_view account, CountLevel level, std::int64_t first,
                                      std::vector<BucketCount>& out)>;

  struct Refusal {
    SendingLimit limit;  // the reached limit that has room last
    TimePoint retry_at;  // when one more message fits every limit
  };

  LimitCheck(TimePoint now, Loader loader);

  // Whether one more message through `account` at `now` fits every one of `limits`, counting the
  // stored counters and the messages Count()ed so far. When not: the latest RoomAt() over the
  // reached limits and that limit (the first of them in `limits` on a tie). Preconditions: every
  // limit's count is at least 1. Errors: the loader's.
  Result<std::optional<Refusal>> Check(std::string_view account, std::span<const SendingLimit> limits);

  // Counts one message through `account` at `now`.
  void Count(std::string_view account);

  // Calls `add(account, messages)` for every account Count()ed, with how many times.
  void ForEachCounted(const std::function<void(const std::string&, std::uint64_t)>& add) const;

 private:
  struct Level {
    std::int64_t first = 0;               // counts hold the buckets >= first
    std::vector<BucketCount> counts;      // stored counters plus this batch's, ascending
  };
  static constexpr std::size_t kWindowCount = 5;
  static_assert(static_cast<std::size_t>(LimitWindow::kMonth) + 1 == kWindowCount);
  struct Account {
    std::array<std::optional<Level>, kCountLevelCount> levels;
    // Messages in each window ending at `now`, from levels (computed when first needed).
    std::array<std::optional<std::uint64_t>, kWindowCount> totals;
    std::uint64_t counted = 0;            // messages counted in this batch
  };

  // Makes sure the account holds the counts of `level` from `first` on, loading (again) when
  // not held that far back.
  Status Load(const std::string& name, Account& account, CountLevel level, std::int64_t first);
  void AddToNow(Level& level, CountLevel which, std::uint64_t messages) const;

  TimePoint now_;
  Loader loader_;
  std::map<std::string, Account, std::less<>> accounts_;
};

}  // namespace herald::store_internal
