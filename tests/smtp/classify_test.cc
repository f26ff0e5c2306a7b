// Classify: disposition, scope and flags for replies at every stage, with the special cases of
// RFC 5321 §3.8 (421), §4.5.3.1.10 (452/552 on RCPT) and RFC 4954 §6 (AUTH), the replies each stage
// accepts (anything else never counts as success), refusals of the account at MAIL FROM and policy
// refusals.
#include "smtp/classify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace herald::smtp {
namespace {

std::string_view DispositionName(Disposition d) {
  switch (d) {
    case Disposition::kDelivered: return "delivered";
    case Disposition::kTemporary: return "temporary";
    case Disposition::kPermanent: return "permanent";
  }
  return "?";
}
std::string_view ScopeName(Scope s) {
  switch (s) {
    case Scope::kRecipient: return "recipient";
    case Scope::kMessage: return "message";
    case Scope::kAccount: return "account";
    case Scope::kDestination: return "destination";
    case Scope::kLocal: return "local";
  }
  return "?";
}

// What a classification says besides disposition and scope.
constexpr unsigned kTooMany = 1;    // too_many_recipients
constexpr unsigned kClosing = 2;    // closing_connection
constexpr unsigned kProtocol = 4;   // protocol_error
constexpr unsigned kPolicy = 8;     // outcome.policy_refusal
constexpr unsigned kMaybe = 16;     // outcome.maybe_delivered

std::string FlagNames(unsigned flags) {
  std::string out;
  const std::pair<unsigned, const char*> names[] = {{kTooMany, "too_many"}, {kClosing, "closing"},
                                                {kProtocol, "protocol"}, {kPolicy, "policy"},
                                                {kMaybe, "maybe_delivered"}};
  for (const auto& [flag, name] : names) {
    if (flags & flag) out += std::string(out.empty() ? "" : ",") + name;
  }
  return out.empty() ? "-" : out;
}

unsigned FlagsOf(const Classification& c) {
  return (c.too_many_recipients ? kTooMany : 0u) | (c.closing_connection ? kClosing : 0u) |
         (c.protocol_error ? kProtocol : 0u) | (c.outcome.policy_refusal ? kPolicy : 0u) |
         (c.outcome.maybe_delivered ? kMaybe : 0u);
}

TEST(ClassifyTest, Table) {
  using D = Disposition;
  using S = Scope;
  struct Case {
    Stage stage;
    int code;
    std::string enhanced;
    D want_disposition;  // kDelivered: accepted, the dialogue goes on
    S want_scope;
    unsigned want_flags = 0;
  };
  const Case cases[] = {
      // The replies each stage waits for, and 4xx/5xx with the scope of the stage.
      {Stage::kGreeting, 220, "", D::kDelivered, S::kAccount},
      {Stage::kGreeting, 554, "5.7.1", D::kPermanent, S::kAccount, kPolicy},
      {Stage::kGreeting, 554, "", D::kPermanent, S::kAccount, kPolicy},  // "no SMTP service here"
      {Stage::kGreeting, 554, "5.3.2", D::kPermanent, S::kAccount},
      {Stage::kGreeting, 450, "", D::kTemporary, S::kAccount},
      {Stage::kHello, 250, "", D::kDelivered, S::kAccount},
      {Stage::kHello, 502, "5.5.1", D::kPermanent, S::kAccount},
      {Stage::kHello, 550, "5.7.1", D::kPermanent, S::kAccount, kPolicy},  // client host blocked
      {Stage::kHello, 550, "", D::kPermanent, S::kAccount},
      {Stage::kStartTls, 454, "4.7.0", D::kTemporary, S::kAccount},
      {Stage::kStartTls, 220, "2.0.0", D::kDelivered, S::kAccount},
      {Stage::kAuth, 235, "2.7.0", D::kDelivered, S::kAccount},
      {Stage::kAuth, 334, "", D::kDelivered, S::kAccount},
      {Stage::kAuth, 535, "5.7.8", D::kPermanent, S::kAccount},
      {Stage::kAuth, 534, "5.7.9", D::kPermanent, S::kAccount},
      {Stage::kAuth, 530, "5.7.0", D::kPermanent, S::kAccount},
      {Stage::kAuth, 538, "5.7.11", D::kPermanent, S::kAccount},
      {Stage::kAuth, 454, "4.7.0", D::kTemporary, S::kAccount},
      {Stage::kMailFrom, 250, "2.1.0", D::kDelivered, S::kMessage},
      {Stage::kMailFrom, 451, "4.3.0", D::kTemporary, S::kMessage},
      {Stage::kRcptTo, 250, "2.1.5", D::kDelivered, S::kRecipient},
      {Stage::kRcptTo, 251, "2.1.5", D::kDelivered, S::kRecipient},  // user not local; will forward
      {Stage::kRcptTo, 550, "5.1.1", D::kPermanent, S::kRecipient},
      {Stage::kRcptTo, 450, "4.2.1", D::kTemporary, S::kRecipient},
      {Stage::kData, 354, "", D::kDelivered, S::kMessage},
      {Stage::kData, 554, "5.5.1", D::kPermanent, S::kMessage},
      {Stage::kData, 451, "", D::kTemporary, S::kMessage},
      {Stage::kDataEnd, 250, "2.0.0", D::kDelivered, S::kMessage},
      {Stage::kDataEnd, 251, "", D::kDelivered, S::kMessage},  // any 2xx accepts the message
      {Stage::kDataEnd, 552, "5.3.4", D::kPermanent, S::kMessage},
      {Stage::kDataEnd, 554, "5.7.1", D::kPermanent, S::kMessage},  // content: not the sender's host
      {Stage::kDataEnd, 451, "4.7.500", D::kTemporary, S::kMessage},
      // MAIL FROM: refusals of the sender or this client concern the account...
      {Stage::kMailFrom, 530, "5.7.0", D::kPermanent, S::kAccount, kPolicy},  // authentication required
      {Stage::kMailFrom, 550, "5.7.1", D::kPermanent, S::kAccount, kPolicy},  // client host blocked
      {Stage::kMailFrom, 553, "5.7.1", D::kPermanent, S::kAccount, kPolicy},  // sender not owned by the user
      {Stage::kMailFrom, 550, "5.1.7", D::kPermanent, S::kAccount},           // bad sender mailbox syntax
      {Stage::kMailFrom, 550, "5.1.8", D::kPermanent, S::kAccount},           // bad sender system
      {Stage::kMailFrom, 553, "", D::kPermanent, S::kAccount},                // sender not allowed
      // ...what concerns this message stays with it...
      {Stage::kMailFrom, 552, "5.3.4", D::kPermanent, S::kMessage},  // too large
      {Stage::kMailFrom, 552, "", D::kPermanent, S::kMessage},
      {Stage::kMailFrom, 554, "5.3.4", D::kPermanent, S::kMessage},
      {Stage::kMailFrom, 550, "5.6.0", D::kPermanent, S::kMessage},  // content
      {Stage::kMailFrom, 555, "5.5.4", D::kPermanent, S::kMessage},  // MAIL parameters
      {Stage::kMailFrom, 550, "", D::kPermanent, S::kMessage},
      // ...and a 4xx is only a wait (greylisting and rate limits are 4.7.x).
      {Stage::kMailFrom, 450, "4.7.1", D::kTemporary, S::kMessage},
      // RCPT TO: a policy refusal of this client (relaying denied, blocklisted) marks the
      // recipient for another path; a refusal of the recipient itself does not.
      {Stage::kRcptTo, 554, "5.7.1", D::kPermanent, S::kRecipient, kPolicy},
      {Stage::kRcptTo, 550, "5.7.1", D::kPermanent, S::kRecipient, kPolicy},
      {Stage::kRcptTo, 550, "5.2.1", D::kPermanent, S::kRecipient},
      {Stage::kRcptTo, 450, "4.7.1", D::kTemporary, S::kRecipient},  // greylisted
      {Stage::kAuth, 535, "5.7.8", D::kPermanent, S::kAccount},      // credentials: not policy
      // A 2xx or 3xx the stage cannot get: a protocol error, temporary, never success.
      {Stage::kGreeting, 250, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kGreeting, 354, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kHello, 220, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kHello, 354, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kStartTls, 250, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kStartTls, 334, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kAuth, 250, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kAuth, 354, "", D::kTemporary, S::kAccount, kProtocol},
      {Stage::kMailFrom, 354, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kMailFrom, 334, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kMailFrom, 220, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kRcptTo, 220, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kRcptTo, 354, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kRcptTo, 334, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kData, 250, "2.0.0", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kData, 220, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kData, 334, "", D::kTemporary, S::kMessage, kProtocol},
      {Stage::kDataEnd, 354, "", D::kTemporary, S::kMessage, kProtocol | kMaybe},
      {Stage::kDataEnd, 334, "", D::kTemporary, S::kMessage, kProtocol | kMaybe},
      // 421 at any stage: the server is closing the channel.
      {Stage::kGreeting, 421, "4.3.2", D::kTemporary, S::kAccount, kClosing},
      {Stage::kHello, 421, "", D::kTemporary, S::kAccount, kClosing},
      {Stage::kMailFrom, 421, "4.7.0", D::kTemporary, S::kAccount, kClosing},
      {Stage::kRcptTo, 421, "4.7.0", D::kTemporary, S::kAccount, kClosing},
      {Stage::kDataEnd, 421, "4.4.2", D::kTemporary, S::kAccount, kClosing},
      // Too many recipients (RFC 5321 §4.5.3.1.10).
      {Stage::kRcptTo, 452, "4.5.3", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 452, "", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 451, "4.5.3", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 552, "", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 552, "5.5.3", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 550, "5.5.3", D::kTemporary, S::kRecipient, kTooMany},
      {Stage::kRcptTo, 452, "4.2.2", D::kTemporary, S::kRecipient},  // mailbox full: no
      {Stage::kRcptTo, 452, "4.3.1", D::kTemporary, S::kRecipient},  // no storage: no
      {Stage::kRcptTo, 552, "5.2.2", D::kTemporary, S::kRecipient},  // 552 on RCPT is temporary
      {Stage::kMailFrom, 452, "4.5.3", D::kTemporary, S::kMessage},  // only on RCPT
  };
  for (const Case& c : cases) {
    Reply reply{c.code, c.enhanced, {"server text"}};
    Classification got = Classify(c.stage, reply);
    const std::string name = std::string(StageName(c.stage)) + " " + std::to_string(c.code) + " " + c.enhanced;
    EXPECT_EQ(DispositionName(got.outcome.disposition), DispositionName(c.want_disposition)) << name;
    EXPECT_EQ(got.accepted, c.want_disposition == D::kDelivered) << name;
    EXPECT_EQ(ScopeName(got.outcome.scope), ScopeName(c.want_scope)) << name;
    EXPECT_EQ(FlagNames(FlagsOf(got)), FlagNames(c.want_flags)) << name;
    EXPECT_EQ(got.outcome.stage, c.stage) << name;
    EXPECT_EQ(got.outcome.reply_code, c.code) << name;
    EXPECT_EQ(got.outcome.enhanced_status, c.enhanced) << name;
    if (got.protocol_error) {
      EXPECT_THAT(got.outcome.text, ::testing::StartsWith("protocol error: " + std::string(StageName(c.stage)) +
                                                          " answered " + std::to_string(c.code)))
          << name;
      EXPECT_THAT(got.outcome.text, ::testing::EndsWith("server text")) << name;
    } else {
      EXPECT_EQ(got.outcome.text, "server text") << name;
    }
  }
}

TEST(ClassifyTest, TextIsVerbatimButBoundedAndSafe) {
  Reply multi{550, "5.1.1", {"The email account that you tried to reach does not exist.", "Please try again."}};
  EXPECT_EQ(Classify(Stage::kRcptTo, multi).outcome.text,
            "The email account that you tried to reach does not exist. Please try again.");

  Reply long_reply{550, "", {std::string(900, 'a'), std::string(900, 'b')}};
  std::string text = Classify(Stage::kRcptTo, long_reply).outcome.text;
  EXPECT_EQ(text.size(), kMaxOutcomeText);
  EXPECT_TRUE(text.ends_with("bbb..."));

  // A cut never splits a UTF-8 character.
  std::string umlauts;
  while (umlauts.size() < 1200) umlauts += "ä";
  text = Classify(Stage::kRcptTo, Reply{550, "", {"x" + umlauts}}).outcome.text;
  EXPECT_LE(text.size(), kMaxOutcomeText);
  EXPECT_TRUE(text.ends_with("ä...")) << text.substr(text.size() - 10);

  // Control characters cannot forge log lines or colour terminals.
  text = Classify(Stage::kRcptTo, Reply{550, "", {"bad\x1b[31m\x07 text"}}).outcome.text;
  EXPECT_EQ(text, "bad [31m  text");
}

TEST(ClassifyTest, FailuresWithoutReply) {
  struct Case {
    Stage stage;
    Scope want;
  };
  const Case cases[] = {
      {Stage::kConnect, Scope::kAccount}, {Stage::kGreeting, Scope::kAccount}, {Stage::kStartTls, Scope::kAccount},
      {Stage::kAuth, Scope::kAccount},    {Stage::kMailFrom, Scope::kMessage}, {Stage::kRcptTo, Scope::kMessage},
      {Stage::kData, Scope::kMessage},    {Stage::kDataEnd, Scope::kMessage},
  };
  for (const Case& c : cases) {
    Outcome got = TemporaryFailure(c.stage, "connection closed by the server");
    EXPECT_EQ(ScopeName(got.scope), ScopeName(c.want)) << StageName(c.stage);
    EXPECT_EQ(DispositionName(got.disposition), "temporary");
    EXPECT_EQ(got.reply_code, 0);
    EXPECT_EQ(got.text, "connection closed by the server");
    EXPECT_EQ(got.stage, c.stage);
    EXPECT_EQ(got.maybe_delivered, c.stage == Stage::kDataEnd) << StageName(c.stage);
  }
}

}  // namespace
}  // namespace herald::smtp
