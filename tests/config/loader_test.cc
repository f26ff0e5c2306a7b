#include "config/loader.h"

#include <filesystem>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/secret.h"
#include "temp_dir.h"

namespace herald {
namespace {

using ::testing::HasSubstr;

// Every line of an error names the configuration file once, at its start ("file:line:column: key: ...").
void ExpectFileNamedOncePerLine(const std::string& message, const std::string& file) {
  std::size_t start = 0;
  while (start < message.size()) {
    std::size_t end = std::min(message.find('\n', start), message.size());
    std::string_view line(message.data() + start, end - start);
    EXPECT_EQ(line.find(file), 0u) << line;
    EXPECT_EQ(line.find(file, 1), std::string_view::npos) << "the file named twice: " << line;
    start = end + 1;
  }
}

class LoadAccountsTest : public ::testing::Test {
 protected:
  Result<AccountSet> Load(std::string_view toml) { return LoadAccounts(dir_.Write("accounts.toml", toml)); }

  // Loads `toml` expecting failure; returns the error message.
  std::string LoadError(std::string_view toml) {
    Result<AccountSet> got = Load(toml);
    EXPECT_FALSE(got.ok()) << "accepted:\n" << toml;
    return got.ok() ? std::string() : got.status().message();
  }

  TempDir dir_;
};

TEST_F(LoadAccountsTest, ReadsEveryKind) {
  dir_.Write("ca.pem", "x");
  Result<AccountSet> got = Load(R"(
[[account]]
name = "relay"
kind = "smtp"
host = "smtp.example.com"
port = 587
security = "starttls"
ca_file = "ca.pem"
username = "news@example.com"
password_env = "RELAY_PASSWORD"
auth_methods = ["plain", "cram-md5"]
helo_name = "client.example.com"
local_address = "127.0.0.2"
timeout = "30s"
max_connections = 4
reconnect_every = 100
pause_between_chunks = "5s"
minimum_wait = "200ms"
limits = ["200/hour", "2000/day"]
secondary = "backup"
excluded_domains = ["aol.com"]
only_senders = ["*@example.com"]
only_recipients = ["*@example.org", "boss@example.net"]
fixed_sender = "relay@example.com"
default_reply_to = "Help <help@example.com>"
default_sender_name = "Example"
max_message_size = "25MB"

[account.pop_before_smtp]
host = "pop.example.com"
valid_for = "10m"

[[account]]
name = "backup"
kind = "pickup"
folder = "out/pickup"

[[account]]
name = "direct"
kind = "direct"
dns_server = "127.0.0.1:5353"
tls_policy = "verify"
helo_name = "mx-out.example.com"
[[account.destination]]
domain = "Gmail.com"
max_connections = 2
limits = ["1000/hour"]

[[account]]
name = "gmail"
kind = "gmail"
username = "me@gmail.com"
oauth2_token_file = "token.txt"

[[account]]
name = "exchange"
kind = "ews"
url = "https://mail.example.com/EWS/Exchange.asmx"
username = "DOMAIN\\news"
password_file = "secret.txt"

[[account]]
name = "m365"
kind = "graph"
tenant_id = "tenant"
client_id = "client"
client_secret_env = "GRAPH_SECRET"
mailbox = "news@example.com"
)");
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->accounts().size(), 6u);

