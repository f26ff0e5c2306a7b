#include "store/internal/send_limits.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace herald::store_internal {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;

// The first of the ascending `counts` with bucket >= `bucket`.
template <typename Counts>
auto FirstFrom(Counts& counts, std::int64_t bucket) {
  return std::lower_bound(counts.begin(), counts.end(), bucket,
                          [](const BucketCount& c, std::int64_t b) { return c.bucket < b; });
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0)) --q;
  return q;
}

}  // namespace

std::int64_t BucketMillis(CountLevel level) {
  switch (level) {
    case CountLevel::kMinute: return 60'000;
    case CountLevel::kHour: return 3'600'000;
    case CountLevel::kDay: return 86'400'000;
  }
  return 60'000;
}

std::int64_t BucketOf(CountLevel level, TimePoint at) { return FloorDiv(ToUnixMillis(at), BucketMillis(level)); }

WindowSpec SpecOf(LimitWindow window) {
  switch (window) {
    case LimitWindow::kMinute: return {minutes(1), CountLevel::kMinute};
    case LimitWindow::kHour: return {hours(1), CountLevel::kMinute};
    case LimitWindow::kDay: return {days(1), CountLevel::kHour};
    case LimitWindow::kWeek: return {days(7), CountLevel::kHour};
    case LimitWindow::kMonth: return {days(31), CountLevel::kDay};
  }
  return {days(31), CountLevel::kDay};
}

std::int64_t FirstCountedBucket(const WindowSpec& spec, TimePoint now) {
  // The window's first millisecond is now - length + 1.
  return FloorDiv(ToUnixMillis(now) - spec.length.count() + 1, BucketMillis(spec.level));
}

std::optional<TimePoint> RoomAt(std::span<const BucketCount> counts, const WindowSpec& spec, std::uint64_t limit) {
  assert(limit >= 1);
  // From the newest bucket back, find the newest one whose leaving brings the count below limit.
  std::uint64_t newer = 0;
  for (auto it = counts.rbegin(); it != counts.rend(); ++it) {
    if (newer + it->messages >= limit) {
      const std::int64_t last_ms = (it->bucket + 1) * BucketMillis(spec.level) - 1;
      return FromUnixMillis(last_ms + spec.length.count());
    }
    newer += it->messages;
  }
  return std::nullopt;
}

LimitCheck::LimitCheck(TimePoint now, Loader loader) : now_(now), loader_(std::move(loader)) {}

void LimitCheck::AddToNow(Level& level, CountLevel which, std::uint64_t messages) const {
  const std::int64_t bucket = BucketOf(which, now_);
  auto it = FirstFrom(level.counts, bucket);
  if (it != level.counts.end() && it->bucket == bucket) {
    it->messages += messages;
  } else {
    level.counts.insert(it, BucketCount{bucket, messages});
  }
}

Status LimitCheck::Load(const std::string& name, Account& account, CountLevel level, std::int64_t first) {
  std::optional<Level>& held = account.levels[static_cast<std::size_t>(level)];
  if (held && held->first <= first) return Status::Ok();
  Level loaded;
  loaded.first = first;
  HERALD_RETURN_IF_ERROR(loader_(name, level, first, loaded.counts));
  if (account.counted > 0) AddToNow(loaded, level, account.counted);
  held = std::move(loaded);
  for (std::size_t w = 0; w < kWindowCount; ++w) {
    if (SpecOf(static_cast<LimitWindow>(w)).level == level) account.totals[w].reset();
  }
  return Status::Ok();
}

Result<std::optional<LimitCheck::Refusal>> LimitCheck::Check(std::string_view account_name,
                                                             std::span<const SendingLimit> limits) {
  if (limits.empty()) return std::optional<Refusal>();
  auto it = accounts_.find(account_name);
  if (it == accounts_.end()) it = accounts_.emplace(std::string(account_name), Account{}).first;
  Account& account = it->second;

  // Load each level once, from the oldest bucket any of the limits needs.
  std::array<std::optional<std::int64_t>, kCountLevelCount> first;
  for (const SendingLimit& limit : limits) {
    const WindowSpec spec = SpecOf(limit.window);
    std::optional<std::int64_t>& f = first[static_cast<std::size_t>(spec.level)];
    const std::int64_t needed = FirstCountedBucket(spec, now_);
    f = f ? std::min(*f, needed) : needed;
  }
  for (CountLevel level : kCountLevels) {
    if (const std::optional<std::int64_t>& f = first[static_cast<std::size_t>(level)]) {
      HERALD_RETURN_IF_ERROR(Load(it->first, account, level, *f));
    }
  }

  std::optional<Refusal> refusal;
  for (const SendingLimit& limit : limits) {
    assert(limit.count >= 1);
    const WindowSpec spec = SpecOf(limit.window);
    const std::vector<BucketCount>& counts = account.levels[static_cast<std::size_t>(spec.level)]->counts;
    std::optional<std::uint64_t>& total = account.totals[static_cast<std::size_t>(limit.window)];
    if (!total) {
      total = 0;
      for (auto c = FirstFrom(counts, FirstCountedBucket(spec, now_)); c != counts.end(); ++c) *total += c->messages;
    }
    if (*total < limit.count) continue;
    const std::optional<TimePoint> room =
        RoomAt(std::span(FirstFrom(counts, FirstCountedBucket(spec, now_)), counts.end()), spec, limit.count);
    assert(room.has_value());
    if (room && (!refusal || *room > refusal->retry_at)) refusal = Refusal{limit, *room};
  }
  return refusal;
}

void LimitCheck::Count(std::string_view account_name) {
  auto it = accounts_.find(account_name);
  if (it == accounts_.end()) it = accounts_.emplace(std::string(account_name), Account{}).first;
  Account& account = it->second;
  ++account.counted;
  for (CountLevel level : kCountLevels) {
    if (std::optional<Level>& held = account.levels[static_cast<std::size_t>(level)]) AddToNow(*held, level, 1);
  }
  for (std::optional<std::uint64_t>& total : account.totals) {
    if (total) ++*total;
  }
}

void LimitCheck::ForEachCounted(const std::function<void(const std::string&, std::uint64_t)>& add) const {
  for (const auto& [name, account] : accounts_) {
    if (account.counted > 0) add(name, account.counted);
  }
}

}  // namespace herald::store_internal
