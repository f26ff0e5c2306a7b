#include "smtp/dot_stuffer.h"

#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace herald::smtp {
namespace {

using LineState = DotStuffer::LineState;

// The first CR or LF in [p, end), or end. SSE2 compares 16 octets at a time for both.
inline const char* FindCrOrLf(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 32) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const int mask_a = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(a, lf)));
    const int mask_b = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(b, cr), _mm_cmpeq_epi8(b, lf)));
    if ((mask_a | mask_b) != 0) {
      return mask_a != 0 ? p + __builtin_ctz(static_cast<unsigned>(mask_a))
                         : p + 16 + __builtin_ctz(static_cast<unsigned>(mask_b));
    }
    p += 32;
  }
  if (end - p >= 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(a, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

// Walks one piece from line state `state` and calls insert(position, octet) for every octet the
// wire form needs before `position`: '\n' after a bare CR, '\r' before a bare LF, '.' before a '.'
// that starts a line (RFC 5321 §4.5.2). Positions never decrease. Returns the state at the end.
template <typename Insert>
inline LineState Scan(const char* p, const char* end, LineState state, Insert&& insert) {
  if (p == end) return state;
  if (state == LineState::kAfterCr) {
    if (*p == '\n') {
      ++p;  // completes the CRLF begun in the previous piece
    } else {
      insert(p, '\n');  // that CR was bare
    }
    state = LineState::kLineStart;
    if (p == end) return state;
  }
  if (state == LineState::kLineStart && *p == '.') insert(p, '.');
  for (;;) {
    const char* q = FindCrOrLf(p, end);
    if (q == end) return LineState::kMidLine;
    if (*q == '\r') {
      if (q + 1 == end) return LineState::kAfterCr;
      if (q[1] == '\n') {
        p = q + 2;
      } else {
        insert(q + 1, '\n');
        p = q + 1;
      }
    } else {
      insert(q, '\r');  // a bare LF: every CRLF was consumed whole above
      p = q + 1;
    }
    if (p == end) return LineState::kLineStart;
    if (*p == '.') insert(p, '.');
  }
}

}  // namespace

void WireData::Clear() {
  segments_.clear();
  owned_.clear();
  size_ = 0;
  message_size_ = 0;
}

std::vector<std::string_view> WireData::Segments() const {
  std::vector<std::string_view> out;
  out.reserve(segments_.size());
  ForEachSegment([&](std::string_view s) { out.push_back(s); });
  return out;
}

std::string WireData::ToString() const {
  std::string out;
  out.reserve(size_);
  ForEachSegment([&](std::string_view s) { out.append(s); });
  return out;
}

DotStuffer::DotStuffer(DotStuffOptions options, WireData storage) : options_(options), out_(std::move(storage)) {
  out_.Clear();
}

void DotStuffer::AppendOwned(std::string_view bytes) {
  if (bytes.empty()) return;
  std::vector<WireData::Segment>& segments = out_.segments_;
  if (!segments.empty() && segments.back().external == nullptr &&
      segments.back().offset + segments.back().size == out_.owned_.size()) {
    segments.back().size += bytes.size();
  } else {
    segments.push_back({nullptr, out_.owned_.size(), bytes.size()});
  }
  out_.owned_.append(bytes);
}

void DotStuffer::AppendExternal(const char* data, std::size_t size) {
  if (size == 0) return;
  out_.segments_.push_back({data, 0, size});
}

void DotStuffer::Add(std::string_view piece) {
  if (piece.empty()) return;
  const char* begin = piece.data();
  const char* end = begin + piece.size();
  std::size_t insertions = 0;
  std::size_t dots = 0;
  const LineState start_state = state_;
  state_ = Scan(begin, end, start_state, [&](const char*, char c) {
    ++insertions;
    dots += c == '.';
  });
  input_size_ += piece.size();
  inserted_line_ends_ += insertions - dots;
  inserted_dots_ += dots;

  if (insertions == 0 && piece.size() >= options_.min_reference_run) {
    AppendExternal(begin, piece.size());
    return;
  }
  const bool copy = piece.size() < options_.min_reference_run ||
                    piece.size() / (insertions + 1) < options_.min_reference_run;
  const char* run_start = begin;
  if (copy) {
    out_.owned_.reserve(out_.owned_.size() + piece.size() + insertions);
    Scan(begin, end, start_state, [&](const char* at, char c) {
      AppendOwned(std::string_view(run_start, static_cast<std::size_t>(at - run_start)));
      AppendOwned(std::string_view(&c, 1));
      run_start = at;
    });
    AppendOwned(std::string_view(run_start, static_cast<std::size_t>(end - run_start)));
  } else {
    // Runs too short to be worth a segment of their own (between two close changes) are copied.
    constexpr std::size_t kMinExternalRun = 64;
    auto append_run = [&](const char* from, const char* to) {
      const auto size = static_cast<std::size_t>(to - from);
      if (size < kMinExternalRun) {
        AppendOwned(std::string_view(from, size));
      } else {
        AppendExternal(from, size);
      }
    };
    Scan(begin, end, start_state, [&](const char* at, char c) {
      append_run(run_start, at);
      AppendOwned(std::string_view(&c, 1));
      run_start = at;
    });
    append_run(run_start, end);
  }
}

WireData DotStuffer::Finish() {
  // RFC 5321 §4.1.1.4: the data ends with CRLF, then the line ".".
  if (state_ == LineState::kAfterCr) {
    AppendOwned("\n");
    inserted_line_ends_ += 1;
  } else if (state_ == LineState::kMidLine) {
    AppendOwned("\r\n");
    inserted_line_ends_ += 2;
  }
  AppendOwned(".\r\n");
  out_.message_size_ = input_size_ + inserted_line_ends_;
  out_.size_ = out_.message_size_ + inserted_dots_ + 3;
  state_ = LineState::kLineStart;
  return std::move(out_);
}

WireData DotStuff(const MessageData& message, DotStuffOptions options) {
  DotStuffer stuffer(options);
  message.ForEachPiece([&](std::string_view piece) { stuffer.Add(piece); });
  return stuffer.Finish();
}

}  // namespace herald::smtp