  const AccountConfig& relay = *got->Find("relay");
  EXPECT_EQ(relay.kind, AccountKind::kSmtp);
  EXPECT_EQ(relay.host, "smtp.example.com");
  EXPECT_EQ(relay.port, 587);
  EXPECT_EQ(relay.security, Security::kStartTls);
  EXPECT_EQ(relay.ca_file, dir_.Path("ca.pem"));
  EXPECT_EQ(relay.max_message_size, 25000000u);
  EXPECT_EQ(relay.auth, AuthMode::kPassword);
  EXPECT_EQ(relay.password.env, "RELAY_PASSWORD");
  EXPECT_EQ(relay.password_mechanisms,
            (std::vector<PasswordMechanism>{PasswordMechanism::kPlain, PasswordMechanism::kCramMd5}));
  EXPECT_EQ(relay.timeout, std::chrono::seconds(30));
  EXPECT_EQ(relay.max_connections, 4u);
  EXPECT_EQ(relay.reconnect_every, 100u);
  EXPECT_EQ(relay.pause_between_chunks, std::chrono::seconds(5));
  EXPECT_EQ(relay.minimum_wait, std::chrono::milliseconds(200));
  EXPECT_EQ(relay.limits, (std::vector<SendingLimit>{{200, LimitWindow::kHour}, {2000, LimitWindow::kDay}}));
  EXPECT_EQ(relay.secondary, "backup");
  ASSERT_EQ(relay.excluded_domains.size(), 1u);
  ASSERT_EQ(relay.only_recipients.size(), 2u);
  EXPECT_EQ(relay.fixed_sender->ToString(), "relay@example.com");
  EXPECT_EQ(relay.default_reply_to->display_name, "Help");
  ASSERT_TRUE(relay.pop_before_smtp.has_value());
  EXPECT_EQ(relay.pop_before_smtp->host, "pop.example.com");
  EXPECT_EQ(relay.pop_before_smtp->port, 110);
  EXPECT_EQ(relay.pop_before_smtp->username, "news@example.com");  // inherited from the account
  EXPECT_EQ(relay.pop_before_smtp->password.env, "RELAY_PASSWORD");
  EXPECT_EQ(relay.pop_before_smtp->valid_for, std::chrono::minutes(10));

  EXPECT_EQ(got->Find("backup")->folder, dir_.Path("out/pickup"));

  const AccountConfig& direct = *got->Find("direct");
  EXPECT_EQ(direct.tls_policy, TlsPolicy::kVerify);
  EXPECT_EQ(direct.port, 25);
  ASSERT_EQ(direct.destinations.size(), 1u);
  EXPECT_EQ(direct.destinations[0].domain, "gmail.com");
  EXPECT_EQ(direct.destinations[0].max_connections, 2u);

  const AccountConfig& gmail = *got->Find("gmail");
  EXPECT_EQ(gmail.host, "smtp.gmail.com");
  EXPECT_EQ(gmail.port, 465);
  EXPECT_EQ(gmail.security, Security::kTls);
  EXPECT_EQ(gmail.auth, AuthMode::kXoauth2);
  EXPECT_EQ(gmail.gmail_plan, GmailPlan::kFree) << "a @gmail.com username";
  EXPECT_EQ(gmail.limits, (std::vector<SendingLimit>{{500, LimitWindow::kDay}}));
  EXPECT_EQ(gmail.recipients_per_message, 100u);
  EXPECT_EQ(gmail.max_message_size, 0u) << "the server's SIZE decides";

  EXPECT_EQ(got->Find("exchange")->password.file, dir_.Path("secret.txt"));
  EXPECT_EQ(got->Find("m365")->client_secret.env, "GRAPH_SECRET");
}

// Google's limits for the plan (free Gmail 500 a day, Workspace 2,000; 100 recipients per message
// over SMTP) always hold; the user's own limits are checked besides them.
TEST_F(LoadAccountsTest, GmailPresetFollowsThePlanAndKeepsItsLimits) {
  struct Case {
    const char* settings;
    GmailPlan plan;
    std::vector<SendingLimit> limits;
    std::uint32_t recipients_per_message;
  };
  const Case cases[] = {
      {"username = \"me@gmail.com\"", GmailPlan::kFree, {{500, LimitWindow::kDay}}, 100},
      {"username = \"Me@GoogleMail.com\"", GmailPlan::kFree, {{500, LimitWindow::kDay}}, 100},
      {"username = \"news@example.com\"", GmailPlan::kWorkspace, {{2000, LimitWindow::kDay}}, 100},
      {"username = \"me@gmail.com\"\nplan = \"workspace\"", GmailPlan::kWorkspace, {{2000, LimitWindow::kDay}}, 100},
      {"username = \"news@example.com\"\nplan = \"free\"", GmailPlan::kFree, {{500, LimitWindow::kDay}}, 100},
      {"username = \"me@gmail.com\"\nlimits = [\"100/hour\"]", GmailPlan::kFree,
       {{500, LimitWindow::kDay}, {100, LimitWindow::kHour}}, 100},
      {"username = \"news@example.com\"\nlimits = [\"5000/day\"]", GmailPlan::kWorkspace,
       {{2000, LimitWindow::kDay}, {5000, LimitWindow::kDay}}, 100},
      {"username = \"news@example.com\"\nrecipients_per_message = 40", GmailPlan::kWorkspace,
       {{2000, LimitWindow::kDay}}, 40},
  };
  for (const Case& c : cases) {
    std::string toml = fmt::format("[[account]]\nname = \"g\"\nkind = \"gmail\"\npassword_env = \"P\"\n{}\n", c.settings);
    Result<AccountSet> got = Load(toml);
    ASSERT_TRUE(got.ok()) << got.status().message();
    const AccountConfig& gmail = got->accounts()[0];
    EXPECT_EQ(gmail.gmail_plan, c.plan) << toml;
    EXPECT_EQ(gmail.limits, c.limits) << toml;
    EXPECT_EQ(gmail.recipients_per_message, c.recipients_per_message) << toml;
  }
  EXPECT_THAT(LoadError("[[account]]\nname = \"g\"\nkind = \"gmail\"\nusername = \"me@gmail.com\"\npassword_env = \"P\"\n"
                        "recipients_per_message = 500\n"),
              HasSubstr("account[0].recipients_per_message: Gmail takes at most 100 recipients per message"));
  EXPECT_THAT(LoadError("[[account]]\nname = \"g\"\nkind = \"gmail\"\nusername = \"me@gmail.com\"\npassword_env = \"P\"\n"
                        "plan = \"business\"\n"),
              HasSubstr("account[0].plan: \"business\" is not one of \"free\", \"workspace\""));
  EXPECT_THAT(LoadError("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nplan = \"free\"\n"),
              ::testing::EndsWith("account[0].plan: does not apply to a smtp account"));
}

TEST_F(LoadAccountsTest, Port465MeansImplicitTls) {
  Result<AccountSet> got = Load("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nport = 465\n");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->accounts()[0].security, Security::kTls);
  got = Load("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nport = 465\nsecurity = \"none\"\n");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->accounts()[0].security, Security::kNone);
  got = Load("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\n");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->accounts()[0].port, 25);
  EXPECT_EQ(got->accounts()[0].security, Security::kStartTls);
}

