// The bytes of a message as they go on the wire after DATA: line ends normalised to CRLF
// (RFC 5321 §2.3.8), lines starting with '.' given a second '.' (§4.5.2, transparency), the data
// ended with CRLF and the end-of-data line ".\r\n" (§4.1.1.4).
//
// Every bare CR and every bare LF becomes CRLF, so that no "<LF>.<LF>", "<CR>.<CR>" or
// "<LF>.<CR><LF>" from a message can be taken for the end of data by a server that accepts sloppy
// line ends: the SMTP smuggling class of CVE-2023-51764/51765/51766. The only "<CRLF>.<CRLF>" in
// the output is the end marker.
//
// Zero copy: a message is a list of pieces (MessageData), some of them large and shared (the base64
// of an attachment). A piece that needs no change — checked at memchr speed — is referred to, not
// copied; a long piece with a few changes is referred to in runs with the few inserted octets in
// between; small pieces and pieces with many changes are rewritten into the WireData's own buffer.
// The result is a list of segments for one gather write.
//
// Threading: a DotStuffer and a WireData belong to one session; the message pieces they refer to
// are only read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mime/message_data.h"

namespace herald::smtp {

// The DATA section of one message, ready for a gather write. Segments point either into the
// message's pieces (which must stay alive and unchanged while the WireData is used: keep the
// shared_ptr<const MessageData> next to it) or into the WireData's own buffer.
class WireData {
 public:
  // Octets on the wire: the dot-stuffed data and the end marker.
  std::size_t size() const { return size_; }
  // The message size for MAIL FROM's SIZE= parameter (RFC 1870 §3: "the number of octets,
  // including CR-LF pairs, but not counting the SMTP DATA command's terminating dot or doubled
  // quoting dots"): the data after line-end normalisation, with its final CRLF.
  std::size_t message_size() const { return message_size_; }
  // Octets that were copied into the WireData's own buffer (the rest is referred to).
  std::size_t copied_size() const { return owned_.size(); }

  std::size_t segment_count() const { return segments_.size(); }

  // Calls f(std::string_view) for each segment in order; no segment is empty.
  template <typename F>
  void ForEachSegment(F&& f) const {
    for (const Segment& s : segments_) f(View(s));
  }
  std::vector<std::string_view> Segments() const;

  // One contiguous copy (for tests and logs of small messages).
  std::string ToString() const;

 private:
  friend class DotStuffer;
  struct Segment {
    const char* external;  // nullptr: a range of owned_
    std::size_t offset;    // into owned_ when external is nullptr
    std::size_t size;
  };
  std::string_view View(const Segment& s) const {
    return s.external != nullptr ? std::string_view(s.external, s.size)
                                 : std::string_view(owned_).substr(s.offset, s.size);
  }
  void Clear();

  std::vector<Segment> segments_;
  std::string owned_;
  std::size_t size_ = 0;
  std::size_t message_size_ = 0;
};

struct DotStuffOptions {
  // Pieces shorter than this are copied (fewer, larger segments for the gather write); longer ones
  // are referred to in runs, unless their changes are so dense that runs would be shorter than
  // this on average — then they are copied too.
  std::size_t min_reference_run = 1024;
};

// Builds a WireData from pieces given one after another. A CR at the end of one piece and an LF at
// the start of the next are one CRLF; a '.' at the start of a piece is at the start of a line when
// the previous piece ended one.
class DotStuffer {
 public:
  // `storage`: a WireData whose buffers are reused (its content is discarded).
  explicit DotStuffer(DotStuffOptions options = {}, WireData storage = {});

  // Adds the next piece. Its bytes must outlive the WireData returned by Finish().
  void Add(std::string_view piece);

  // Ends the data (CRLF if the last line has none, then ".\r\n") and returns it. An empty message
  // becomes ".\r\n" alone. The DotStuffer must not be used afterwards.
  WireData Finish();

  enum class LineState : std::uint8_t {
    kLineStart,  // at the start of the data or right after a CRLF
    kAfterCr,    // the last octet was a CR: an LF may follow in the next piece
    kMidLine,
  };

 private:
  void AppendOwned(std::string_view bytes);
  void AppendExternal(const char* data, std::size_t size);

  DotStuffOptions options_;
  WireData out_;
  LineState state_ = LineState::kLineStart;
  std::size_t input_size_ = 0;
  std::size_t inserted_line_ends_ = 0;  // CR and LF octets added by normalisation
  std::size_t inserted_dots_ = 0;
};

// The WireData of a whole message. It refers to `message`'s pieces.
WireData DotStuff(const MessageData& message, DotStuffOptions options = {});
// Refused: the WireData would refer to a message that is gone at the end of the statement.
WireData DotStuff(MessageData&& message, DotStuffOptions options = {}) = delete;

}  // namespace herald::smtp
