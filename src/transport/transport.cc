#include "transport/transport.h"

namespace herald {

std::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kConnect: return "connect";
    case Stage::kGreeting: return "greeting";
    case Stage::kHello: return "EHLO";
    case Stage::kStartTls: return "STARTTLS";
    case Stage::kAuth: return "AUTH";
    case Stage::kMailFrom: return "MAIL FROM";
    case Stage::kRcptTo: return "RCPT TO";
    case Stage::kData: return "DATA";
    case Stage::kDataEnd: return "end of data";
    case Stage::kWrite: return "write";
    case Stage::kPrepare: return "prepare";
  }
  return "?";
}

}  // namespace herald
