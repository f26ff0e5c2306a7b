#include "mime/internal/quoted_printable.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>

namespace herald::mime_internal {
namespace {

// Ordered: kLiteral and kBlank first (runs are bytes of class <= kBlank).
enum ByteClass : std::uint8_t { kLiteral, kBlank, kCr, kLf, kEscaped };

// RFC 2045 §6.7 rule (2): 33..60 and 62..126 may stand for themselves; '=' and everything else
// (controls, 8-bit bytes) are encoded.
constexpr std::array<std::uint8_t, 256> MakeClasses() {
  std::array<std::uint8_t, 256> classes{};
  for (int c = 0; c < 256; ++c) {
    classes[c] = (c >= 33 && c <= 126 && c != '=') ? kLiteral : kEscaped;
  }
  classes[' '] = kBlank;
  classes['\t'] = kBlank;
  classes['\r'] = kCr;
  classes['\n'] = kLf;
  return classes;
}
constexpr std::array<std::uint8_t, 256> kClasses = MakeClasses();

constexpr char kHex[] = "0123456789ABCDEF";

// A short literal is encoded at render time in full; pre-encoding pays off only for longer ones.
constexpr std::size_t kMaxDynamicHead = 160;
constexpr std::size_t kMinPreEncoded = 24;

bool IsLineStartSpecial(unsigned char c) { return c == '.' || c == 'F'; }

}  // namespace

void QpEncoder::SoftBreak() {
  out_->append("=\r\n", 3);
  column_ = 0;
}

void QpEncoder::Escape(unsigned char c) {
  if (column_ + 3 > kQpMaxContent) SoftBreak();
  char escaped[3] = {'=', kHex[c >> 4], kHex[c & 15]};
  out_->append(escaped, 3);
  column_ += 3;
}

void QpEncoder::EmitHeldBlank() {
  if (column_ + 1 > kQpMaxContent) SoftBreak();
  out_->push_back(held_blank_);
  ++column_;
  held_blank_ = 0;
}

void QpEncoder::HardBreak() {
  if (held_blank_ != 0) {
    Escape(static_cast<unsigned char>(held_blank_));  // rule (3): no blank before a line break
    held_blank_ = 0;
  }
  out_->append("\r\n", 2);
  column_ = 0;
}

void QpEncoder::Add(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  if (p == end) return;
  if (skip_lf_) {
    skip_lf_ = false;
    if (*p == '\n') ++p;
  }
  while (p < end) {
    const unsigned char c = *p;
    switch (kClasses[c]) {
      case kLiteral:
      case kBlank: {
        // A run of literal bytes and blanks is copied as it is, except a blank at its very end
        // that a line break or the end of the input follows: that one is held back (rule (3)).
        if (held_blank_ != 0) EmitHeldBlank();
        const unsigned char* run_end = p + 1;
        while (run_end < end && kClasses[*run_end] <= kBlank) ++run_end;
        const unsigned char* copy_end = run_end;
        if (kClasses[run_end[-1]] == kBlank && (run_end == end || kClasses[*run_end] != kEscaped)) --copy_end;
        while (p < copy_end) {
          if (column_ == kQpMaxContent) SoftBreak();
          if (column_ == 0 && IsLineStartSpecial(*p)) {
            Escape(*p++);
            continue;
          }
          std::size_t n = std::min<std::size_t>(copy_end - p, kQpMaxContent - column_);
          out_->append(reinterpret_cast<const char*>(p), n);
          column_ += n;
          p += n;
        }
        if (copy_end != run_end) {
          held_blank_ = static_cast<char>(*p);
          ++p;
        }
        break;
      }
      case kCr:
        HardBreak();
        ++p;
        if (p == end) {
          skip_lf_ = true;
        } else if (*p == '\n') {
          ++p;
        }
        break;
      case kLf:
        HardBreak();
        ++p;
        break;
      default:
        if (held_blank_ != 0) EmitHeldBlank();
        Escape(c);
        ++p;
        break;
    }
  }
}

void QpEncoder::AddLiteral(const QpLiteral& literal) {
  Add(literal.head);
  if (!literal.encoded.empty()) {
    // `encoded` begins with neither a line break nor an LF completing a CR (PrepareQpLiteral keeps
    // a leading break in `head`), so a held blank is followed by text: written as is.
    if (held_blank_ != 0) EmitHeldBlank();
    if (column_ != 0) SoftBreak();
    skip_lf_ = false;
    out_->append(literal.encoded);
    column_ = literal.end_column;
  }
  Add(literal.tail);
}

void QpEncoder::Finish() {
  if (held_blank_ != 0) {
    Escape(static_cast<unsigned char>(held_blank_));
    held_blank_ = 0;
  }
  skip_lf_ = false;
}

QpLiteral PrepareQpLiteral(std::string_view literal, bool starts_body) {
  QpLiteral prepared;
  std::size_t head_end = 0;
  if (!starts_body) {
    std::size_t line_break = literal.find_first_of("\r\n");
    if (line_break == std::string_view::npos) {
      head_end = literal.size() <= kMaxDynamicHead ? literal.size() : 0;
    } else if (line_break < kMaxDynamicHead) {
      head_end = line_break + 1;
      if (literal[line_break] == '\r' && head_end < literal.size() && literal[head_end] == '\n') ++head_end;
    }
  }
  std::size_t tail_begin = literal.size();
  while (tail_begin > head_end &&
         (literal[tail_begin - 1] == ' ' || literal[tail_begin - 1] == '\t' || literal[tail_begin - 1] == '\r')) {
    --tail_begin;
  }
  if (tail_begin - head_end < kMinPreEncoded) {
    prepared.head = std::string(literal);
    return prepared;
  }
  prepared.head = std::string(literal.substr(0, head_end));
  prepared.tail = std::string(literal.substr(tail_begin));
  QpEncoder encoder(prepared.encoded);
  encoder.Add(literal.substr(head_end, tail_begin - head_end));
  // The middle ends with neither a blank nor a CR: nothing is held back.
  assert(encoder.idle());
  prepared.end_column = encoder.column();
  return prepared;
}

}  // namespace herald::mime_internal
