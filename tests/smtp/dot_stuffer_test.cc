// DotStuffer: exact outputs for the tricky cases, and a property test over random and adversarial
// inputs split into random pieces — no bare CR or LF, exactly one end marker at the very end, and
// un-stuffing gives the input back with normalised line ends.
#include "smtp/dot_stuffer.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/text.h"

namespace herald::smtp {
namespace {

// A message whose pieces are exactly `pieces` (AppendShared keeps each one separate).
MessageData Pieces(const std::vector<std::string>& pieces) {
  MessageData message;
  for (const std::string& p : pieces) message.AppendShared(std::make_shared<const std::string>(p));
  return message;
}

std::string Join(const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += p;
  return out;
}

// The reference for line-end normalisation, written independently of the code under test: CRLF
// stays, a CR or LF alone becomes CRLF, and non-empty data ends with CRLF.
std::string NormaliseLineEnds(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += "\r\n";
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else if (in[i] == '\n') {
      out += "\r\n";
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

// The reference decoder, as a server reads the data (RFC 5321 §4.5.2): split at CRLF, stop at the
// line ".", remove the first '.' of every other line that starts with one. Sets `error` for
// anything a correct client could not have sent.
std::string Unstuff(std::string_view wire, std::string& error) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    std::size_t end = wire.find("\r\n", pos);
    if (end == std::string_view::npos) {
      error = "no end marker";
      return out;
    }
    std::string_view line = wire.substr(pos, end - pos);
    pos = end + 2;
    if (line == ".") {
      if (pos != wire.size()) error = "bytes after the end marker";
      return out;
    }
    if (line.starts_with(".")) {
      if (!line.starts_with("..")) error = "a line starts with a single '.'";
      line.remove_prefix(1);
    }
    out.append(line);
    out.append("\r\n");
  }
}

// Checks the properties of `wire` for `input`; returns a description of the first failure.
std::string CheckProperties(std::string_view input, const WireData& data) {
  const std::string wire = data.ToString();
  if (wire.size() != data.size()) return "size() is " + std::to_string(data.size()) + ", wire has " + std::to_string(wire.size());
  std::string joined;
  for (std::string_view s : data.Segments()) {
    if (s.empty()) return "an empty segment";
    joined.append(s);
  }
  if (joined != wire) return "Segments() differ from ToString()";
  // (a) no bare CR or LF.
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '\r' && (i + 1 == wire.size() || wire[i + 1] != '\n')) return "bare CR at " + std::to_string(i);
    if (wire[i] == '\n' && (i == 0 || wire[i - 1] != '\r')) return "bare LF at " + std::to_string(i);
  }
  // (b) the end marker exactly once, at the very end.
  const std::string normalised = NormaliseLineEnds(input);
  if (input.empty()) {
    if (wire != ".\r\n") return "empty input gave '" + Printable(wire) + "'";
  } else {
    const std::size_t marker = wire.find("\r\n.\r\n");
    if (marker == std::string::npos || marker + 5 != wire.size()) {
      return "end marker at " + (marker == std::string::npos ? std::string("nowhere") : std::to_string(marker)) +
             " in '" + Printable(wire, 200) + "'";
    }
  }
  // (c) un-stuffing gives the normalised input.
  std::string error;
  const std::string unstuffed = Unstuff(wire, error);
  if (!error.empty()) return error + " in '" + Printable(wire, 200) + "'";
  if (unstuffed != normalised) {
    return "un-stuffed '" + Printable(unstuffed, 200) + "', want '" + Printable(normalised, 200) + "'";
  }
  if (data.message_size() != normalised.size()) {
    return "message_size() " + std::to_string(data.message_size()) + ", want " + std::to_string(normalised.size());
  }
  return {};
}

const DotStuffOptions kModes[] = {
    DotStuffOptions{1},        // every piece referred to, changes as runs between insertions
    DotStuffOptions{8},        // mixed
    DotStuffOptions{1 << 30},  // everything copied
};

