// The names a template may use for one sending task: the recipient list's columns (from the CSV
// header row) followed by the built-ins `task_title`, `subject` and `recipient`. Immutable after
// construction, thread-safe to share.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

// One value per field of a FieldSet, by index; a recipient's values for rendering.
using FieldValues = std::span<const std::string_view>;

class FieldSet {
 public:
  static constexpr std::string_view kTaskTitle = "task_title";
  static constexpr std::string_view kSubject = "subject";
  static constexpr std::string_view kRecipient = "recipient";

  // `columns` are the CSV header names in file order. A column named like a built-in is shadowed
  // by the built-in (see shadowed_columns()).
  explicit FieldSet(std::vector<std::string> columns);

  // The index of `name`, compared ASCII-case-insensitively; built-ins first, then columns.
  std::optional<std::size_t> Find(std::string_view name) const;

  std::size_t size() const { return names_.size(); }
  std::size_t column_count() const { return column_count_; }
  const std::string& name(std::size_t index) const { return names_[index]; }
  std::size_t task_title_index() const { return column_count_; }
  std::size_t subject_index() const { return column_count_ + 1; }
  std::size_t recipient_index() const { return column_count_ + 2; }

  // Columns whose names equal a built-in's and therefore cannot be used as placeholders.
  std::vector<std::string> shadowed_columns() const;

  // "email, firstname, lastname, task_title, subject, recipient" for error messages.
  std::string Describe() const;

 private:
  std::vector<std::string> names_;  // columns, then the three built-ins
  std::size_t column_count_;
};

}  // namespace herald