TEST_F(LoadAccountsTest, ErrorsNameFileLineKeyAndExpectation) {
  struct Case {
    const char* toml;
    std::vector<const char*> want;  // substrings of the message
  };
  const std::string kHead = "[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\n";
  const Case cases[] = {
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nprot = 25\n",
       {"accounts.toml:5:1", "account[0].prot", "unknown setting"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nport = \"25\"\n",
       {":5:", "account[0].port", "expected an integer from 1 to 65535, got a string"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nport = 70000\n",
       {"port", "got 70000"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nlimits = [\"0/hour\"]\n",
       {"limits", "\"0/hour\" is not a sending limit"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\ntimeout = \"5 minutes\"\n",
       {"timeout", "is not a duration"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nmax_message_size = \"25 MB\"\n",
       {":5:", "account[0].max_message_size", "\"25 MB\" is not a size like \"25MB\""}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nmax_message_size = -1\n",
       {"account[0].max_message_size", "got a negative integer"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.exa mple.com\"\n", {"account[0].host"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"[2001:db8::1]\"\nsecurity = \"ssl\"\n",
       {"security", "\"ssl\" is not one of \"none\", \"starttls\", \"tls\""}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\npassword = \"hunter2\"\n",
       {"account[0].password", "password_env"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nusername = \"u\"\n",
       {"password authentication needs password_env or password_file"}},
      {"[[account]]\nname = \"a\"\nkind = \"pickup\"\nfolder = \"x\"\nhost = \"mail.example.com\"\n",
       {"account[0].host", "does not apply to a pickup account"}},
      {"[[account]]\nname = \"a\"\nkind = \"pickup\"\n", {"account[0].folder", "is required"}},
      {"[[account]]\nname = \"a\"\nkind = \"mailgun\"\n", {"account[0].kind", "\"mailgun\" is not one of"}},
      {"[[account]]\nkind = \"pickup\"\nfolder = \"x\"\n", {"account[0].name", "is required"}},
      {"[[account]]\nname = \"a\"\nkind = \"pickup\"\nfolder = \"x\"\n[[account]]\nname = \"a\"\nkind = \"pickup\"\n"
       "folder = \"y\"\n",
       {"accounts.toml:6:8: account[1].name", "already the name of the account on line 1"}},
      {"[[account]]\nname = \"a\"\nkind = \"pickup\"\nfolder = \"x\"\nsecondary = \"b\"\n",
       {"accounts.toml:5:13: account[0].secondary: no account is named \"b\"; the accounts are: a"}},
      {"[[account]]\nname = \"a\"\nkind = \"pickup\"\nfolder = \"x\"\nsecondary = \"b\"\n[[account]]\nname = \"b\"\n"
       "kind = \"pickup\"\nfolder = \"y\"\nsecondary = \"a\"\n",
       {"accounts.toml:5:13: account[0].secondary: secondary accounts form a loop: a -> b -> a"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nlocal_address = \"myhost\"\n",
       {"local_address", "is not an IPv4 or IPv6 address"}},
      {"[[account]]\nname = \"a\"\nkind = \"direct\"\ndns_server = \"ns.example.com\"\n", {"dns_server"}},
      {"[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\nexcluded_domains = [\"a@aol.com\"]\n",
       {"excluded_domains", "expected a domain"}},
      {"[[account]]\nname = \"a\"\nkind = \"gmail\"\n", {"Gmail needs authentication"}},
      {"[[account]]\nname = \"a\"\nkind = \"graph\"\nmailbox = \"x@example.com\"\n", {"Microsoft Graph needs"}},
      {"account = 5\n", {"account", "expected an array"}},
      {"", {"no accounts"}},
      {"[[account]\n", {"accounts.toml:1:"}},
  };
  for (const Case& c : cases) {
    std::string message = LoadError(c.toml);
    for (const char* want : c.want) {
      EXPECT_THAT(message, HasSubstr(want)) << "for:\n" << c.toml;
    }
    ExpectFileNamedOncePerLine(message, dir_.Path("accounts.toml"));
  }
}

// A literal password gets the one line that says where secrets go, not also "unknown setting".
TEST_F(LoadAccountsTest, LiteralPasswordIsOneError) {
  std::string message = LoadError("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"mail.example.com\"\n"
                                  "username = \"u\"\npassword_env = \"P\"\npassword = \"hunter2\"\n");
  EXPECT_THAT(message, HasSubstr("account[0].password: secrets are not written into configuration files"));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_THAT(message, ::testing::Not(HasSubstr("hunter2")));
}

// Unknown keys get the setting they probably meant: other mail tools' word for it, or the closest
// spelling among the keys of that table (and that account kind).
TEST_F(LoadAccountsTest, UnknownKeysSuggestTheSettingMeant) {
  struct Case {
    const char* kind_and_keys;
    const char* unknown;
    const char* want;  // suggested key; empty: none
  };
  const char* kSmtp = "kind = \"smtp\"\nhost = \"mail.example.com\"\n";
  const char* kDirect = "kind = \"direct\"\n";
  const Case cases[] = {
      {kSmtp, "server", "host"},          {kSmtp, "smtp_server", "host"},     {kSmtp, "smtp_host", "host"},
      {kSmtp, "user", "username"},        {kSmtp, "login", "username"},       {kSmtp, "pass", "password_env"},
      {kSmtp, "ssl", "security"},         {kSmtp, "tls", "security"},         {kSmtp, "starttls", "security"},
      {kSmtp, "SSL", "security"},         {kSmtp, "verify_ssl", "verify_certificate"},
      {kSmtp, "prot", "port"},            {kSmtp, "usernme", "username"},     {kSmtp, "max_conections", "max_connections"},
      {kSmtp, "limit", "limits"},         {kSmtp, "fallback", "secondary"},   {kSmtp, "helo", "helo_name"},
      {kDirect, "tls", "tls_policy"},     {kDirect, "starttls", "tls_policy"},
      {kDirect, "hots", ""},  // "host" does not apply to a direct account
      {kSmtp, "bogus", ""},
  };
  for (const Case& c : cases) {
    std::string toml = fmt::format("[[account]]\nname = \"a\"\n{}{} = 1\n", c.kind_and_keys, c.unknown);
    std::string message = LoadError(toml);
    std::string key = fmt::format("account[0].{}: unknown setting", c.unknown);
    EXPECT_THAT(message, HasSubstr(key)) << toml;
    if (*c.want == '\0') {
      EXPECT_THAT(message, ::testing::Not(HasSubstr("did you mean"))) << toml;
    } else {
      EXPECT_THAT(message, HasSubstr(fmt::format("{}; did you mean \"{}\"?", key, c.want))) << toml;
    }
  }
  // In nested tables too.
  EXPECT_THAT(LoadError("[[account]]\nname = \"a\"\nkind = \"direct\"\n[[account.destination]]\ndomain = \"gmail.com\"\n"
                        "ssl = \"verify\"\n"),
              HasSubstr("account[0].destination[0].ssl: unknown setting; did you mean \"tls_policy\"?"));
  EXPECT_THAT(LoadError(std::string("[[account]]\nname = \"a\"\n") + kSmtp + "username = \"u\"\npassword_env = \"P\"\n"
                        "[account.pop_before_smtp]\nserver = \"pop.example.com\"\n"),
              HasSubstr("account[0].pop_before_smtp.server: unknown setting; did you mean \"host\"?"));
}

// Errors quote names and values from the file; a line break or control character in one is
// escaped, so every line of a message names the file and nothing reaches the terminal raw (found by
// fuzz/config_fuzzer.cc: toml++ quotes the character it saw in a syntax error, "saw 't<LF>'").
TEST_F(LoadAccountsTest, LineBreaksInTheFileAreEscapedInErrors) {
  const std::string kHead = "[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"m.example.com\"\n";
  struct Case {
    std::string toml;
    const char* want;
  };
  const Case cases[] = {
      {kHead + "max_connections = t\nport = 25\n", "saw 't\\n'"},
      {kHead + "security = \"x\\ny\\u001b[2J\"\n", "\"x\\ny\\x1B[2J\" is not one of"},
      {kHead + "timeout = \"1\\ns\"\n", "\"1\\ns\" is not a duration"},
      {"[[account]]\nname = \"a\\nb\"\nkind = \"pickup\"\nfolder = \"x\"\n"
       "[[account]]\nname = \"a\\nb\"\nkind = \"pickup\"\nfolder = \"y\"\n",
       "\"a\\nb\" is already the name"},
  };
  for (const Case& c : cases) {
    const std::string message = LoadError(c.toml);
    EXPECT_THAT(message, HasSubstr(c.want)) << "for:\n" << c.toml;
    for (std::size_t start = 0; start < message.size();) {
      EXPECT_EQ(message.compare(start, dir_.Path("accounts.toml").size(), dir_.Path("accounts.toml")), 0)
          << "a line that does not name the file in:\n" << message;
      const std::size_t end = message.find('\n', start);
      start = end == std::string::npos ? message.size() : end + 1;
    }
  }
}

TEST_F(LoadAccountsTest, ReportsEveryErrorAtOnce) {
  std::string message = LoadError("[[account]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"m.example.com\"\nport = 0\n"
                                  "max_connections = 1000\nbogus = true\n");
  EXPECT_THAT(message, HasSubstr("port"));
  EXPECT_THAT(message, HasSubstr("max_connections"));
  EXPECT_THAT(message, HasSubstr("bogus"));
}

TEST_F(LoadAccountsTest, MissingFileIsNamed) {
  Result<AccountSet> got = LoadAccounts(dir_.Path("nope.toml"));
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("nope.toml"));
}

class LoadTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("recipients.csv", "email,firstname\nanna@example.com,Anna\n");
    dir_.Write("body.txt", "Hello {%firstname%}\n");
    dir_.Write("program.pdf", "%PDF-1.4");
  }
  Result<TaskConfig> Load(std::string_view toml) { return LoadTask(dir_.Write("november.toml", toml)); }
  std::string LoadError(std::string_view toml) {
    Result<TaskConfig> got = Load(toml);
    EXPECT_FALSE(got.ok()) << "accepted:\n" << toml;
    return got.ok() ? std::string() : got.status().message();
  }

  static constexpr std::string_view kMinimal = R"(
[message]
from = "News <news@example.com>"
subject = "Hello"
text = "Hi"
[recipients]
file = "recipients.csv"
)";
  TempDir dir_;
};

TEST_F(LoadTaskTest, MinimalTaskGetsDefaults) {
  Result<TaskConfig> got = Load(kMinimal);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->id, "november");
  EXPECT_EQ(got->title, "november");
  EXPECT_EQ(got->accounts_file, dir_.Path("accounts.toml"));
  EXPECT_EQ(got->store_file, dir_.Path("herald.db"));
  EXPECT_EQ(got->message.from.display_name, "News");
  EXPECT_EQ(got->message.from.address.ToString(), "news@example.com");
  EXPECT_EQ(got->recipients.file, dir_.Path("recipients.csv"));
  EXPECT_EQ(got->recipients.address_column, "email");
  EXPECT_EQ(got->sending.concurrency, 1u);
  EXPECT_EQ(got->sending.retries, 3u);
  EXPECT_EQ(got->sending.retry_delay, std::chrono::hours(1));
  EXPECT_TRUE(got->backup.folder.empty());
}

TEST_F(LoadTaskTest, ReadsEverySetting) {
  dir_.Write("blacklist.txt", "*@spam.example\n");
  Result<TaskConfig> got = Load(R"(
id = "nov-2026"
title = "November newsletter"
accounts = "conf/accounts.toml"
store = "state/herald.db"

[message]
from = "news@example.com"
from_name = "{%agent%} at Example"
reply_to = "help@example.com"
to_name = "{%firstname%}"
subject = "Hello {%firstname|friend%}"
text_file = "body.txt"
html = "<p>Hello</p>"
attachments = ["program.pdf", { path = "program.pdf", name = "Programm für Sie.pdf", content_type = "application/pdf" }]
headers = { "X-Campaign" = "nov", "List-Id" = "<news.example.com>" }
sensitivity = "company-confidential"

[recipients]
file = "recipients.csv"
address_column = "E-Mail"
delimiter = ";"
bad_rows = "fail"
blacklists = ["blacklist.txt"]

[sending]
mode = "turbo"
accounts = ["relay"]
concurrency = 8
limit = 500
block_size = 100
block_pause = "5m"
pending_delay = "10m"
retries = 5
retry_delay = "30m"
retry_backoff = 2.0
on_limit = "stop"
reset_before = true
reset_errors_after = true

[backup]
folder = "sent"
file_name = "{%task_title%}/{%recipient%}.eml"
)");
  ASSERT_TRUE(got.ok()) << got.status().message();
  const TaskConfig& task = *got;
  EXPECT_EQ(task.id, "nov-2026");
  EXPECT_EQ(task.accounts_file, dir_.Path("conf/accounts.toml"));
  EXPECT_EQ(task.store_file, dir_.Path("state/herald.db"));
  EXPECT_EQ(task.message.from_name, "{%agent%} at Example");
  EXPECT_EQ(task.message.text_body, "Hello {%firstname%}\n");
  EXPECT_EQ(task.message.text_body_origin, dir_.Path("body.txt"));
  EXPECT_EQ(task.message.html_body, "<p>Hello</p>");
  ASSERT_EQ(task.message.attachments.size(), 2u);
  EXPECT_EQ(task.message.attachments[1].file_name, "Programm für Sie.pdf");
  ASSERT_EQ(task.message.headers.size(), 2u);
  EXPECT_EQ(task.message.sensitivity, Sensitivity::kCompanyConfidential);
  EXPECT_EQ(task.recipients.address_column, "E-Mail");
  EXPECT_EQ(task.recipients.delimiter, ';');
  EXPECT_EQ(task.recipients.bad_rows, BadRows::kFail);
  EXPECT_EQ(task.recipients.blacklists, std::vector<std::string>{dir_.Path("blacklist.txt")});
  EXPECT_EQ(task.sending.mode, SendMode::kTurbo);
  EXPECT_EQ(task.sending.concurrency, 8u);
  EXPECT_EQ(task.sending.limit, 500u);
  EXPECT_EQ(task.sending.block_pause, std::chrono::minutes(5));
  EXPECT_EQ(task.sending.pending_delay, std::chrono::minutes(10));
  EXPECT_EQ(task.sending.retry_backoff, 2.0);
  EXPECT_EQ(task.sending.on_limit, OnLimit::kStop);
  EXPECT_TRUE(task.sending.reset_before);
  EXPECT_EQ(task.backup.folder, dir_.Path("sent"));
}

TEST_F(LoadTaskTest, ErrorsNameFileLineKeyAndExpectation) {
  struct Case {
    std::string toml;
    std::vector<const char*> want;
  };
  const std::string body = "\n[recipients]\nfile = \"recipients.csv\"\n";
  const Case cases[] = {
      {"[message]\nsubject = \"x\"\ntext = \"y\"" + body, {"message.from", "is required"}},
      {"[message]\nfrom = \"not an address\"\nsubject = \"x\"\ntext = \"y\"" + body, {"november.toml:2:", "message.from"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"" + body, {"a body is required"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext_file = \"missing.txt\"" + body,
       {"message.text_file", "missing.txt"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\ntext_file = \"body.txt\"" + body,
       {"either text or text_file"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\nattachments = [\"nope.pdf\"]" + body,
       {"message.attachments[0]", "nope.pdf does not exist"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\nheaders = { Bcc = \"x@example.com\" }" + body,
       {"message.headers.Bcc", "written by herald itself"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\nheaders = { \"X Bad\" = \"v\" }" + body,
       {"is not a header name"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\nsensitivity = \"secret\"" + body,
       {"message.sensitivity", "\"secret\" is not one of"}},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\n[recipients]\nfile = \"none.csv\"\n",
       {"recipients.file", "none.csv does not exist"}},
      {std::string(kMinimal) + "[sending]\nconcurrency = 300\n", {"sending.concurrency", "from 1 to 256, got 300"}},
      {std::string(kMinimal) + "[sending]\nretry_backoff = 0.5\n", {"sending.retry_backoff"}},
      {std::string(kMinimal) + "[sending]\nblock_pause = \"1m\"\n", {"needs block_size"}},
      {std::string(kMinimal) + "[sending]\nmode = \"fast\"\n", {"sending.mode"}},
      {std::string(kMinimal) + "[sending]\nparallel = 4\n", {"sending.parallel", "unknown setting"}},
      {std::string(kMinimal) + "[backup]\nfile_name = \"x\"\n", {"backup.folder", "is required"}},
      {"id = \"../evil\"\n" + std::string(kMinimal), {"november.toml:1:6: id", "is not a task id"}},
      {std::string(kMinimal) + "[extra]\n", {"extra", "unknown setting"}},
  };
  for (const Case& c : cases) {
    std::string message = LoadError(c.toml);
    for (const char* want : c.want) EXPECT_THAT(message, HasSubstr(want)) << "for:\n" << c.toml;
    ExpectFileNamedOncePerLine(message, dir_.Path("november.toml"));
  }
}

TEST_F(LoadTaskTest, UnknownKeysSuggestTheSettingMeant) {
  struct Case {
    std::string toml;
    const char* want;
  };
  const std::string kMinimalText(kMinimal);
  const Case cases[] = {
      {kMinimalText + "[sending]\nparallel = 4\n", "sending.parallel: unknown setting; did you mean \"concurrency\"?"},
      {kMinimalText + "[sending]\nmax_retries = 4\n", "sending.max_retries: unknown setting; did you mean \"retries\"?"},
      {kMinimalText + "[sending]\nconcurency = 4\n", "sending.concurency: unknown setting; did you mean \"concurrency\"?"},
      {kMinimalText + "[backup]\nfolder = \"b\"\npath = \"x\"\n", "backup.path: unknown setting; did you mean \"folder\"?"},
      {"titel = \"x\"\n" + kMinimalText, "titel: unknown setting; did you mean \"title\"?"},
      {"[message]\nsender = \"a@example.com\"\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\n"
       "[recipients]\nfile = \"recipients.csv\"\n",
       "message.sender: unknown setting; did you mean \"from\"?"},
      {"[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext = \"y\"\n[recipients]\nfile = \"recipients.csv\"\n"
       "csv = \"r.csv\"\nemail_column = \"mail\"\n",
       "recipients.email_column: unknown setting; did you mean \"address_column\"?"},
  };
  for (const Case& c : cases) EXPECT_THAT(LoadError(c.toml), HasSubstr(c.want)) << c.toml;
}

TEST_F(LoadTaskTest, BodyFilesInOtherEncodings) {
  dir_.Write("latin1.txt", "Gr\xFC\xDF" "e {%firstname%}\n");
  dir_.Write("body.html", "<html><head><meta charset=\"iso-8859-2\"></head><body><p>\xA3ukasz</p></body></html>");
  const std::string message =
      "[message]\nfrom = \"a@example.com\"\nsubject = \"x\"\ntext_file = \"latin1.txt\"\nhtml_file = \"body.html\"\n";
  const std::string recipients = "[recipients]\nfile = \"recipients.csv\"\n";
  Result<TaskConfig> got = Load(message + recipients);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->message.text_body, "Grüße {%firstname%}\n");
  EXPECT_EQ(got->message.text_body_encoding, "windows-1252 (the file is not UTF-8; message.fallback_encoding)");
  EXPECT_EQ(got->message.html_body, "<html><head><meta charset=\"utf-8\"></head><body><p>Łukasz</p></body></html>");
  EXPECT_EQ(got->message.html_body_encoding, "iso-8859-2 (declared by the file's <meta>)");

  Result<TaskConfig> central = Load(message + "fallback_encoding = \"windows-1250\"\n" + recipients);
  ASSERT_TRUE(central.ok()) << central.status().message();
  EXPECT_EQ(central->message.text_body, "Grüße {%firstname%}\n");  // ü and ß are the same in Windows-1250

  EXPECT_THAT(LoadError(message + "encoding = \"utf-8\"\n" + recipients),
              HasSubstr("message.text_file: " + dir_.Path("latin1.txt") +
                        " is not UTF-8 (invalid byte 0xFC at offset 2); save it as UTF-8 or set message.encoding"));
  EXPECT_THAT(LoadError(message + "encoding = \"windows-1252\"\nfallback_encoding = \"windows-1250\"\n" + recipients),
              HasSubstr("message.fallback_encoding: is used only with encoding = \"auto\""));
}

TEST_F(LoadTaskTest, RecipientListEncoding) {
  Result<TaskConfig> got = Load(std::string(kMinimal) + "encoding = \"utf-16le\"\n");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->recipients.encoding.name, "utf-16le");
  Result<TaskConfig> fallback =
      Load(std::string(kMinimal) + "encoding = \"auto\"\nfallback_encoding = \"ISO-8859-2\"\n");
  ASSERT_TRUE(fallback.ok()) << fallback.status().message();
  EXPECT_EQ(fallback->recipients.encoding.name, "auto");
  EXPECT_EQ(fallback->recipients.encoding.fallback, "ISO-8859-2");
  Result<TaskConfig> defaults = Load(kMinimal);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->recipients.encoding.name, "auto");
  EXPECT_EQ(defaults->recipients.encoding.fallback, "windows-1252");

  const std::string unknown = LoadError(std::string(kMinimal) + "encoding = \"latin-99\"\n");
  EXPECT_THAT(unknown, HasSubstr("november.toml:8:12: recipients.encoding: expected \"auto\" or a character set: "
                                 "\"latin-99\" is not a character set this system can read; common names: utf-8,"));
  EXPECT_THAT(unknown, HasSubstr("windows-1250 (Central Europe)"));
  EXPECT_THAT(LoadError(std::string(kMinimal) + "fallback_encoding = \"cp1252//TRANSLIT\"\n"),
              HasSubstr("recipients.fallback_encoding: \"cp1252//TRANSLIT\" is not a character set"));
}

TEST_F(LoadTaskTest, ChecksAccountNames) {
  Result<TaskConfig> task = Load(std::string(kMinimal) + "[sending]\naccounts = [\"nope\"]\n");
  ASSERT_TRUE(task.ok()) << task.status().message();
  AccountSet accounts({AccountConfig{.name = "relay"}});
  Status status = CheckTaskAccounts(*task, accounts);
  EXPECT_THAT(status.message(), HasSubstr("no account \"nope\""));
  EXPECT_THAT(status.message(), HasSubstr("expected one of: relay"));
}

TEST(SecretTest, ReadsEnvironmentAndFileWithoutLeakingTheValue) {
  TempDir dir;
  setenv("HERALD_TEST_SECRET", "s3cret", 1);
  EXPECT_EQ(*ReadSecret(SecretRef{.env = "HERALD_TEST_SECRET"}), "s3cret");
  EXPECT_EQ(*ReadSecret(SecretRef{.file = dir.Write("token", "tok\r\n")}), "tok");

  Result<std::string> unset = ReadSecret(SecretRef{.env = "HERALD_TEST_UNSET_SECRET"});
  ASSERT_FALSE(unset.ok());
  EXPECT_THAT(unset.status().message(), HasSubstr("HERALD_TEST_UNSET_SECRET"));

  Result<std::string> multiline = ReadSecret(SecretRef{.file = dir.Write("bad", "line1\nline2")});
  ASSERT_FALSE(multiline.ok());
  EXPECT_THAT(multiline.status().message(), ::testing::Not(HasSubstr("line1")));

  Result<std::string> empty = ReadSecret(SecretRef{.file = dir.Write("empty", "\n")});
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("is empty"));
}

TEST(SecretTest, AFolderIsNotAnEmptySecretFile) {
  TempDir dir;
  std::filesystem::create_directory(dir.Path("secrets"));
  Result<std::string> folder = ReadSecret(SecretRef{.file = dir.Path("secrets")});
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().message(),
            "the secret file " + dir.Path("secrets") + " is a folder; expected a file holding the secret");
}

}  // namespace
}  // namespace herald
