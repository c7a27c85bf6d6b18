// gtest assertions for absl::Status and absl::StatusOr:
//   ASSERT_OK(expr); EXPECT_OK(expr);           expr is a Status or a StatusOr
//   ASSERT_OK_AND_ASSIGN(auto value, expr);     asserts OK and moves the value into `value`
// A failure prints the status (code and message).
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace ickpt::testing::internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

inline ::testing::AssertionResult IsOk(const char* expr, const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " returned " << status.ToString();
}

}  // namespace ickpt::testing::internal

#define ICKPT_STATUS_CONCAT_INNER(a, b) a##b
#define ICKPT_STATUS_CONCAT(a, b) ICKPT_STATUS_CONCAT_INNER(a, b)

#define ASSERT_OK(expr) \
  ASSERT_PRED_FORMAT1(::ickpt::testing::internal::IsOk, ::ickpt::testing::internal::GetStatus(expr))
#define EXPECT_OK(expr) \
  EXPECT_PRED_FORMAT1(::ickpt::testing::internal::IsOk, ::ickpt::testing::internal::GetStatus(expr))

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ICKPT_ASSERT_OK_AND_ASSIGN_IMPL(ICKPT_STATUS_CONCAT(status_or_value_, __LINE__), lhs, expr)
#define ICKPT_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, expr)                \
  auto statusor = (expr);                                                   \
  ASSERT_PRED_FORMAT1(::ickpt::testing::internal::IsOk, statusor.status()); \
  lhs = std::move(statusor).value()
