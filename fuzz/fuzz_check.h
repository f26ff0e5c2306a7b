// FUZZ_CHECK: a property a fuzz target asserts about herald's output. A failed check prints what
// was expected and aborts, so that libFuzzer records the input as a crash (and scripts/fuzz.sh
// fails). Unlike assert(), it is never compiled out.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace herald::fuzz {

// Text with every byte outside printable ASCII as \xNN, for the failure message.
inline std::string Escaped(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  return out;
}

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition, std::string_view detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n%.*s\n", file, line, condition,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace herald::fuzz

// `detail` is evaluated only on failure: any expression giving a std::string or string_view.
#define FUZZ_CHECK(condition, detail)                                                \
  do {                                                                               \
    if (!(condition)) ::herald::fuzz::CheckFailed(__FILE__, __LINE__, #condition, (detail)); \
  } while (false)