TEST(DotStufferTest, ExactOutputs) {
  struct Case {
    std::string name;
    std::vector<std::string> pieces;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"empty", {}, ".\r\n"},
      {"one line without line end", {"a"}, "a\r\n.\r\n"},
      {"one line", {"a\r\n"}, "a\r\n.\r\n"},
      {"line of one dot", {".\r\n"}, "..\r\n.\r\n"},
      {"dot without line end", {"."}, "..\r\n.\r\n"},
      {"two dots", {".."}, "...\r\n.\r\n"},
      {"dot after CRLF", {"a\r\n.b\r\n"}, "a\r\n..b\r\n.\r\n"},
      {"dot inside a line", {"a.b\r\n"}, "a.b\r\n.\r\n"},
      {"CRLF.CRLF in the body", {"a\r\n.\r\nb"}, "a\r\n..\r\nb\r\n.\r\n"},
      {"LF.LF smuggling", {"a\n.\nb"}, "a\r\n..\r\nb\r\n.\r\n"},
      {"CR.CR smuggling", {"a\r.\rb"}, "a\r\n..\r\nb\r\n.\r\n"},
      {"LF.CRLF smuggling", {"a\n.\r\nb"}, "a\r\n..\r\nb\r\n.\r\n"},
      {"CRLF.LF smuggling", {"a\r\n.\nb"}, "a\r\n..\r\nb\r\n.\r\n"},
      {"bare LF", {"a\nb\n"}, "a\r\nb\r\n.\r\n"},
      {"bare CR", {"a\rb\r"}, "a\r\nb\r\n.\r\n"},
      {"LF CR", {"a\n\rb"}, "a\r\n\r\nb\r\n.\r\n"},
      {"CR CR LF", {"a\r\r\nb"}, "a\r\n\r\nb\r\n.\r\n"},
      {"only CR", {"\r"}, "\r\n.\r\n"},
      {"only LF", {"\n"}, "\r\n.\r\n"},
      {"empty lines", {"\r\n\r\n"}, "\r\n\r\n.\r\n"},
      {"CRLF split across pieces", {"a\r", "\nb"}, "a\r\nb\r\n.\r\n"},
      {"CR then dot in next piece", {"a\r", ".b"}, "a\r\n..b\r\n.\r\n"},
      {"CR then CRLF", {"a\r", "\r\n"}, "a\r\n\r\n.\r\n"},
      {"CR at the very end", {"a", "\r"}, "a\r\n.\r\n"},
      {"dot at piece start after CRLF", {"a\r\n", ".b"}, "a\r\n..b\r\n.\r\n"},
      {"dot at piece start mid-line", {"a", ".b"}, "a.b\r\n.\r\n"},
      {"dot at piece start after LF", {"a\n", ".\n"}, "a\r\n..\r\n.\r\n"},
      {"dot at first piece start", {".", "\r\n"}, "..\r\n.\r\n"},
      {"CR LF dot across three pieces", {"a\r", "\n", "."}, "a\r\n..\r\n.\r\n"},
      {"empty pieces ignored", {"a\r", "", "\n", "", ".b"}, "a\r\n..b\r\n.\r\n"},
      {"headers and body", {"Subject: x\r\n\r\n", "Hello\r\n", ".signature\r\n"},
       "Subject: x\r\n\r\nHello\r\n..signature\r\n.\r\n"},
  };
  for (const Case& c : cases) {
    for (const DotStuffOptions& mode : kModes) {
      const MessageData message = Pieces(c.pieces);
      WireData data = DotStuff(message, mode);
      EXPECT_EQ(data.ToString(), c.want) << c.name << " (min_reference_run " << mode.min_reference_run << ")";
      EXPECT_EQ(CheckProperties(Join(c.pieces), data), "") << c.name;
    }
  }
}

TEST(DotStufferTest, SizeForMailFromExcludesStuffingAndEndMarker) {
  // RFC 1870 §3: CRLF pairs counted, the terminating dot and doubled dots not.
  const MessageData message = Pieces({"a\n", ".b\r\n", ".."});
  WireData data = DotStuff(message);
  EXPECT_EQ(data.ToString(), "a\r\n..b\r\n...\r\n.\r\n");
  EXPECT_EQ(data.message_size(), std::string("a\r\n.b\r\n..\r\n").size());
  EXPECT_EQ(data.size(), data.message_size() + 2 + 3);
}

TEST(DotStufferTest, CleanPiecesAreReferredToNotCopied) {
  std::string body;
  while (body.size() < 1'000'000) body += "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
  auto shared = std::make_shared<const std::string>(body);
  MessageData message;
  message.Append("Subject: hello\r\n\r\n");
  message.AppendShared(shared);
  WireData data = DotStuff(message);
  EXPECT_EQ(CheckProperties(message.ToString(), data), "");
  // The headers (small) and the end marker are copied; the megabyte is not.
  EXPECT_EQ(data.copied_size(), std::string_view("Subject: hello\r\n\r\n.\r\n").size());
  bool referenced = false;
  data.ForEachSegment([&](std::string_view s) { referenced |= s.data() == shared->data() && s.size() == shared->size(); });
  EXPECT_TRUE(referenced);
  EXPECT_EQ(data.segment_count(), 3u);
}

