#include "mime/internal/html_to_text.h"

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <mutex>
#include <vector>

#include "core/text.h"

namespace herald::mime_internal {
namespace {

std::string_view Name(const xmlNode* node) { return reinterpret_cast<const char*>(node->name); }

bool Is(const xmlNode* node, std::string_view name) { return node->name != nullptr && Name(node) == name; }

bool IsAnyOf(const xmlNode* node, std::initializer_list<std::string_view> names) {
  return node->name != nullptr && std::find(names.begin(), names.end(), Name(node)) != names.end();
}

// An attribute's value (entities decoded by the parser), or empty.
std::string Attribute(const xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return {};
  std::string text(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return text;
}

// HTML's white space (WHATWG "ASCII whitespace"); a no-break space (U+00A0, C2 A0) collapses too:
// in plain text it only makes spacer cells and indentation tricks of email layouts show.
std::size_t WhiteSpaceAt(std::string_view text, std::size_t i) {
  const char c = text[i];
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') return 1;
  if (c == '\xC2' && i + 1 < text.size() && text[i + 1] == '\xA0') return 2;
  return 0;
}

bool IsHidden(const xmlNode* node) {
  if (xmlHasProp(node, reinterpret_cast<const xmlChar*>("hidden")) != nullptr) return true;
  std::string style = Attribute(node, "style");
  style.erase(std::remove_if(style.begin(), style.end(), [](char c) { return c == ' ' || c == '\t'; }),
              style.end());
  return AsciiLowercase(style).find("display:none") != std::string::npos;
}

// Writes text line by line: line breaks and blank lines are requested and written only before
// the next text, so no element adds breaks at the start or the end, and several requests merge.
class TextWriter {
 public:
  // At least `lines` line ends between what was written and what comes next (2: a blank line).
  void Break(int lines) {
    if (out_.empty()) return;
    pending_breaks_ = std::max(pending_breaks_, lines);
    break_depth_ = std::min(break_depth_, prefixes_.size());
  }
  // One more line end (<br>), whatever was requested before.
  void LineBreak() {
    if (out_.empty()) return;
    ++pending_breaks_;
    break_depth_ = std::min(break_depth_, prefixes_.size());
  }
  // Between two table cells on one line; dropped when a line break comes first.
  void CellSeparator() {
    if (!at_line_start_ && pending_breaks_ == 0) separator_ = " | ";
  }

  // Text whose runs of white space collapse to one space.
  void Text(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
      if (std::size_t space = WhiteSpaceAt(text, i); space > 0) {
        space_ = true;
        i += space;
        continue;
      }
      std::size_t end = i;
      while (end < text.size() && WhiteSpaceAt(text, end) == 0) ++end;
      Word(text.substr(i, end - i));
      i = end;
    }
  }
  // Text kept as it is, line by line (<pre>).
  void Preformatted(std::string_view text) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = std::min(text.find('\n', start), text.size());
      std::string_view line = text.substr(start, end - start);
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (!line.empty()) Word(line);
      if (end == text.size()) break;
      LineBreak();
      start = end + 1;
    }
  }
  // A word that stands apart from the text before it.
  void Separate(std::string_view word) {
    space_ = true;
    Word(word);
  }

  // Lines begin with the prefixes of the enclosing blocks ("> ", list indentation). The next line
  // begins with `first_line` instead of the innermost prefix (a list item's "- ").
  void PushPrefix(std::string prefix, std::string first_line = {}) {
    prefixes_.push_back(std::move(prefix));
    marker_ = std::move(first_line);
  }
  void PopPrefix() {
    prefixes_.pop_back();
    marker_.clear();
  }

  std::size_t size() const { return out_.size(); }
  std::string_view WrittenSince(std::size_t offset) const { return std::string_view(out_).substr(offset); }

  std::string Finish() {
    if (!out_.empty()) out_ += '\n';
    return std::move(out_);
  }

