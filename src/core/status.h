// Status and Result<T>: errors as values on the delivery path (see STYLE.md, "Errors").
//
// A Status is either ok or carries a code and a human-readable message that names what failed
// (file, line, field, recipient) and what was expected. Result<T> holds a T or a non-ok Status.
// Both are cheap to move and safe to use from any thread (they are plain values).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace herald {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // the input is malformed (config, CSV, template, address)
  kNotFound,            // a named thing (file, task, account, column) does not exist
  kAlreadyExists,
  kFailedPrecondition,  // the system is not in a state to do this (e.g. store from a newer version)
  kResourceExhausted,   // disk full, quota reached, size limit exceeded
  kUnavailable,         // temporary: try again later (network, locked store)
  kPermissionDenied,
  kCancelled,
  kIo,                  // an operating-system I/O error
  kInternal,            // a broken invariant of herald itself
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>", for adding where an error happened.
  Status WithContext(std::string_view context) const;

  // "<code name>: <message>", or "ok".
  std::string ToString() const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status NotFound(std::string message) { return Status(StatusCode::kNotFound, std::move(message)); }
inline Status IoError(std::string message) { return Status(StatusCode::kIo, std::move(message)); }
inline Status Internal(std::string message) { return Status(StatusCode::kInternal, std::move(message)); }

// Holds either a value or an error Status (never an ok Status).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : data_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(data_).ok() && "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  // Precondition for value(), operator* and operator->: ok().
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error, or an ok Status when a value is held.
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }

 private:
  std::variant<T, Status> data_;
};

}  // namespace herald

// Evaluates `expr` (a Status); returns it from the enclosing function when it is not ok.
#define HERALD_RETURN_IF_ERROR(expr)         \
  do {                                       \
    ::herald::Status herald_status_ = (expr); \
    if (!herald_status_.ok()) return herald_status_; \
  } while (false)

// Evaluates `expr` (a Result<T>); returns its error from the enclosing function when it has one,
// else declares `lhs` with the value moved out of it:
//   HERALD_ASSIGN_OR_RETURN(TaskConfig task, LoadTask(path));
//   HERALD_ASSIGN_OR_RETURN(auto accounts, LoadAccounts(task.accounts_file));
// HERALD_CO_ASSIGN_OR_RETURN is the same for coroutines (co_return).
#define HERALD_ASSIGN_OR_RETURN(lhs, expr) \
  HERALD_ASSIGN_OR_RETURN_IMPL(HERALD_CONCAT_(herald_result_, __LINE__), lhs, expr, return)
#define HERALD_CO_ASSIGN_OR_RETURN(lhs, expr) \
  HERALD_ASSIGN_OR_RETURN_IMPL(HERALD_CONCAT_(herald_result_, __LINE__), lhs, expr, co_return)
#define HERALD_ASSIGN_OR_RETURN_IMPL(result, lhs, expr, return_keyword) \
  auto result = (expr);                                                 \
  if (!result.ok()) return_keyword result.status();                     \
  lhs = std::move(*result)
#define HERALD_CONCAT_(a, b) HERALD_CONCAT_INNER_(a, b)
#define HERALD_CONCAT_INNER_(a, b) a##b
