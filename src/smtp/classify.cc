#include "smtp/classify.h"

#include <fmt/format.h>

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

// RFC 3463 status "class.subject.detail": whether `enhanced` has this subject (and detail, when
// given).
bool HasStatus(std::string_view enhanced, std::string_view subject, std::string_view detail = {}) {
  if (enhanced.size() < 5 || enhanced[1] != '.') return false;
  std::string_view rest = enhanced.substr(2);
  std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos || rest.substr(0, dot) != subject) return false;
  return detail.empty() || rest.substr(dot + 1) == detail;
}

// RFC 3463 "x.5.3": too many recipients.
bool IsTooManyRecipientsStatus(std::string_view enhanced) { return HasStatus(enhanced, "5", "3"); }

// The replies `stage` waits for before the dialogue goes on (RFC 5321 §4.3.2, RFC 3207 §4,
// RFC 4954 §4 and §6).
bool IsAcceptedReply(Stage stage, int code) {
  switch (stage) {
    case Stage::kGreeting:
    case Stage::kStartTls:
      return code == 220;
    case Stage::kHello:
    case Stage::kMailFrom:
      return code == 250;
    case Stage::kAuth:
      return code == 235 || code == 334;
    case Stage::kRcptTo:
      return code == 250 || code == 251;
    case Stage::kData:
      return code == 354;
    case Stage::kDataEnd:
    case Stage::kConnect:
    case Stage::kWrite:
    case Stage::kPrepare:
      return code / 100 == 2;
  }
  return false;
}

std::string_view ExpectedReplies(Stage stage) {
  switch (stage) {
    case Stage::kGreeting:
    case Stage::kStartTls:
      return "220";
    case Stage::kHello:
    case Stage::kMailFrom:
      return "250";
    case Stage::kAuth:
      return "235 or 334";
    case Stage::kRcptTo:
      return "250 or 251";
    case Stage::kData:
      return "354";
    case Stage::kDataEnd:
    case Stage::kConnect:
    case Stage::kWrite:
    case Stage::kPrepare:
      break;
  }
  return "2xx";
}

std::string ProtocolErrorText(Stage stage, const Reply& reply) {
  return fmt::format("protocol error: {} answered {} where only {} fits: {}", StageName(stage), reply.code,
                     ExpectedReplies(stage), reply.Text());
}

// MAIL FROM 5xx: about the sender or this client (the account), not this message.
bool RefusesTheAccountAtMailFrom(const Reply& reply) {
  const std::string& enhanced = reply.enhanced_status;
  bool about_the_message = reply.code == 552 || reply.code == 555 || HasStatus(enhanced, "3", "4") ||
                           HasStatus(enhanced, "6");
  if (about_the_message) return false;
  return reply.code == 530 || HasStatus(enhanced, "7") || HasStatus(enhanced, "1", "7") ||
         HasStatus(enhanced, "1", "8") || (reply.code == 553 && enhanced.empty());
}

// A 5xx refusing this sending host, client or sender by policy (see classify.h).
bool IsPolicyRefusal(Stage stage, const Reply& reply) {
  if (reply.reply_class() != 5) return false;
  switch (stage) {
    case Stage::kGreeting:
      return HasStatus(reply.enhanced_status, "7") || (reply.code == 554 && reply.enhanced_status.empty());
    case Stage::kHello:
    case Stage::kMailFrom:
    case Stage::kRcptTo:
      return HasStatus(reply.enhanced_status, "7");
    default:
      return false;
  }
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

  if (IsAcceptedReply(stage, reply.code)) {
    result.accepted = true;
    outcome.disposition = Disposition::kDelivered;
    return result;
  }
  switch (reply.reply_class()) {
    case 2:
    case 3:
      result.protocol_error = true;
      outcome.disposition = Disposition::kTemporary;
      outcome.scope = ScopeWithoutReply(stage);
      outcome.text = OutcomeText(ProtocolErrorText(stage, reply));
      // The whole message went out; the server said neither yes nor no.
      outcome.maybe_delivered = stage == Stage::kDataEnd;
      return result;
    case 4:
      outcome.disposition = Disposition::kTemporary;
      break;
    default:
      outcome.disposition = Disposition::kPermanent;
      break;
  }
  outcome.policy_refusal = IsPolicyRefusal(stage, reply);

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
      if (outcome.disposition == Disposition::kPermanent && RefusesTheAccountAtMailFrom(reply)) {
        outcome.scope = Scope::kAccount;
      }
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
  outcome.maybe_delivered = stage == Stage::kDataEnd;
  return outcome;
}

}  // namespace herald::smtp
