#include "merge/field_set.h"

#include "core/text.h"

namespace herald {

FieldSet::FieldSet(std::vector<std::string> columns) : names_(std::move(columns)), column_count_(names_.size()) {
  names_.emplace_back(kTaskTitle);
  names_.emplace_back(kSubject);
  names_.emplace_back(kRecipient);
}

std::optional<std::size_t> FieldSet::Find(std::string_view name) const {
  for (std::size_t i = column_count_; i < names_.size(); ++i) {
    if (EqualsIgnoreCase(names_[i], name)) return i;
  }
  for (std::size_t i = 0; i < column_count_; ++i) {
    if (EqualsIgnoreCase(names_[i], name)) return i;
  }
  return std::nullopt;
}

std::vector<std::string> FieldSet::shadowed_columns() const {
  std::vector<std::string> shadowed;
  for (std::size_t i = 0; i < column_count_; ++i) {
    if (Find(names_[i]) != i) shadowed.push_back(names_[i]);
  }
  return shadowed;
}

std::string FieldSet::Describe() const {
  std::string out;
  for (const std::string& name : names_) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace herald