 private:
  void Word(std::string_view word) {
    if (pending_breaks_ > 0) {
      for (int i = 0; i < pending_breaks_; ++i) {
        if (i > 0) AppendPrefixes(/*blank_line=*/true);
        out_ += '\n';
      }
      pending_breaks_ = 0;
      break_depth_ = SIZE_MAX;
      at_line_start_ = true;
    }
    if (at_line_start_) {
      AppendPrefixes(/*blank_line=*/false);
      at_line_start_ = false;
    } else if (!separator_.empty()) {
      out_ += separator_;
    } else if (space_) {
      out_ += ' ';
    }
    separator_.clear();
    space_ = false;
    out_.append(word);
  }

  // A blank line gets the prefixes of the blocks around the break: none between a paragraph and a
  // quote that follows it, "> " (trimmed) between two paragraphs of the quote.
  void AppendPrefixes(bool blank_line) {
    std::string prefix;
    const std::size_t depth = blank_line ? std::min(break_depth_, prefixes_.size()) : prefixes_.size();
    for (std::size_t i = 0; i < depth; ++i) {
      prefix += (i + 1 == prefixes_.size() && !marker_.empty() && !blank_line) ? marker_ : prefixes_[i];
    }
    if (!blank_line) marker_.clear();
    // A blank line inside a quote keeps its ">", without the blank after it.
    while (blank_line && !prefix.empty() && prefix.back() == ' ') prefix.pop_back();
    out_ += prefix;
  }

  std::string out_;
  int pending_breaks_ = 0;
  std::size_t break_depth_ = SIZE_MAX;  // the fewest prefixes while the pending breaks were asked for
  bool at_line_start_ = true;
  bool space_ = false;
  std::string separator_;
  std::vector<std::string> prefixes_;
  std::string marker_;
};

// The address a link shows in the text, or empty for links that are no address to a reader.
std::string LinkTarget(const xmlNode* link) {
  std::string href(TrimBlanks(Attribute(link, "href")));
  while (!href.empty() && (href.back() == '\n' || href.back() == '\r')) href.pop_back();
  if (href.empty() || href.front() == '#') return {};
  if (href.size() >= 11 && EqualsIgnoreCase(std::string_view(href).substr(0, 11), "javascript:")) return {};
  return href;
}

class Converter {
 public:
  std::string Convert(const xmlDoc* document) {
    for (const xmlNode* node = document->children; node != nullptr; node = node->next) Node(node);
    return writer_.Finish();
  }

 private:
  void Children(const xmlNode* parent) {
    for (const xmlNode* child = parent->children; child != nullptr; child = child->next) Node(child);
  }

  void Node(const xmlNode* node) {
    switch (node->type) {
      case XML_TEXT_NODE:
      case XML_CDATA_SECTION_NODE: {
        const char* text = reinterpret_cast<const char*>(node->content);
        if (text == nullptr) return;
        if (preformatted_ > 0) {
          writer_.Preformatted(text);
        } else {
          writer_.Text(text);
        }
        return;
      }
      case XML_ELEMENT_NODE:
        Element(node);
        return;
      default:  // comments, processing instructions, the doctype
        return;
    }
  }