TEST(DotStufferTest, FewChangesInALargePieceAreInsertedBetweenRuns) {
  std::string body(100'000, 'x');
  body[50'000] = '\n';  // one bare LF
  body[50'001] = '.';   // and a dot at the start of the next line
  auto shared = std::make_shared<const std::string>(body + "\r\n");
  MessageData message;
  message.AppendShared(shared);
  WireData data = DotStuff(message);
  EXPECT_EQ(CheckProperties(*shared, data), "");
  // The LF between the two insertions is copied with them: one segment "\r\n." between two runs.
  EXPECT_EQ(data.copied_size(), std::string_view("\r\n.").size() + std::string_view(".\r\n").size());
  EXPECT_EQ(data.segment_count(), 4u);
}

TEST(DotStufferTest, DenseChangesAreCopied) {
  std::string body;
  for (int i = 0; i < 10'000; ++i) body += "line\n";  // LF line ends: a change every 5 octets
  MessageData message;
  message.AppendShared(std::make_shared<const std::string>(body));
  WireData data = DotStuff(message);
  EXPECT_EQ(CheckProperties(body, data), "");
  EXPECT_EQ(data.segment_count(), 1u);
  EXPECT_EQ(data.copied_size(), data.size());
}

TEST(DotStufferTest, ReusesStorage) {
  DotStuffer first;
  first.Add("a\nb\n");
  WireData data = first.Finish();
  EXPECT_EQ(data.ToString(), "a\r\nb\r\n.\r\n");
  DotStuffer second(DotStuffOptions{}, std::move(data));
  second.Add("c");
  WireData again = second.Finish();
  EXPECT_EQ(again.ToString(), "c\r\n.\r\n");
  EXPECT_EQ(again.size(), 6u);
}

// Random inputs over an alphabet rich in the octets that matter, split at random points.
TEST(DotStufferTest, PropertiesHoldForRandomInputs) {
  std::mt19937 rng(20240229);
  const std::string alphabets[] = {
      std::string("\r\n.a"),          // dense: almost every octet matters
      std::string("\r\n.abcdefgh "),  // mixed
      std::string("abcdefghijklmnopqrstuvwxyz0123456789+/abcdefghijklmnop\r\n."),  // sparse
  };
  int checked = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    const std::string& alphabet = alphabets[iteration % 3];
    const std::size_t length = std::uniform_int_distribution<std::size_t>(0, iteration % 10 == 0 ? 3000 : 40)(rng);
    std::string input;
    for (std::size_t i = 0; i < length; ++i) {
      input += alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    }
    std::vector<std::string> pieces;
    std::size_t pos = 0;
    while (pos < input.size()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 12)(rng);
      pieces.push_back(input.substr(pos, n));
      pos += n;
    }
    for (const DotStuffOptions& mode : kModes) {
      const MessageData message = Pieces(pieces);
      std::string failure = CheckProperties(input, DotStuff(message, mode));
      ASSERT_EQ(failure, "") << "input '" << Printable(input, 200) << "' in " << pieces.size()
                             << " pieces, min_reference_run " << mode.min_reference_run;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 60000);
}

// Adversarial inputs: every string of up to 6 octets over {CR, LF, '.', 'a'}, split at every
// possible point into two and three pieces.
TEST(DotStufferTest, PropertiesHoldForAllShortInputs) {
  const char alphabet[] = {'\r', '\n', '.', 'a'};
  std::vector<std::string> inputs = {""};
  for (std::size_t length = 1; length <= 6; ++length) {
    std::vector<std::string> longer;
    for (const std::string& s : inputs) {
      if (s.size() != length - 1) continue;
      for (char c : alphabet) longer.push_back(s + c);
    }
    inputs.insert(inputs.end(), longer.begin(), longer.end());
  }
  EXPECT_EQ(inputs.size(), 1u + 4 + 16 + 64 + 256 + 1024 + 4096);
  for (const std::string& input : inputs) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        std::vector<std::string> pieces = {input.substr(0, i), input.substr(i, j - i), input.substr(j)};
        for (const DotStuffOptions& mode : kModes) {
          const MessageData message = Pieces(pieces);
          std::string failure = CheckProperties(input, DotStuff(message, mode));
          ASSERT_EQ(failure, "") << "input '" << Printable(input) << "' split at " << i << "," << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace herald::smtp
