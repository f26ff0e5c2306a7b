#include "core/status.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace herald {
namespace {

Result<std::unique_ptr<std::string>> Make(bool ok) {
  if (!ok) return NotFound("no such thing");
  return std::make_unique<std::string>("thing");
}

// Declares the value (moved out of the Result) or returns the error.
Result<std::size_t> LengthOf(bool ok) {
  HERALD_ASSIGN_OR_RETURN(std::unique_ptr<std::string> made, Make(ok));
  return made->size();
}

Status TwoInOneScope(bool first, bool second) {
  HERALD_ASSIGN_OR_RETURN(auto a, Make(first));
  HERALD_ASSIGN_OR_RETURN(auto b, Make(second));
  return *a == *b ? Status::Ok() : Internal("different");
}

TEST(StatusTest, AssignOrReturnDeclaresTheValueOrReturnsTheError) {
  Result<std::size_t> length = LengthOf(true);
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(*length, 5u);
  Result<std::size_t> missing = LengthOf(false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "no such thing");
  EXPECT_TRUE(TwoInOneScope(true, true).ok());
  EXPECT_EQ(TwoInOneScope(true, false).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace herald
