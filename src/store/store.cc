#include "store/store.h"

#include <numeric>

namespace herald {
namespace {

constexpr std::array<std::string_view, kRecipientStatusCount> kStatusNames = {
    "unsent", "in-flight", "sent", "failed", "deferred", "blacklisted", "cancelled", "rejected",
};

}  // namespace

std::string_view RecipientStatusName(RecipientStatus status) {
  const auto index = static_cast<std::size_t>(status);
  return index < kStatusNames.size() ? kStatusNames[index] : std::string_view("unknown");
}

std::optional<RecipientStatus> ParseRecipientStatus(std::string_view name) {
  for (std::size_t i = 0; i < kStatusNames.size(); ++i) {
    if (kStatusNames[i] == name) return static_cast<RecipientStatus>(i);
  }
  return std::nullopt;
}

std::string DestinationCounter(std::string_view account, std::string_view destination) {
  std::string counter(account);
  counter += '\n';
  counter += destination;
  return counter;
}

std::uint64_t StatusCounts::total() const {
  return std::accumulate(by_status.begin(), by_status.end(), std::uint64_t{0});
}

}  // namespace herald