  void Element(const xmlNode* node) {
    if (IsAnyOf(node, {"script", "style", "head", "title", "template", "svg", "math", "iframe", "object", "embed",
                       "select", "audio", "video", "canvas", "map"}) ||
        IsHidden(node)) {
      return;
    }
    if (Is(node, "br")) {
      writer_.LineBreak();
      return;
    }
    if (Is(node, "img")) {
      writer_.Text(Attribute(node, "alt"));
      return;
    }
    if (Is(node, "hr")) {
      writer_.Break(2);
      writer_.Text("--------------------");
      writer_.Break(2);
      return;
    }
    if (Is(node, "a")) {
      Link(node);
      return;
    }
    if (Is(node, "ul") || Is(node, "ol")) {
      List(node);
      return;
    }
    if (Is(node, "li")) {  // outside a list
      ListItem(node, "- ");
      return;
    }
    if (Is(node, "tr")) {
      writer_.Break(1);
      bool first = true;
      for (const xmlNode* cell = node->children; cell != nullptr; cell = cell->next) {
        if (cell->type == XML_ELEMENT_NODE && (Is(cell, "td") || Is(cell, "th"))) {
          if (!first) writer_.CellSeparator();
          first = false;
        }
        Node(cell);
      }
      writer_.Break(1);
      return;
    }
    if (Is(node, "blockquote")) {
      writer_.Break(2);
      writer_.PushPrefix("> ");
      Children(node);
      writer_.PopPrefix();
      writer_.Break(2);
      return;
    }
    if (Is(node, "pre")) {
      writer_.Break(2);
      ++preformatted_;
      Children(node);
      --preformatted_;
      writer_.Break(2);
      return;
    }
    const int breaks = IsAnyOf(node, {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "dl"}) ? 2
                       : IsAnyOf(node, {"div", "section", "article", "header", "footer", "nav", "aside", "main",
                                        "address", "figure", "figcaption", "center", "form", "fieldset", "legend",
                                        "caption", "dt", "dd", "tbody", "thead", "tfoot", "details", "summary"})
                           ? 1
                           : 0;
    writer_.Break(breaks);
    Children(node);
    writer_.Break(breaks);
  }

  void Link(const xmlNode* node) {
    const std::size_t start = writer_.size();
    Children(node);
    const std::string target = LinkTarget(node);
    if (target.empty()) return;
    std::string_view text = TrimBlanks(writer_.WrittenSince(start));
    std::string_view bare = target;
    if (bare.size() > 7 && EqualsIgnoreCase(bare.substr(0, 7), "mailto:")) bare.remove_prefix(7);
    if (text.empty()) {
      writer_.Separate(target);
    } else if (text != target && text != bare) {
      writer_.Separate("(" + std::string(bare) + ")");
    }
  }

  void List(const xmlNode* node) {
    writer_.Break(list_depth_ == 0 ? 2 : 1);
    ++list_depth_;
    const bool ordered = Is(node, "ol");
    long number = 1;
    if (ordered) {
      const std::string start = Attribute(node, "start");
      char* end = nullptr;
      const long given = std::strtol(start.c_str(), &end, 10);
      if (!start.empty() && end != nullptr && *end == '\0' && given > -1000000 && given < 1000000) number = given;
    }
    for (const xmlNode* child = node->children; child != nullptr; child = child->next) {
      if (child->type == XML_ELEMENT_NODE && Is(child, "li")) {
        ListItem(child, ordered ? std::to_string(number++) + ". " : "- ");
      } else {
        Node(child);
      }
    }
    --list_depth_;
    writer_.Break(list_depth_ == 0 ? 2 : 1);
  }

  void ListItem(const xmlNode* node, std::string marker) {
    writer_.Break(1);
    std::string indent(marker.size(), ' ');
    writer_.PushPrefix(std::move(indent), std::move(marker));
    Children(node);
    writer_.PopPrefix();
    writer_.Break(1);
  }

  TextWriter writer_;
  int preformatted_ = 0;
  int list_depth_ = 0;
};

}  // namespace

std::string HtmlToText(std::string_view html) {
  static std::once_flag initialised;
  std::call_once(initialised, [] { xmlInitParser(); });
  if (html.empty() || html.size() > INT_MAX) return {};
  // No network, no error output, the text taken as UTF-8 whatever its <meta> says.
  const int options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                      HTML_PARSE_IGNORE_ENC | XML_PARSE_HUGE;
  htmlDocPtr document = htmlReadMemory(html.data(), static_cast<int>(html.size()), nullptr, "UTF-8", options);
  if (document == nullptr) return {};
  Converter converter;
  std::string text = converter.Convert(document);
  xmlFreeDoc(document);
  return text;
}

}  // namespace herald::mime_internal
