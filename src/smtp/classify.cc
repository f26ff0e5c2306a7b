#include "smtp/classify.h"

namespace herald::smtp {
namespace {

Scope ScopeOfStage(Stage stage) {
  switch (stage) {
    case Stage::kConnect:
    case Stage::kGreeting:
    case Stage::kHello:
    case Stage::kStartTls:
    case Stage::kAuth:
      return Scope::kAccount;
    case Stage::kRcptTo:
      return Scope::kRecipient;
    case Stage::kMailFrom:
    case Stage::kData:
    case Stage::kDataEnd:
    case Stage::kWrite:
    case Stage::kPrepare:
      return Scope::kMessage;
  }
  return Scope::kMessage;
}

// The text for an Outcome: control characters become spaces; at most kMaxOutcomeText octets,
// cut before a UTF-8 continuation octet so no character is split.
std::string OutcomeText(std::string_view text) {
  constexpr std::string_view kEllipsis = "...";
  bool cut = false;
  if (text.size() > kMaxOutcomeText) {
    std::size_t end = kMaxOutcomeText - kEllipsis.size();
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
    cut = true;
  }
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  if (cut) out.append(kEllipsis);
  return out;
}

// RFC 3463 "x.5.3": too many recipients.
bool IsTooManyRecipientsStatus(std::string_view enhanced) {
  return enhanced.size() == 5 && enhanced.substr(1) == ".5.3";
}

}  // namespace

Classification Classify(Stage stage, const Reply& reply) {
  Classification result;
  Outcome& outcome = result.outcome;
  outcome.stage = stage;
  outcome.scope = ScopeOfStage(stage);
  outcome.reply_code = reply.code;
  outcome.enhanced_status = reply.enhanced_status;
  outcome.text = OutcomeText(reply.Text());

  switch (reply.reply_class()) {
    case 2:
      outcome.disposition = Disposition::kDelivered;
      return result;
    case 3:
      // 354 starts the message text (RFC 5321 §4.1.1.4), 334 continues SASL (RFC 4954 §4).
      if ((stage == Stage::kData && reply.code == 354) || (stage == Stage::kAuth && reply.code == 334)) {
        outcome.disposition = Disposition::kDelivered;
      } else {
        outcome.disposition = Disposition::kTemporary;
      }
      return result;
    case 4:
      outcome.disposition = Disposition::kTemporary;
      break;
    default:
      outcome.disposition = Disposition::kPermanent;
      break;
  }

  // RFC 5321 §3.8: 421 means the server is closing the transmission channel, at any stage.
  if (reply.code == 421) {
    outcome.disposition = Disposition::kTemporary;
    outcome.scope = Scope::kAccount;
    result.closing_connection = true;
    return result;
  }

  switch (stage) {
    case Stage::kRcptTo:
      // RFC 5321 §4.5.3.1.10: a server that limits recipients answers 452 and the client sends the
      // rest in a later transaction; "clients SHOULD treat a 552 code in this case as a temporary,
      // rather than permanent failure".
      if (IsTooManyRecipientsStatus(reply.enhanced_status) ||
          ((reply.code == 452 || reply.code == 552) && reply.enhanced_status.empty())) {
        outcome.disposition = Disposition::kTemporary;
        result.too_many_recipients = true;
      } else if (reply.code == 552) {
        outcome.disposition = Disposition::kTemporary;
      }
      break;
    case Stage::kMailFrom:
      // RFC 4954 §6: "530 5.7.0 Authentication required" — the account needs AUTH.
      if (reply.code == 530) outcome.scope = Scope::kAccount;
      break;
    default:
      break;
  }
  return result;
}

Scope ScopeWithoutReply(Stage stage) {
  Scope scope = ScopeOfStage(stage);
  return scope == Scope::kRecipient ? Scope::kMessage : scope;
}

Outcome TemporaryFailure(Stage stage, std::string_view reason) {
  Outcome outcome;
  outcome.disposition = Disposition::kTemporary;
  outcome.scope = ScopeWithoutReply(stage);
  outcome.stage = stage;
  outcome.text = OutcomeText(reason);
  return outcome;
}

}  // namespace herald::smtp
