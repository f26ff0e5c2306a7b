#include "store/store.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

TEST(RecipientStatusTest, NamesRoundTrip) {
  struct Case {
    RecipientStatus status;
    std::string_view name;
  };
  const Case cases[] = {
      {RecipientStatus::kUnsent, "unsent"},       {RecipientStatus::kInFlight, "in-flight"},
      {RecipientStatus::kSent, "sent"},           {RecipientStatus::kFailed, "failed"},
      {RecipientStatus::kDeferred, "deferred"},   {RecipientStatus::kBlacklisted, "blacklisted"},
      {RecipientStatus::kCancelled, "cancelled"}, {RecipientStatus::kRejected, "rejected"},
  };
  static_assert(std::size(cases) == kRecipientStatusCount);
  for (const Case& c : cases) {
    EXPECT_EQ(RecipientStatusName(c.status), c.name);
    std::optional<RecipientStatus> parsed = ParseRecipientStatus(c.name);
    ASSERT_TRUE(parsed.has_value()) << c.name;
    EXPECT_EQ(*parsed, c.status) << c.name;
  }
}

TEST(RecipientStatusTest, ParseRejectsOtherNames) {
  for (std::string_view name : {"", "Sent", "SENT", "in_flight", "inflight", "unknown", "sent ", " sent"}) {
    EXPECT_FALSE(ParseRecipientStatus(name).has_value()) << "accepted \"" << name << "\"";
  }
  EXPECT_EQ(RecipientStatusName(static_cast<RecipientStatus>(42)), "unknown");
}

TEST(StatusCountsTest, TotalSumsEveryStatus) {
  StatusCounts counts;
  EXPECT_EQ(counts.total(), 0u);
  counts.by_status = {1, 2, 3, 4, 5, 6, 7, 8};
  counts.possible_duplicates = 100;  // a subset of the others, not added
  EXPECT_EQ(counts.total(), 36u);
  EXPECT_EQ(counts[RecipientStatus::kSent], 3u);
  EXPECT_EQ(counts[RecipientStatus::kCancelled], 7u);
}

}  // namespace
}  // namespace herald
