// Fuzz target: the dot-stuffer (smtp/dot_stuffer.h), which turns a message into the bytes sent
// after DATA. The input is a message (any bytes: a template, a CSV cell or an attachment may put
// anything into it), cut into pieces as a composed MessageData is, and the stuffer's options.
//
// Properties (RFC 5321 §2.3.8, §4.1.1.4, §4.5.2; the smuggling class of CVE-2023-51764):
// - The wire bytes hold no bare CR and no bare LF: every CR is followed by LF and every LF
//   preceded by CR.
// - The only line "." is the last one: the end-of-data marker cannot come early.
// - Every data line starting with '.' starts with "..", and removing one leading dot from such
//   lines gives back the message with its line ends normalised to CRLF and a final CRLF — checked
//   against a normaliser written here, not herald's.
// - The result depends neither on how the message is cut into pieces nor on the options (which
//   only choose between copying and referring to the input), and WireData::size(),
//   message_size() and the segments agree with the bytes.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "mime/message_data.h"
#include "smtp/dot_stuffer.h"

namespace herald::smtp {
namespace {

using fuzz::Escaped;

// RFC 5321 §2.3.8: CRLF, a bare CR and a bare LF each become CRLF; a last line without a line
// end gets one.
std::string NormaliseLineEnds(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (text[i] == '\n') {
      out += "\r\n";
    } else {
      out += text[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

// Checks the wire bytes and returns the message they carry (dots removed, end marker removed).
std::string CheckWireAndUnstuff(std::string_view wire) {
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '\r') FUZZ_CHECK(i + 1 < wire.size() && wire[i + 1] == '\n', "bare CR in " + Escaped(wire));
    if (wire[i] == '\n') FUZZ_CHECK(i > 0 && wire[i - 1] == '\r', "bare LF in " + Escaped(wire));
  }
  FUZZ_CHECK(wire.ends_with("\r\n") , "the wire data does not end with CRLF: " + Escaped(wire));
  std::string message;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t end = wire.find("\r\n", pos);
    FUZZ_CHECK(end != std::string_view::npos, "no end-of-data line in " + Escaped(wire));
    std::string_view line = wire.substr(pos, end - pos);
    pos = end + 2;
    if (line == ".") {
      FUZZ_CHECK(pos == wire.size(), "early end-of-data marker in " + Escaped(wire));
      return message;
    }
    if (line.starts_with(".")) {
      FUZZ_CHECK(line.starts_with(".."), "a line starting with '.' was not stuffed: " + Escaped(wire));
      line.remove_prefix(1);
    }
    message.append(line);
    message.append("\r\n");
  }
}

WireData Stuff(const std::vector<std::string_view>& pieces, std::size_t min_reference_run, WireData storage = {}) {
  DotStuffer stuffer(DotStuffOptions{.min_reference_run = min_reference_run}, std::move(storage));
  for (std::string_view piece : pieces) stuffer.Add(piece);
  return stuffer.Finish();
}

void CheckSegments(const WireData& wire, const std::string& bytes) {
  std::size_t total = 0;
  wire.ForEachSegment([&](std::string_view segment) {
    FUZZ_CHECK(!segment.empty(), "an empty segment");
    total += segment.size();
  });
  FUZZ_CHECK(total == bytes.size() && wire.size() == bytes.size(), "WireData::size() disagrees with the segments");
  FUZZ_CHECK(wire.copied_size() <= wire.size(), "more copied than written");
}

}  // namespace
}  // namespace herald::smtp

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald::smtp;
  using herald::MessageData;
  static constexpr std::size_t kRuns[] = {0, 1, 2, 3, 64, 1024};

  FuzzedDataProvider provider(data, size);
  const std::size_t run_a = provider.PickValueInArray(kRuns);
  const std::size_t run_b = provider.PickValueInArray(kRuns);
  // The message and where it is cut: each piece's length is taken from the input's end.
  const std::string message = provider.ConsumeRemainingBytesAsString();
  FuzzedDataProvider cuts(reinterpret_cast<const std::uint8_t*>(message.data()), message.size());
  std::vector<std::string_view> pieces;
  MessageData composed;
  std::vector<std::shared_ptr<const std::string>> shared;
  for (std::size_t pos = 0; pos < message.size();) {
    const std::size_t n = std::min<std::size_t>(message.size() - pos, 1 + cuts.ConsumeIntegralInRange<std::size_t>(0, 40));
    pieces.push_back(std::string_view(message).substr(pos, n));
    // Alternate owned and shared pieces, as the composer does (headers owned, attachments shared).
    if (pieces.size() % 2 == 0) {
      composed.AppendShared(std::make_shared<const std::string>(message.substr(pos, n)));
    } else {
      composed.Append(std::string_view(message).substr(pos, n));
    }
    pos += n;
  }

  const WireData whole = Stuff({message}, run_a);
  const std::string wire = whole.ToString();
  CheckSegments(whole, wire);
  const std::string carried = CheckWireAndUnstuff(wire);
  const std::string expected = NormaliseLineEnds(message);
  FUZZ_CHECK(carried == expected, "unstuffed " + Escaped(carried) + "\nexpected " + Escaped(expected));
  FUZZ_CHECK(whole.message_size() == expected.size(), "message_size() is not the normalised size");
  FUZZ_CHECK(!message.empty() || wire == ".\r\n", "an empty message is not \".\\r\\n\" alone");

  // The same message in pieces, with other options and the first result's buffers reused.
  const WireData in_pieces = Stuff(pieces, run_b, Stuff({message}, run_b));
  const std::string wire_in_pieces = in_pieces.ToString();
  CheckSegments(in_pieces, wire_in_pieces);
  FUZZ_CHECK(wire_in_pieces == wire, "the wire bytes depend on how the message is cut: " + Escaped(wire_in_pieces));
  FUZZ_CHECK(in_pieces.message_size() == whole.message_size(), "message_size() depends on the pieces");

  const WireData from_message = DotStuff(composed, DotStuffOptions{.min_reference_run = run_b});
  FUZZ_CHECK(from_message.ToString() == wire, "DotStuff(MessageData) differs from the stuffer fed directly");
  return 0;
}
