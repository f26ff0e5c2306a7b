#include "config/loader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "config/internal/toml_reader.h"
#include "config/task_file.h"
#include "core/text.h"

namespace herald {

std::string_view AccountKindName(AccountKind kind) {
  switch (kind) {
    case AccountKind::kSmtp: return "smtp";
    case AccountKind::kDirect: return "direct";
    case AccountKind::kEws: return "ews";
    case AccountKind::kGraph: return "graph";
    case AccountKind::kGmail: return "gmail";
    case AccountKind::kPickup: return "pickup";
  }
  return "?";
}

std::string_view SecurityName(Security security) {
  switch (security) {
    case Security::kNone: return "none";
    case Security::kStartTls: return "starttls";
    case Security::kTls: return "tls";
  }
  return "?";
}

std::string_view GmailPlanName(GmailPlan plan) {
  switch (plan) {
    case GmailPlan::kFree: return "free";
    case GmailPlan::kWorkspace: return "workspace";
  }
  return "?";
}

std::string_view TlsPolicyName(TlsPolicy policy) {
  switch (policy) {
    case TlsPolicy::kOpportunistic: return "opportunistic";
    case TlsPolicy::kRequired: return "required";
    case TlsPolicy::kVerify: return "verify";
  }
  return "?";
}

std::string_view AuthModeName(AuthMode mode) {
  switch (mode) {
    case AuthMode::kNone: return "none";
    case AuthMode::kPassword: return "password";
    case AuthMode::kXoauth2: return "xoauth2";
  }
  return "?";
}

const DestinationRule* AccountConfig::DestinationRuleFor(std::string_view domain) const {
  for (const DestinationRule& rule : destinations) {
    if (rule.domain == domain) return &rule;
  }
  return nullptr;
}

std::string AccountConfig::Where() const {
  if (kind == AccountKind::kPickup) return folder;
  if (host.empty()) return std::string(AccountKindName(kind));
  return fmt::format("{}:{} {}", host, port, SecurityName(security));
}

const AccountConfig* AccountSet::Find(std::string_view name) const {
  for (const AccountConfig& account : accounts_) {
    if (account.name == name) return &account;
  }
  return nullptr;
}

std::string AccountSet::Names() const {
  std::string names;
  for (const AccountConfig& account : accounts_) {
    if (!names.empty()) names += ", ";
    names += account.name;
  }
  return names.empty() ? "(none)" : names;
}

namespace {

namespace fs = std::filesystem;
using config_internal::Diagnostics;
using config_internal::ParseTomlFile;
using config_internal::TableReader;

// A path from a config file, relative to that file's folder unless absolute.
std::string ResolvePath(const std::string& config_file, const std::string& path) {
  fs::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (fs::absolute(config_file).parent_path() / p).lexically_normal().string();
}

bool IsIpAddress(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// Which account kinds a setting applies to; settings not listed apply to every kind.
const std::map<std::string_view, std::set<AccountKind>>& KindsOfSetting() {
  using K = AccountKind;
  static const auto* kinds = new std::map<std::string_view, std::set<AccountKind>>{
      {"host", {K::kSmtp, K::kGmail}},
      {"port", {K::kSmtp, K::kGmail, K::kDirect}},
      {"security", {K::kSmtp, K::kGmail}},
      {"ca_file", {K::kSmtp, K::kGmail, K::kDirect, K::kEws, K::kGraph}},
      {"verify_certificate", {K::kSmtp, K::kGmail, K::kEws, K::kGraph}},
      {"auth", {K::kSmtp, K::kGmail, K::kEws}},
      {"auth_methods", {K::kSmtp, K::kGmail}},
      {"username", {K::kSmtp, K::kGmail, K::kEws}},
      {"password_env", {K::kSmtp, K::kGmail, K::kEws}},
      {"password_file", {K::kSmtp, K::kGmail, K::kEws}},
      {"oauth2_token_env", {K::kSmtp, K::kGmail, K::kEws, K::kGraph}},
      {"oauth2_token_file", {K::kSmtp, K::kGmail, K::kEws, K::kGraph}},
      {"allow_plaintext_auth", {K::kSmtp}},
      {"pop_before_smtp", {K::kSmtp}},
      {"helo_name", {K::kSmtp, K::kGmail, K::kDirect}},
      {"local_address", {K::kSmtp, K::kGmail, K::kDirect}},
      {"reconnect_every", {K::kSmtp, K::kGmail, K::kDirect, K::kEws, K::kGraph}},
      {"pause_between_chunks", {K::kSmtp, K::kGmail, K::kDirect, K::kEws, K::kGraph}},
      {"recipients_per_message", {K::kSmtp, K::kGmail, K::kDirect, K::kEws, K::kGraph}},
      {"dns_server", {K::kDirect}},
      {"tls_policy", {K::kDirect}},
      {"mta_sts", {K::kDirect}},
      {"destination_max_connections", {K::kDirect}},
      {"destination", {K::kDirect}},
      {"url", {K::kEws}},
      {"tenant_id", {K::kGraph}},
      {"client_id", {K::kGraph}},
      {"client_secret_env", {K::kGraph}},
      {"client_secret_file", {K::kGraph}},
      {"mailbox", {K::kGraph}},
      {"graph_endpoint", {K::kGraph}},
      {"token_endpoint", {K::kGraph}},
      {"folder", {K::kPickup}},
      {"plan", {K::kGmail}},
  };
  return *kinds;
}

// Reads a secret reference from `<base>_env` / `<base>_file`; at most one of them.
SecretRef ReadSecretRef(TableReader& table, std::string_view base, const std::string& config_file) {
  SecretRef ref;
  std::string env_key = fmt::format("{}_env", base);
  std::string file_key = fmt::format("{}_file", base);
  if (std::optional<std::string> env = table.NonEmptyString(env_key)) ref.env = *env;
  if (std::optional<std::string> file = table.NonEmptyString(file_key)) ref.file = ResolvePath(config_file, *file);
  if (!ref.env.empty() && !ref.file.empty()) {
    table.Error(file_key, fmt::format("set either {} or {}, not both", env_key, file_key));
  }
  table.Refuse(base, fmt::format("secrets are not written into configuration files; name an environment "
                                 "variable with {} or a file with {}",
                                 env_key, file_key));
  return ref;
}

std::vector<AddressPattern> ReadPatterns(TableReader& table, std::string_view key, bool domains_only) {
  std::vector<AddressPattern> patterns;
  std::optional<std::vector<std::string>> items = table.StringList(key);
  if (!items) return patterns;
  for (const std::string& item : *items) {
    Result<AddressPattern> pattern = AddressPattern::Parse(item);
    if (!pattern.ok()) {
      table.Error(key, pattern.status().message());
      continue;
    }
    if (domains_only && item.find('@') != std::string::npos && item.rfind("*@", 0) != 0) {
      table.Error(key, fmt::format("\"{}\" is an address; expected a domain like \"example.com\"", item));
      continue;
    }
    patterns.push_back(std::move(*pattern));
  }
  return patterns;
}

std::vector<SendingLimit> ReadLimits(TableReader& table) {
  std::vector<SendingLimit> limits;
  std::optional<std::vector<std::string>> items = table.StringList("limits");
  if (!items) return limits;
  for (const std::string& item : *items) {
    Result<SendingLimit> limit = ParseSendingLimit(item);
    if (limit.ok()) {
      limits.push_back(*limit);
    } else {
      table.Error("limits", limit.status().message());
    }
  }
  return limits;
}

std::optional<Security> ReadSecurity(TableReader& table) {
  return table.Choice<Security>(
      "security", {{"none", Security::kNone}, {"starttls", Security::kStartTls}, {"tls", Security::kTls}});
}

void CheckFileExists(TableReader& table, std::string_view key, const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) table.Error(key, fmt::format("{} {} does not exist or is not a file", what, path));
}

std::optional<PopBeforeSmtp> ReadPopBeforeSmtp(TableReader& account, const AccountConfig& config,
                                               const std::string& file) {
  const toml::table* table = account.Table("pop_before_smtp");
  if (table == nullptr) return std::nullopt;
  TableReader pop(*table, account.KeyPath("pop_before_smtp"), account.diagnostics());
  PopBeforeSmtp settings;
  if (std::optional<std::string> host = pop.NonEmptyString("host")) {
    Result<std::string> checked = ParseServerHost(*host);
    if (checked.ok()) {
      settings.host = *checked;
    } else {
      pop.Error("host", checked.status().message());
    }
  } else if (!pop.Has("host")) {
    pop.Error("host", "is required: the POP3 server to log in to before sending");
  }
  std::optional<std::int64_t> port = pop.Integer("port", 1, 65535);
  std::optional<Security> security =
      pop.Choice<Security>("security", {{"none", Security::kNone}, {"stls", Security::kStartTls}, {"tls", Security::kTls}});
  settings.port = static_cast<std::uint16_t>(port.value_or(security == Security::kTls ? 995 : 110));
  settings.security = security.value_or(settings.port == 995 ? Security::kTls : Security::kStartTls);
  if (std::optional<std::string> ca = pop.NonEmptyString("ca_file")) {
    settings.ca_file = ResolvePath(file, *ca);
    CheckFileExists(pop, "ca_file", settings.ca_file, "the CA file");
  }
  settings.verify_certificate = pop.Bool("verify_certificate").value_or(true);
  settings.username = pop.NonEmptyString("username").value_or(config.username);
  settings.password = ReadSecretRef(pop, "password", file);
  if (settings.password.empty()) settings.password = config.password;
  if (settings.username.empty()) pop.Error("username", "is required (here or as the account's username)");
  if (settings.password.empty()) {
    pop.Error("password_env", "a password is required (here or as the account's password_env / password_file)");
  }
  if (std::optional<Duration> valid = pop.DurationValue("valid_for")) settings.valid_for = *valid;
  pop.Finish();
  return settings;
}

std::vector<DestinationRule> ReadDestinations(TableReader& account) {
  std::vector<DestinationRule> rules;
  const toml::array* array = account.Array("destination");
  if (array == nullptr) return rules;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = array->get(i)->as_table();
    std::string prefix = fmt::format("{}[{}]", account.KeyPath("destination"), i);
    if (table == nullptr) {
      account.diagnostics().Error(array->get(i), prefix, "expected a table ([[account.destination]])");
      continue;
    }
    TableReader reader(*table, prefix, account.diagnostics());
    DestinationRule rule;
    if (std::optional<std::string> domain = reader.NonEmptyString("domain")) {
      Result<Address> probe = ParseAddress("postmaster@" + *domain);
      if (probe.ok() && domain->find('@') == std::string::npos) {
        rule.domain = probe->domain;
      } else {
        reader.Error("domain", fmt::format("\"{}\" is not a domain like \"gmail.com\"", *domain));
      }
    } else {
      reader.Error("domain", "is required: the destination domain these limits apply to");
    }
    rule.max_connections = static_cast<std::uint32_t>(reader.Integer("max_connections", 1, 256).value_or(0));
    rule.minimum_wait = reader.DurationValue("minimum_wait").value_or(Duration(0));
    rule.limits = ReadLimits(reader);
    rule.tls_policy = reader.Choice<TlsPolicy>("tls_policy", {{"opportunistic", TlsPolicy::kOpportunistic},
                                                             {"required", TlsPolicy::kRequired},
                                                             {"verify", TlsPolicy::kVerify}});
    reader.Finish();
    rules.push_back(std::move(rule));
  }
  return rules;
}

// Google's published sending limits for Gmail over SMTP (checked 2026-12; Google changes them
// without notice, and counts them over a rolling 24 hours, as herald counts a "/day" limit):
// - Google Workspace, "Gmail sending limits in Google Workspace",
//   https://support.google.com/a/answer/166852: 2,000 messages a day per user (500 for trial
//   accounts); 100 recipients per message sent through smtp.gmail.com.
// - a free Gmail account, Gmail Help "You have reached a limit for sending mail",
//   https://support.google.com/mail/answer/22839: 500 a day; 500 recipients per message on the
//   web, 100 through a mail program (SMTP). herald counts every recipient of a turbo message.
struct GmailPreset {
  SendingLimit per_day;
  std::uint32_t recipients_per_message;
};

GmailPreset PresetOf(GmailPlan plan) {
  switch (plan) {
    case GmailPlan::kFree: return {SendingLimit{500, LimitWindow::kDay}, 100};
    case GmailPlan::kWorkspace: break;
  }
  return {SendingLimit{2000, LimitWindow::kDay}, 100};
}

// A gmail account's plan (`plan`, or from the username's domain: gmail.com and googlemail.com are
// free accounts, any other domain a Workspace one) and its preset: the plan's daily limit holds
// besides the user's own `limits`, and recipients_per_message may only be lowered.
void ApplyGmailPreset(TableReader& table, std::optional<GmailPlan> plan, bool recipients_per_message_set,
                      AccountConfig& account) {
  if (!plan) {
    std::string_view domain = std::string_view(account.username).substr(account.username.rfind('@') + 1);
    bool free = account.username.find('@') == std::string::npos || EqualsIgnoreCase(domain, "gmail.com") ||
                EqualsIgnoreCase(domain, "googlemail.com");
    plan = free ? GmailPlan::kFree : GmailPlan::kWorkspace;
  }
  account.gmail_plan = *plan;
  const GmailPreset preset = PresetOf(*plan);
  account.limits.insert(account.limits.begin(), preset.per_day);
  if (!recipients_per_message_set) {
    account.recipients_per_message = preset.recipients_per_message;
  } else if (account.recipients_per_message > preset.recipients_per_message) {
    table.Error("recipients_per_message",
                fmt::format("Gmail takes at most {} recipients per message over SMTP (plan \"{}\")",
                            preset.recipients_per_message, GmailPlanName(*plan)));
  }
}

AccountConfig ReadAccount(TableReader& table, const std::string& file) {
  AccountConfig account;
  account.origin = table.diagnostics().Origin(table.table());
  if (std::optional<std::string> name = table.NonEmptyString("name")) {
    account.name = *name;
    if (HasLineBreakOrNul(*name)) table.Error("name", "must be on one line");
  } else if (!table.Has("name")) {
    table.Error("name", "is required: a descriptive name the task and other accounts refer to");
  }
  std::optional<AccountKind> kind = table.Choice<AccountKind>(
      "kind", {{"smtp", AccountKind::kSmtp}, {"direct", AccountKind::kDirect}, {"ews", AccountKind::kEws},
               {"graph", AccountKind::kGraph}, {"gmail", AccountKind::kGmail}, {"pickup", AccountKind::kPickup}});
  if (!kind && !table.Has("kind")) {
    table.Error("kind", "is required: one of \"smtp\", \"direct\", \"ews\", \"graph\", \"gmail\", \"pickup\"");
  }
  account.kind = kind.value_or(AccountKind::kSmtp);
  const AccountKind k = account.kind;

  // Settings that do not apply to this kind are errors, so a misplaced setting is never ignored;
  // nor are they suggested for an unknown key.
  if (kind) {
    for (const auto& [key, kinds] : KindsOfSetting()) {
      if (kinds.count(k) > 0) continue;
      table.DoNotSuggest(key);
      if (table.Has(key)) table.Error(key, fmt::format("does not apply to a {} account", AccountKindName(k)));
    }
  }

  // Server.
  if (k == AccountKind::kGmail) {
    account.host = "smtp.gmail.com";
    account.port = 465;
    account.security = Security::kTls;
  }
  if (std::optional<std::string> host = table.NonEmptyString("host")) {
    Result<std::string> checked = ParseServerHost(*host);
    if (checked.ok()) {
      account.host = *checked;
    } else {
      table.Error("host", checked.status().message());
    }
  } else if (k == AccountKind::kSmtp && !table.Has("host")) {
    table.Error("host", "is required: the SMTP server's name or address");
  }
  std::optional<std::int64_t> port = table.Integer("port", 1, 65535);
  std::optional<Security> security = ReadSecurity(table);
  if (k == AccountKind::kSmtp || k == AccountKind::kGmail) {
    // Port 465 means implicit TLS unless told otherwise (RFC 8314 §3.3).
    if (port) account.port = static_cast<std::uint16_t>(*port);
    else if (security == Security::kTls) account.port = 465;
    if (security) account.security = *security;
    else account.security = account.port == 465 ? Security::kTls : Security::kStartTls;
  } else if (k == AccountKind::kDirect) {
    account.port = static_cast<std::uint16_t>(port.value_or(25));
  }
  if (std::optional<std::string> ca = table.NonEmptyString("ca_file")) {
    account.ca_file = ResolvePath(file, *ca);
    CheckFileExists(table, "ca_file", account.ca_file, "the CA file");
  }
  account.verify_certificate = table.Bool("verify_certificate").value_or(true);

  // Authentication.
  account.username = table.NonEmptyString("username").value_or("");
  account.password = ReadSecretRef(table, "password", file);
  account.oauth2_token = ReadSecretRef(table, "oauth2_token", file);
  std::optional<AuthMode> auth = table.Choice<AuthMode>(
      "auth", {{"none", AuthMode::kNone}, {"password", AuthMode::kPassword}, {"xoauth2", AuthMode::kXoauth2}});
  if (auth) {
    account.auth = *auth;
  } else if (!account.oauth2_token.empty() && k != AccountKind::kGraph) {
    account.auth = AuthMode::kXoauth2;
  } else if (!account.username.empty() || !account.password.empty()) {
    account.auth = AuthMode::kPassword;
  }
  if (account.auth == AuthMode::kPassword) {
    if (account.username.empty()) table.Error("username", "is required for password authentication");
    if (account.password.empty()) {
      table.Error("password_env", "password authentication needs password_env or password_file");
    }
  } else if (account.auth == AuthMode::kXoauth2) {
    if (account.username.empty()) table.Error("username", "is required for XOAUTH2 (the mailbox's address)");
    if (account.oauth2_token.empty()) {
      table.Error("oauth2_token_env", "XOAUTH2 needs oauth2_token_env or oauth2_token_file");
    }
  } else if (k == AccountKind::kGmail) {
    table.Error("auth", "Gmail needs authentication: an app password (username + password_env/password_file) or "
                        "an OAuth2 token (oauth2_token_env/oauth2_token_file)");
  }
  if (std::optional<std::vector<std::string>> methods = table.StringList("auth_methods")) {
    for (const std::string& method : *methods) {
      if (EqualsIgnoreCase(method, "plain")) account.password_mechanisms.push_back(PasswordMechanism::kPlain);
      else if (EqualsIgnoreCase(method, "login")) account.password_mechanisms.push_back(PasswordMechanism::kLogin);
      else if (EqualsIgnoreCase(method, "cram-md5")) account.password_mechanisms.push_back(PasswordMechanism::kCramMd5);
      else table.Error("auth_methods", fmt::format("\"{}\" is not one of \"plain\", \"login\", \"cram-md5\"", method));
    }
  }
  account.allow_plaintext_auth = table.Bool("allow_plaintext_auth").value_or(false);
  account.pop_before_smtp = ReadPopBeforeSmtp(table, account, file);

  // Identity and connections.
  if (std::optional<std::string> helo = table.NonEmptyString("helo_name")) {
    Result<std::string> checked = ParseServerHost(*helo);
    if (checked.ok() && checked->find(':') == std::string::npos) {
      account.helo_name = *checked;
    } else {
      table.Error("helo_name", "expected a fully qualified host name like \"mail.example.com\"");
    }
  }
  if (std::optional<std::string> local = table.NonEmptyString("local_address")) {
    if (IsIpAddress(*local)) {
      account.local_address = *local;
    } else {
      table.Error("local_address", fmt::format("\"{}\" is not an IPv4 or IPv6 address", Printable(*local)));
    }
  }
  if (std::optional<Duration> timeout = table.DurationValue("timeout")) {
    if (*timeout < std::chrono::seconds(1)) table.Error("timeout", "expected at least 1s");
    else account.timeout = *timeout;
  }
  account.max_connections = static_cast<std::uint32_t>(
      table.Integer("max_connections", 1, 256).value_or(k == AccountKind::kDirect ? 16 : 1));
  account.reconnect_every = static_cast<std::uint32_t>(table.Integer("reconnect_every", 1, 1'000'000).value_or(999));
  account.pause_between_chunks = table.DurationValue("pause_between_chunks").value_or(Duration(0));
  account.minimum_wait = table.DurationValue("minimum_wait").value_or(Duration(0));
  account.limits = ReadLimits(table);
  std::optional<std::int64_t> recipients_per_message = table.Integer("recipients_per_message", 1, 1000);
  if (recipients_per_message) account.recipients_per_message = static_cast<std::uint32_t>(*recipients_per_message);
  std::optional<GmailPlan> plan =
      table.Choice<GmailPlan>("plan", {{"free", GmailPlan::kFree}, {"workspace", GmailPlan::kWorkspace}});
  if (k == AccountKind::kGmail) ApplyGmailPreset(table, plan, recipients_per_message.has_value(), account);
  account.max_message_size = table.ByteSize("max_message_size").value_or(0);

  // Failover and routing.
  account.secondary = table.NonEmptyString("secondary").value_or("");
  account.excluded_domains = ReadPatterns(table, "excluded_domains", /*domains_only=*/true);
  account.only_senders = ReadPatterns(table, "only_senders", /*domains_only=*/false);
  account.only_recipients = ReadPatterns(table, "only_recipients", /*domains_only=*/false);
  if (std::optional<std::string> fixed = table.NonEmptyString("fixed_sender")) {
    Result<Address> address = ParseAddress(*fixed);
    if (address.ok()) account.fixed_sender = *address;
    else table.Error("fixed_sender", address.status().message());
  }
  if (std::optional<std::string> reply_to = table.NonEmptyString("default_reply_to")) {
    Result<Mailbox> mailbox = ParseMailbox(*reply_to);
    if (mailbox.ok()) account.default_reply_to = *mailbox;
    else table.Error("default_reply_to", mailbox.status().message());
  }
  if (std::optional<std::string> sender_name = table.NonEmptyString("default_sender_name")) {
    if (HasLineBreakOrNul(*sender_name)) table.Error("default_sender_name", "must be on one line");
    else account.default_sender_name = *sender_name;
  }

  // direct
  if (std::optional<std::string> dns = table.NonEmptyString("dns_server")) {
    std::string host = *dns;
    std::size_t colon = dns->rfind(':');
    bool bracketed = !dns->empty() && (*dns)[0] == '[';
    if (bracketed) {
      std::size_t close = dns->find(']');
      host = close == std::string::npos ? "" : dns->substr(1, close - 1);
      std::string rest = close == std::string::npos ? "" : dns->substr(close + 1);
      if (!rest.empty() && (rest[0] != ':' || rest.size() < 2)) host.clear();
    } else if (colon != std::string::npos && dns->find(':') == colon) {
      host = dns->substr(0, colon);
    }
    if (IsIpAddress(host)) {
      account.dns_server = *dns;
    } else {
      table.Error("dns_server", "expected an IP address with an optional port: \"192.0.2.53\", \"127.0.0.1:5353\" "
                                "or \"[::1]:53\"");
    }
  }
  if (std::optional<TlsPolicy> policy = table.Choice<TlsPolicy>(
          "tls_policy", {{"opportunistic", TlsPolicy::kOpportunistic},
                         {"required", TlsPolicy::kRequired},
                         {"verify", TlsPolicy::kVerify}})) {
    account.tls_policy = *policy;
  }
  account.mta_sts = table.Bool("mta_sts").value_or(true);
  account.destination_max_connections =
      static_cast<std::uint32_t>(table.Integer("destination_max_connections", 1, 256).value_or(2));
  account.destinations = ReadDestinations(table);

  // ews
  if (std::optional<std::string> url = table.NonEmptyString("url")) {
    if (url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0) {
      table.Error("url", "expected the EWS address, like \"https://mail.example.com/EWS/Exchange.asmx\"");
    } else {
      account.url = *url;
    }
  } else if (k == AccountKind::kEws && !table.Has("url")) {
    table.Error("url", "is required: the EWS address, like \"https://mail.example.com/EWS/Exchange.asmx\"");
  }
  if (k == AccountKind::kEws && account.auth == AuthMode::kNone) {
    table.Error("auth", "Exchange needs a username with password_env/password_file, or an OAuth2 token");
  }

  // graph
  account.tenant_id = table.NonEmptyString("tenant_id").value_or("");
  account.client_id = table.NonEmptyString("client_id").value_or("");
  account.client_secret = ReadSecretRef(table, "client_secret", file);
  account.mailbox = table.NonEmptyString("mailbox").value_or("");
  account.graph_endpoint = table.NonEmptyString("graph_endpoint").value_or(account.graph_endpoint);
  account.token_endpoint = table.NonEmptyString("token_endpoint").value_or(account.token_endpoint);
  if (k == AccountKind::kGraph) {
    if (account.mailbox.empty()) table.Error("mailbox", "is required: the user to send as (address or id)");
    bool app = !account.tenant_id.empty() || !account.client_id.empty() || !account.client_secret.empty();
    if (app && (account.tenant_id.empty() || account.client_id.empty() || account.client_secret.empty())) {
      table.Error("client_id", "app credentials need tenant_id, client_id and client_secret_env/client_secret_file");
    }
    if (!app && account.oauth2_token.empty()) {
      table.Error("oauth2_token_env", "Microsoft Graph needs app credentials (tenant_id, client_id, "
                                      "client_secret_env) or an access token (oauth2_token_env/oauth2_token_file)");
    }
  }

  // pickup
  if (std::optional<std::string> folder = table.NonEmptyString("folder")) {
    account.folder = ResolvePath(file, *folder);
  } else if (k == AccountKind::kPickup && !table.Has("folder")) {
    table.Error("folder", "is required: the folder the .eml files are written to");
  }

  table.Finish();
  return account;
}

// Where an account is written, for errors that concern it as a whole or its secondary.
struct AccountPlace {
  std::uint32_t line = 0;                 // of its [[account]] table
  const toml::node* secondary = nullptr;  // its `secondary` value; null when it has none
  std::string secondary_key;              // "account[2].secondary"
};

// Secondary accounts must exist and must not lead back to an account already on the chain.
void CheckSecondaries(const std::vector<AccountConfig>& accounts, const std::vector<AccountPlace>& places,
                      Diagnostics& diagnostics) {
  auto find = [&](std::string_view name) -> const AccountConfig* {
    for (const AccountConfig& account : accounts) {
      if (account.name == name) return &account;
    }
    return nullptr;
  };
  std::string names;
  for (const AccountConfig& account : accounts) names += (names.empty() ? "" : ", ") + account.name;
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    const AccountConfig& account = accounts[i];
    if (account.secondary.empty()) continue;
    if (find(account.secondary) == nullptr) {
      diagnostics.Error(places[i].secondary, places[i].secondary_key,
                        fmt::format("no account is named \"{}\"; the accounts are: {}", account.secondary, names));
      continue;
    }
    std::vector<std::string> chain = {account.name};
    const AccountConfig* next = find(account.secondary);
    while (next != nullptr) {
      if (std::find(chain.begin(), chain.end(), next->name) != chain.end()) {
        chain.push_back(next->name);
        std::string loop;
        for (const std::string& name : chain) loop += (loop.empty() ? "" : " -> ") + name;
        diagnostics.Error(places[i].secondary, places[i].secondary_key,
                          fmt::format("secondary accounts form a loop: {}", loop));
        break;
      }
      chain.push_back(next->name);
      next = next->secondary.empty() ? nullptr : find(next->secondary);
    }
  }
}

