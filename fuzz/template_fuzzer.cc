// Fuzz target: the template compiler and renderer (merge/template.h). The input gives the
// recipient list's column names and one recipient's values, then the template text (a subject,
// a body), all of which a user or a CSV file writes.
//
// Properties: herald's compiler and renderer agree with a small reference implementation written
// here from the documented syntax — `{%name%}`, `{%name|default%}`, blanks around the name
// ignored, names matched ignoring ASCII case with the built-ins first, an unclosed "{%", an empty
// or unknown name or one holding a line break is an error at "origin:line:column" of its "{%" —
// for plain and for HTML-escaped rendering.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "merge/field_set.h"
#include "merge/template.h"

namespace herald {
namespace {

using fuzz::Escaped;

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool SameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// The documented index of `name`: the built-ins (after the columns) win over columns.
std::optional<std::size_t> Lookup(const std::vector<std::string>& columns, std::string_view name) {
  const std::string_view builtins[] = {"task_title", "subject", "recipient"};
  for (std::size_t i = 0; i < 3; ++i) {
    if (SameName(builtins[i], name)) return columns.size() + i;
  }
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (SameName(columns[i], name)) return i;
  }
  return std::nullopt;
}

void Escape(std::string_view text, bool html, std::string& out) {
  for (char c : text) {
    if (!html) {
      out += c;
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
}

struct Reference {
  bool ok = true;
  std::string error_position;  // "origin:line:column" of the bad "{%"
  std::string plain;
  std::string html;
};

std::string Position(std::string_view text, std::size_t offset) {
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "body.txt:" + std::to_string(line) + ":" + std::to_string(column);
}

Reference Render(std::string_view text, const std::vector<std::string>& columns,
                 const std::vector<std::string>& values) {
  Reference ref;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t open = text.find("{%", pos);
    const std::string_view literal = text.substr(pos, open == std::string_view::npos ? text.npos : open - pos);
    // Literal text is never escaped: it is the template author's own HTML.
    ref.plain += literal;
    ref.html += literal;
    if (open == std::string_view::npos) return ref;
    const std::size_t close = text.find("%}", open + 2);
    std::optional<std::size_t> field;
    std::string_view inner;
    if (close != std::string_view::npos) {
      inner = text.substr(open + 2, close - open - 2);
      const std::string_view name = Trim(inner.substr(0, inner.find('|')));
      if (name.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos) {
        field = Lookup(columns, name);
      }
    }
    if (!field) {
      ref.ok = false;
      ref.error_position = Position(text, open);
      return ref;
    }
    const std::size_t bar = inner.find('|');
    std::string_view value = values[*field];
    if (value.empty() && bar != std::string_view::npos) value = inner.substr(bar + 1);
    Escape(value, false, ref.plain);
    Escape(value, true, ref.html);
    pos = close + 2;
  }
}

}  // namespace
}  // namespace herald

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  FuzzedDataProvider provider(data, size);
  // Columns as the CSV reader hands them over: trimmed, non-empty, one line, distinct.
  std::vector<std::string> columns;
  for (int n = provider.ConsumeIntegralInRange(0, 4); n > 0; --n) {
    std::string name(Trim(provider.ConsumeRandomLengthString(12)));
    bool usable = !name.empty() && name.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
    for (const std::string& other : columns) usable = usable && !SameName(other, name);
    if (usable) columns.push_back(std::move(name));
  }
  const FieldSet fields(columns);
  std::vector<std::string> values;
  for (std::size_t i = 0; i < fields.size(); ++i) values.push_back(provider.ConsumeRandomLengthString(8));
  const std::string text = provider.ConsumeRemainingBytesAsString();

  const Reference want = Render(text, columns, values);
  Result<Template> compiled = Template::Compile(text, fields, "body.txt");
  FUZZ_CHECK(compiled.ok() == want.ok, "compiled: " + std::string(compiled.ok() ? "ok" : compiled.status().message()) +
                                           "; the reference says " + (want.ok ? "ok" : "error") + " for " + Escaped(text));
  if (!compiled.ok()) {
    FUZZ_CHECK(compiled.status().message().starts_with(want.error_position + ": "),
               "the error does not start with " + want.error_position + ": " + compiled.status().message());
    return 0;
  }
  std::vector<std::string_view> views(values.begin(), values.end());
  std::string plain;
  compiled->Render(views, Escaping::kNone, plain);
  FUZZ_CHECK(plain == want.plain, "rendered " + Escaped(plain) + "\nexpected " + Escaped(want.plain));
  std::string html;
  compiled->Render(views, Escaping::kHtml, html);
  FUZZ_CHECK(html == want.html, "rendered as HTML " + Escaped(html) + "\nexpected " + Escaped(want.html));

  const std::vector<Template::Segment>& segments = compiled->segments();
  FUZZ_CHECK(!segments.empty() && segments.back().field == Template::kNoField, "the last segment is a placeholder");
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    FUZZ_CHECK(segments[i].field < fields.size(), "a segment's field is out of range");
    FUZZ_CHECK(compiled->UsesField(segments[i].field), "UsesField misses a used field");
  }
  FUZZ_CHECK(compiled->IsConstant() == (segments.size() == 1), "IsConstant is wrong");
  return 0;
}
