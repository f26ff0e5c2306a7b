// Templates: text with `{%name%}` placeholders, compiled once per sending task and rendered once
// per recipient. `{%name|default%}` renders `default` when the value is empty. Whitespace inside
// the braces around the name is ignored (`{% firstname %}`); the default is taken as written.
// A placeholder whose name is not in the FieldSet is a compile error naming the template, line and
// column and listing the names available, so a typo stops the task before anything is sent.
//
// A compiled Template is immutable and may be rendered from any number of threads at once.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "merge/field_set.h"

namespace herald {

enum class Escaping {
  kNone,  // values inserted as they are (plain text, headers: the header writer checks them)
  kHtml,  // values and defaults HTML-escaped: & < > " ' become entities
};

class Template {
 public:
  static constexpr std::size_t kNoField = std::numeric_limits<std::size_t>::max();

  // The template as literal text alternating with placeholders. The last segment has
  // field == kNoField and holds the trailing literal (possibly empty).
  struct Segment {
    std::string literal;        // text before the placeholder, unescaped, as written
    std::size_t field = kNoField;
    std::string default_value;  // rendered when the field's value is empty
  };

  // Compiles `text`. `origin` names the template in errors ("subject", "body.html").
  // Errors: unclosed "{%", empty name, unknown name — each with "origin:line:column".
  static Result<Template> Compile(std::string_view text, const FieldSet& fields, std::string_view origin);
  // A template made from another one's segments (the text body derived from an HTML body), whose
  // literals are not parsed for placeholders again. Precondition: the last segment has
  // field == kNoField, and every field is one of the FieldSet the template is rendered with.
  static Template FromSegments(std::vector<Segment> segments);

  // Appends the rendered text to `out`. Precondition: values.size() == the FieldSet's size().
  void Render(FieldValues values, Escaping escaping, std::string& out) const;

  const std::vector<Segment>& segments() const { return segments_; }
  bool UsesField(std::size_t field) const;
  bool IsConstant() const { return segments_.size() == 1; }

 private:
  std::vector<Segment> segments_;
};

// Appends `text` to `out` with & < > " ' replaced by HTML entities.
void AppendHtmlEscaped(std::string_view text, std::string& out);

}  // namespace herald
