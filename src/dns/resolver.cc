#include "dns/resolver.h"

#include <fmt/format.h>

namespace herald::dns {

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kA: return "A";
    case RecordType::kMx: return "MX";
    case RecordType::kTxt: return "TXT";
    case RecordType::kAaaa: return "AAAA";
  }
  return "?";
}

std::string_view AnswerStatusName(AnswerStatus status) {
  switch (status) {
    case AnswerStatus::kOk: return "ok";
    case AnswerStatus::kNoData: return "no data";
    case AnswerStatus::kNxDomain: return "NXDOMAIN";
    case AnswerStatus::kServFail: return "SERVFAIL";
    case AnswerStatus::kTimeout: return "timeout";
  }
  return "?";
}

std::string DescribeFailure(std::string_view name, RecordType type, const Answer& answer) {
  std::string what;
  switch (answer.status) {
    case AnswerStatus::kOk: what = "found"; break;
    case AnswerStatus::kNoData: what = fmt::format("the name has no {} records", RecordTypeName(type)); break;
    case AnswerStatus::kNxDomain: what = "the name does not exist (NXDOMAIN)"; break;
    case AnswerStatus::kServFail: what = "the DNS server failed (SERVFAIL)"; break;
    case AnswerStatus::kTimeout: what = "no answer from the DNS server in time"; break;
  }
  if (!answer.reason.empty()) what += fmt::format(": {}", answer.reason);
  return fmt::format("{} lookup for {}: {}", RecordTypeName(type), name, what);
}

}  // namespace herald::dns
