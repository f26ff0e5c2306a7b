#include "merge/template.h"

#include <fmt/format.h>

#include "core/text.h"

namespace herald {
namespace {

constexpr std::string_view kOpen = "{%";
constexpr std::string_view kClose = "%}";

// "origin:line:column" of byte `offset` in `text` (1-based; columns count bytes).
std::string Position(std::string_view origin, std::string_view text, std::size_t offset) {
  std::size_t line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return fmt::format("{}:{}:{}", origin, line, offset - line_start + 1);
}

}  // namespace

Result<Template> Template::Compile(std::string_view text, const FieldSet& fields, std::string_view origin) {
  Template compiled;
  std::size_t pos = 0;
  while (true) {
    std::size_t open = text.find(kOpen, pos);
    if (open == std::string_view::npos) break;
    std::size_t close = text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) {
      return InvalidArgument(fmt::format("{}: \"{{%\" is not closed; expected a placeholder like {{%firstname%}}",
                                         Position(origin, text, open)));
    }
    std::string_view inner = text.substr(open + kOpen.size(), close - open - kOpen.size());
    std::string_view name = inner;
    std::string_view default_value;
    if (std::size_t bar = inner.find('|'); bar != std::string_view::npos) {
      name = inner.substr(0, bar);
      default_value = inner.substr(bar + 1);
    }
    name = TrimBlanks(name);
    if (name.empty()) {
      return InvalidArgument(fmt::format("{}: empty placeholder name; expected one of: {}",
                                         Position(origin, text, open), fields.Describe()));
    }
    if (HasLineBreakOrNul(name)) {
      return InvalidArgument(fmt::format("{}: placeholder name runs over a line break; expected \"%}}\" on the same line",
                                         Position(origin, text, open)));
    }
    std::optional<std::size_t> field = fields.Find(name);
    if (!field) {
      return InvalidArgument(fmt::format("{}: unknown placeholder {{%{}%}}; the recipient list provides: {}",
                                         Position(origin, text, open), Printable(name), fields.Describe()));
    }
    compiled.segments_.push_back(
        Segment{std::string(text.substr(pos, open - pos)), *field, std::string(default_value)});
    pos = close + kClose.size();
  }
  compiled.segments_.push_back(Segment{std::string(text.substr(pos)), kNoField, {}});
  return compiled;
}

Template Template::FromSegments(std::vector<Segment> segments) {
  Template made;
  made.segments_ = std::move(segments);
  return made;
}

void Template::Render(FieldValues values, Escaping escaping, std::string& out) const {
  for (const Segment& segment : segments_) {
    out += segment.literal;
    if (segment.field == kNoField) continue;
    std::string_view value = values[segment.field];
    if (value.empty()) value = segment.default_value;
    if (escaping == Escaping::kHtml) {
      AppendHtmlEscaped(value, out);
    } else {
      out += value;
    }
  }
}

bool Template::UsesField(std::size_t field) const {
  for (const Segment& segment : segments_) {
    if (segment.field == field) return true;
  }
  return false;
}

void AppendHtmlEscaped(std::string_view text, std::string& out) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string_view entity;
    switch (text[i]) {
      case '&': entity = "&amp;"; break;
      case '<': entity = "&lt;"; break;
      case '>': entity = "&gt;"; break;
      case '"': entity = "&quot;"; break;
      case '\'': entity = "&#39;"; break;
      default: continue;
    }
    out.append(text, start, i - start);
    out += entity;
    start = i + 1;
  }
  out.append(text, start, text.size() - start);
}

}  // namespace herald
