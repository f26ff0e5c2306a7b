// The plain-text alternative of an HTML body, for tasks that give only HTML: mail clients that
// show text, screen readers and spam filters all prefer a message with both (RFC 2046 §5.1.4,
// multipart/alternative). The HTML is parsed with libxml2's HTML parser (as lenient as browsers:
// unclosed tags, stray entities) and its tree written as text:
// - paragraphs, headings, block quotes, lists and tables are separated by blank lines; <br> and
//   <div> break lines; list items start with "- " or "1. ", nested ones indented by two spaces;
//   block quotes start each line with "> "; a table row is one line, its cells joined by " | "
//   (a cell holding paragraphs gets lines of its own); <hr> is a line of dashes; <pre> keeps its
//   lines and spaces;
// - a link is its text followed by its address in parentheses, "Unsubscribe
//   (https://example.com/u?id=7)"; the address alone when it is the text already or there is no
//   text (an image without alt text); "#" anchors and javascript: links are left out;
// - an image is its alt text; script, style, the head (title, meta), templates, SVG, frames and
//   elements hidden with style="display: none" or `hidden` (preview-text tricks) are left out;
// - entities are decoded, runs of white space (and no-break spaces) collapse to one space, no
//   line ends with a blank; the text ends with one line break.
// Lines are not wrapped: a long link stays whole, and clients wrap what they display.
//
// Thread-safe; libxml2 is initialised once on first use.
#pragma once

#include <string>
#include <string_view>

namespace herald::mime_internal {

// `html` must be UTF-8 (its own <meta> charset is ignored). Characters of Unicode's private use
// planes are kept as text wherever they stand in text, in alt text or in a link's address.
std::string HtmlToText(std::string_view html);

}  // namespace herald::mime_internal