// `encoding` and `fallback_encoding` of a table (merge/text_encoding.h).
TextEncoding ReadEncoding(TableReader& table) {
  TextEncoding encoding;
  if (std::optional<std::string> name = table.NonEmptyString("encoding"); name && *name != kAutoEncoding) {
    if (Status known = CheckCharset(*name); known.ok()) {
      encoding.name = *name;
    } else {
      table.Error("encoding", fmt::format("expected \"auto\" or a character set: {}", known.message()));
    }
  }
  if (std::optional<std::string> name = table.NonEmptyString("fallback_encoding")) {
    if (Status known = CheckCharset(*name); known.ok()) {
      encoding.fallback = *name;
    } else {
      table.Error("fallback_encoding", known.message());
    }
    if (encoding.name != kAutoEncoding) {
      table.Error("fallback_encoding", "is used only with encoding = \"auto\"");
    }
  }
  return encoding;
}

Result<DecodedText> ReadTextFile(const std::string& path, const TextEncoding& encoding, bool html) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("cannot open {}", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return IoError(fmt::format("read error in {}", path));
  return DecodeTextFile(buffer.str(), encoding, html, path, "message");
}

// Reads a body given inline (`<key>`) or as a file (`<key>_file`, in `encoding`).
void ReadBody(TableReader& table, std::string_view key, const std::string& file, const TextEncoding& encoding,
              std::string& body, std::string& origin, std::string& how_read) {
  std::string file_key = fmt::format("{}_file", key);
  std::optional<std::string> inline_text = table.String(key);
  std::optional<std::string> body_file = table.NonEmptyString(file_key);
  if (inline_text && body_file) {
    table.Error(file_key, fmt::format("set either {} or {}, not both", key, file_key));
    return;
  }
  if (inline_text) {
    if (std::size_t bad = FindInvalidUtf8(*inline_text); bad != std::string::npos) {
      table.Error(key, "is not valid UTF-8");
      return;
    }
    body = *inline_text;
    origin = table.KeyPath(key);
  } else if (body_file) {
    std::string path = ResolvePath(file, *body_file);
    Result<DecodedText> text = ReadTextFile(path, encoding, key == "html");
    if (!text.ok()) {
      table.Error(file_key, text.status().message());
      return;
    }
    body = std::move(text->text);
    how_read = std::move(text->how);
    origin = path;
  }
}

