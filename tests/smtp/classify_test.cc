// Classify: disposition, scope and flags for replies at every stage, with the special cases of
// RFC 5321 §3.8 (421), §4.5.3.1.10 (452/552 on RCPT) and RFC 4954 §6 (AUTH).
#include "smtp/classify.h"

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

TEST(ClassifyTest, Table) {
  using D = Disposition;
  using S = Scope;
  struct Case {
    Stage stage;
    int code;
    std::string enhanced;
    D want_disposition;
    S want_scope;
    bool want_too_many = false;
    bool want_closing = false;
  };
  const Case cases[] = {
      // Plain 2xx/4xx/5xx with the scope of the stage.
      {Stage::kGreeting, 220, "", D::kDelivered, S::kAccount},
      {Stage::kGreeting, 554, "5.7.1", D::kPermanent, S::kAccount},
      {Stage::kGreeting, 450, "", D::kTemporary, S::kAccount},
      {Stage::kHello, 250, "", D::kDelivered, S::kAccount},
      {Stage::kHello, 502, "5.5.1", D::kPermanent, S::kAccount},
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
      {Stage::kMailFrom, 552, "5.3.4", D::kPermanent, S::kMessage},
      {Stage::kMailFrom, 451, "4.3.0", D::kTemporary, S::kMessage},
      {Stage::kMailFrom, 530, "5.7.0", D::kPermanent, S::kAccount},  // authentication required
      {Stage::kRcptTo, 250, "2.1.5", D::kDelivered, S::kRecipient},
      {Stage::kRcptTo, 550, "5.1.1", D::kPermanent, S::kRecipient},
      {Stage::kRcptTo, 450, "4.2.1", D::kTemporary, S::kRecipient},
      {Stage::kRcptTo, 554, "5.7.1", D::kPermanent, S::kRecipient},
      {Stage::kData, 354, "", D::kDelivered, S::kMessage},
      {Stage::kData, 554, "5.5.1", D::kPermanent, S::kMessage},
      {Stage::kData, 451, "", D::kTemporary, S::kMessage},
      {Stage::kDataEnd, 250, "2.0.0", D::kDelivered, S::kMessage},
      {Stage::kDataEnd, 552, "5.3.4", D::kPermanent, S::kMessage},
      {Stage::kDataEnd, 554, "5.7.1", D::kPermanent, S::kMessage},
      {Stage::kDataEnd, 451, "4.7.500", D::kTemporary, S::kMessage},
      // 3xx where no 3xx belongs: a broken server, try again later.
      {Stage::kMailFrom, 354, "", D::kTemporary, S::kMessage},
      {Stage::kDataEnd, 354, "", D::kTemporary, S::kMessage},
      // 421 at any stage: the server is closing the channel.
      {Stage::kGreeting, 421, "4.3.2", D::kTemporary, S::kAccount, false, true},
      {Stage::kHello, 421, "", D::kTemporary, S::kAccount, false, true},
      {Stage::kMailFrom, 421, "4.7.0", D::kTemporary, S::kAccount, false, true},
      {Stage::kRcptTo, 421, "4.7.0", D::kTemporary, S::kAccount, false, true},
      {Stage::kDataEnd, 421, "4.4.2", D::kTemporary, S::kAccount, false, true},
      // Too many recipients (RFC 5321 §4.5.3.1.10).
      {Stage::kRcptTo, 452, "4.5.3", D::kTemporary, S::kRecipient, true},
      {Stage::kRcptTo, 452, "", D::kTemporary, S::kRecipient, true},
      {Stage::kRcptTo, 451, "4.5.3", D::kTemporary, S::kRecipient, true},
      {Stage::kRcptTo, 552, "", D::kTemporary, S::kRecipient, true},
      {Stage::kRcptTo, 552, "5.5.3", D::kTemporary, S::kRecipient, true},
      {Stage::kRcptTo, 550, "5.5.3", D::kTemporary, S::kRecipient, true},
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
    EXPECT_EQ(ScopeName(got.outcome.scope), ScopeName(c.want_scope)) << name;
    EXPECT_EQ(got.too_many_recipients, c.want_too_many) << name;
    EXPECT_EQ(got.closing_connection, c.want_closing) << name;
    EXPECT_EQ(got.outcome.stage, c.stage) << name;
    EXPECT_EQ(got.outcome.reply_code, c.code) << name;
    EXPECT_EQ(got.outcome.enhanced_status, c.enhanced) << name;
    EXPECT_EQ(got.outcome.text, "server text") << name;
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
  }
}

}  // namespace
}  // namespace herald::smtp