bool IsReservedHeader(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "from",     "to",         "cc",          "bcc",         "subject",          "date",
      "message-id", "mime-version", "reply-to", "sender",     "sensitivity",      "return-path",
      "received", "content-type", "content-transfer-encoding", "content-disposition", "dkim-signature"};
  for (std::string_view reserved : kReserved) {
    if (EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

// RFC 5322 §3.6.8: field-name = 1*ftext, ftext = printable US-ASCII except ':'.
bool IsFieldName(std::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  for (char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

void ReadMessage(TableReader& root, TaskConfig& task) {
  const toml::table* table = root.Table("message");
  if (table == nullptr) {
    if (!root.Has("message")) root.Error("message", "a [message] section is required (from, subject, body)");
    return;
  }
  TableReader message(*table, "message", root.diagnostics());
  MessageConfig& config = task.message;
  if (std::optional<std::string> from = message.NonEmptyString("from")) {
    Result<Mailbox> mailbox = ParseMailbox(*from);
    if (mailbox.ok()) config.from = *mailbox;
    else message.Error("from", mailbox.status().message());
  } else if (!message.Has("from")) {
    message.Error("from", "is required: the sender, like \"Example News <news@example.com>\"");
  }
  config.from_name = message.NonEmptyString("from_name").value_or("");
  if (!config.from_name.empty() && !config.from.display_name.empty()) {
    message.Error("from_name", "from already has a display name; set it in one place");
  }
  if (std::optional<std::string> reply_to = message.NonEmptyString("reply_to")) {
    Result<Mailbox> mailbox = ParseMailbox(*reply_to);
    if (mailbox.ok()) config.reply_to = *mailbox;
    else message.Error("reply_to", mailbox.status().message());
  }
  config.to_name = message.NonEmptyString("to_name").value_or("");
  if (std::optional<std::string> subject = message.String("subject")) {
    config.subject = *subject;
  } else if (!message.Has("subject")) {
    message.Error("subject", "is required");
  }
  const TextEncoding encoding = ReadEncoding(message);
  ReadBody(message, "text", task.path, encoding, config.text_body, config.text_body_origin, config.text_body_encoding);
  ReadBody(message, "html", task.path, encoding, config.html_body, config.html_body_origin, config.html_body_encoding);
  if (config.text_body.empty() && config.html_body.empty() && !message.Has("text") && !message.Has("text_file") &&
      !message.Has("html") && !message.Has("html_file")) {
    message.Error("text", "a body is required: text, text_file, html or html_file");
  }
  if (const toml::array* attachments = message.Array("attachments")) {
    for (std::size_t i = 0; i < attachments->size(); ++i) {
      const toml::node& item = *attachments->get(i);
      std::string key = fmt::format("message.attachments[{}]", i);
      AttachmentSpec spec;
      if (const auto* path = item.as_string()) {
        spec.path = ResolvePath(task.path, path->get());
      } else if (const auto* inline_table = item.as_table()) {
        TableReader attachment(*inline_table, key, root.diagnostics());
        if (std::optional<std::string> path = attachment.NonEmptyString("path")) {
          spec.path = ResolvePath(task.path, *path);
        } else {
          attachment.Error("path", "is required");
        }
        spec.file_name = attachment.NonEmptyString("name").value_or("");
        spec.content_type = attachment.NonEmptyString("content_type").value_or("");
        if (HasLineBreakOrNul(spec.file_name) || HasLineBreakOrNul(spec.content_type)) {
          attachment.Error("name", "must be on one line");
        }
        attachment.Finish();
      } else {
        root.diagnostics().Error(&item, key, "expected a file path or { path = \"...\", name = \"...\" }");
        continue;
      }
      std::error_code ec;
      if (!spec.path.empty() && !fs::is_regular_file(spec.path, ec)) {
        root.diagnostics().Error(&item, key, fmt::format("the file {} does not exist", spec.path));
      }
      config.attachments.push_back(std::move(spec));
    }
  }
  if (const toml::table* headers = message.Table("headers")) {
    for (const auto& [name, value] : *headers) {
      std::string key = fmt::format("message.headers.{}", name.str());
      if (!IsFieldName(name.str())) {
        root.diagnostics().Error(&value, key, "is not a header name (printable ASCII without spaces or ':')");
      } else if (IsReservedHeader(name.str())) {
        root.diagnostics().Error(&value, key, "is written by herald itself; set it with its own setting");
      } else if (const auto* text = value.as_string()) {
        config.headers.emplace_back(std::string(name.str()), text->get());
      } else {
        root.diagnostics().Error(&value, key, "expected a string");
      }
    }
  }
  config.sensitivity = message
                           .Choice<Sensitivity>("sensitivity", {{"normal", Sensitivity::kNormal},
                                                                {"personal", Sensitivity::kPersonal},
                                                                {"private", Sensitivity::kPrivate},
                                                                {"company-confidential",
                                                                 Sensitivity::kCompanyConfidential}})
                           .value_or(Sensitivity::kNormal);
  message.Finish();
}

void ReadRecipients(TableReader& root, TaskConfig& task) {
  const toml::table* table = root.Table("recipients");
  if (table == nullptr) {
    if (!root.Has("recipients")) root.Error("recipients", "a [recipients] section with the file is required");
    return;
  }
  TableReader recipients(*table, "recipients", root.diagnostics());
  RecipientsConfig& config = task.recipients;
  if (std::optional<std::string> file = recipients.NonEmptyString("file")) {
    config.file = ResolvePath(task.path, *file);
    CheckFileExists(recipients, "file", config.file, "the recipient list");
  } else if (!recipients.Has("file")) {
    recipients.Error("file", "is required: the CSV file with one recipient per row");
  }
  config.address_column = recipients.NonEmptyString("address_column").value_or("email");
  config.delimiter = recipients
                         .Choice<char>("delimiter",
                                       {{"auto", '\0'}, {",", ','}, {";", ';'}, {"tab", '\t'}, {"\t", '\t'}})
                         .value_or('\0');
  config.encoding = ReadEncoding(recipients);
  config.bad_rows =
      recipients.Choice<BadRows>("bad_rows", {{"skip", BadRows::kSkip}, {"fail", BadRows::kFail}})
          .value_or(BadRows::kSkip);
  if (std::optional<std::vector<std::string>> blacklists = recipients.StringList("blacklists")) {
    for (const std::string& path : *blacklists) {
      std::string resolved = ResolvePath(task.path, path);
      CheckFileExists(recipients, "blacklists", resolved, "the blacklist");
      config.blacklists.push_back(std::move(resolved));
    }
  }
  recipients.Finish();
}

void ReadSending(TableReader& root, TaskConfig& task) {
  const toml::table* table = root.Table("sending");
  if (table == nullptr) return;
  TableReader sending(*table, "sending", root.diagnostics());
  SendingConfig& config = task.sending;
  config.mode = sending
                    .Choice<SendMode>("mode", {{"personalised", SendMode::kPersonalised},
                                               {"personalized", SendMode::kPersonalised},
                                               {"turbo", SendMode::kTurbo}})
                    .value_or(SendMode::kPersonalised);
  config.accounts = sending.StringList("accounts").value_or(std::vector<std::string>{});
  config.concurrency = static_cast<std::uint32_t>(sending.Integer("concurrency", 1, 256).value_or(1));
  config.limit = static_cast<std::uint64_t>(sending.Integer("limit", 0, INT64_MAX).value_or(0));
  config.block_size = static_cast<std::uint64_t>(sending.Integer("block_size", 0, INT64_MAX).value_or(0));
  config.block_pause = sending.DurationValue("block_pause").value_or(Duration(0));
  if (config.block_size == 0 && config.block_pause.count() > 0) {
    sending.Error("block_pause", "needs block_size: the number of messages after which to pause");
  }
  config.pending_delay = sending.DurationValue("pending_delay").value_or(Duration(0));
  config.retries = static_cast<std::uint32_t>(sending.Integer("retries", 0, 100).value_or(3));
  config.retry_delay = sending.DurationValue("retry_delay").value_or(std::chrono::hours(1));
  config.retry_backoff = sending.Number("retry_backoff", 1.0, 10.0).value_or(1.0);
  config.on_limit =
      sending.Choice<OnLimit>("on_limit", {{"wait", OnLimit::kWait}, {"stop", OnLimit::kStop}}).value_or(OnLimit::kWait);
  config.reset_before = sending.Bool("reset_before").value_or(false);
  config.reset_errors_after = sending.Bool("reset_errors_after").value_or(false);
  sending.Finish();
}

void ReadBackup(TableReader& root, TaskConfig& task) {
  const toml::table* table = root.Table("backup");
  if (table == nullptr) return;
  TableReader backup(*table, "backup", root.diagnostics());
  if (std::optional<std::string> folder = backup.NonEmptyString("folder")) {
    task.backup.folder = ResolvePath(task.path, *folder);
  } else if (!backup.Has("folder")) {
    backup.Error("folder", "is required: where the copies of sent messages go");
  }
  task.backup.file_name = backup.NonEmptyString("file_name").value_or(task.backup.file_name);
  backup.Finish();
}

bool IsTaskId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return id[0] != '.';
}

}  // namespace

Result<AccountSet> LoadAccounts(const std::string& path, std::set<std::string>* settings_read) {
  Result<toml::table> parsed = ParseTomlFile(path);
  if (!parsed.ok()) return parsed.status();
  Diagnostics diagnostics(path, settings_read);
  TableReader root(*parsed, "", diagnostics);
  std::vector<AccountConfig> accounts;
  std::vector<AccountPlace> places;
  if (const toml::array* array = root.Array("account")) {
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::table* table = array->get(i)->as_table();
      if (table == nullptr) {
        diagnostics.Error(array->get(i), fmt::format("account[{}]", i), "expected a table ([[account]])");
        continue;
      }
      TableReader reader(*table, fmt::format("account[{}]", i), diagnostics);
      AccountConfig account = ReadAccount(reader, path);
      for (std::size_t j = 0; j < accounts.size(); ++j) {
        if (!account.name.empty() && accounts[j].name == account.name) {
          diagnostics.Error(table->get("name"), reader.KeyPath("name"),
                            fmt::format("\"{}\" is already the name of the account on line {}", account.name,
                                        places[j].line));
        }
      }
      accounts.push_back(std::move(account));
      places.push_back({table->source().begin.line, table->get("secondary"), reader.KeyPath("secondary")});
    }
    if (array->empty()) root.Error("account", "no accounts; add an [[account]] table");
  } else if (!root.Has("account")) {
    root.Error("account", "no accounts; add an [[account]] table with name and kind");
  }
  root.Finish();
  CheckSecondaries(accounts, places, diagnostics);
  HERALD_RETURN_IF_ERROR(diagnostics.ToStatus());
  return AccountSet(std::move(accounts));
}

Result<TaskConfig> LoadTask(const std::string& path, std::set<std::string>* settings_read) {
  Result<toml::table> parsed = ParseTomlFile(path);
  if (!parsed.ok()) return parsed.status();
  Diagnostics diagnostics(path, settings_read);
  TableReader root(*parsed, "", diagnostics);
  TaskConfig task;
  task.path = fs::absolute(path).lexically_normal().string();
  task.accounts_file = ResolvePath(task.path, root.NonEmptyString("accounts").value_or("accounts.toml"));
  // The store sits beside the accounts file by default, so that every task sending through the
  // same accounts shares their send counters (sending limits hold across tasks).
  if (std::optional<std::string> store = root.NonEmptyString("store")) {
    task.store_file = ResolvePath(task.path, *store);
  } else {
    task.store_file = ResolvePath(task.accounts_file, "herald.db");
  }
  std::optional<std::string> id = root.NonEmptyString("id");
  task.id_given = id.has_value();
  task.id = id ? *id : DefaultTaskId(task.path, task.store_file);
  if (!IsTaskId(task.id)) {
    root.Error("id", fmt::format("\"{}\" is not a task id; expected letters, digits, '-', '_' and '.' (at most 128)",
                                 Printable(task.id)));
  }
  task.title = root.String("title").value_or(task.id);
  if (HasLineBreakOrNul(task.title)) root.Error("title", "must be on one line");
  ReadMessage(root, task);
  ReadRecipients(root, task);
  ReadSending(root, task);
  ReadBackup(root, task);
  root.Finish();
  HERALD_RETURN_IF_ERROR(diagnostics.ToStatus());
  return task;
}

Status CheckTaskAccounts(const TaskConfig& task, const AccountSet& accounts) {
  for (const std::string& name : task.sending.accounts) {
    if (accounts.Find(name) == nullptr) {
      return InvalidArgument(fmt::format("{}: sending.accounts: no account \"{}\" in {}; expected one of: {}",
                                         task.path, Printable(name), task.accounts_file, accounts.Names()));
    }
  }
  if (accounts.accounts().empty()) return InvalidArgument(fmt::format("{}: no accounts", task.accounts_file));
  return Status::Ok();
}

}  // namespace herald
