// Accounts: the outgoing paths a sending task can use (docs/settings.md, "The accounts file"), as read from
// an accounts file by LoadAccounts() (config/loader.h). Plain values, validated on load; the
// behaviour behind each setting lives in transport/ and engine/. Immutable after loading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "address/address.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/units.h"

namespace herald {

enum class AccountKind {
  kSmtp,    // a relay: the provider's or company's SMTP server
  kDirect,  // no relay: MX lookup and delivery to each recipient's mail server
  kEws,     // Exchange Web Services (on-premises Exchange)
  kGraph,   // Microsoft 365 through Microsoft Graph sendMail
  kGmail,   // preset for Gmail / Google Workspace over SMTP
  kPickup,  // .eml files written into a folder
};
std::string_view AccountKindName(AccountKind kind);

// Connection security of an SMTP or POP3 server.
enum class Security {
  kNone,      // plain text (credentials only with allow_plaintext_auth)
  kStartTls,  // STARTTLS (RFC 3207) / STLS (RFC 2595), required: nothing is sent without it
  kTls,       // implicit TLS from the first byte (port 465 / 995)
};
std::string_view SecurityName(Security security);

// TLS policy for direct delivery, where the receiving servers are not chosen by the user.
enum class TlsPolicy {
  kOpportunistic,  // encrypt whenever STARTTLS is offered; deliver in clear otherwise
  kRequired,       // never deliver in clear; any certificate accepted (RFC 7435 style)
  kVerify,         // the certificate must be valid for the MX host name
};
std::string_view TlsPolicyName(TlsPolicy policy);

enum class AuthMode {
  kNone,
  kPassword,  // PLAIN, LOGIN or CRAM-MD5, picked from what the server offers
  kXoauth2,   // an OAuth2 access token (Gmail, Microsoft 365)
};
std::string_view AuthModeName(AuthMode mode);

enum class PasswordMechanism { kPlain, kLogin, kCramMd5 };

// Which Gmail a gmail account is: Google's sending limits differ (config/loader.cc, GmailPreset).
enum class GmailPlan {
  kFree,       // a free Gmail account (…@gmail.com), or a Google Workspace trial
  kWorkspace,  // a paid Google Workspace account
};
std::string_view GmailPlanName(GmailPlan plan);

// Where a secret lives. The secret itself is read only when needed (config/secret.h) and never
// appears in logs or error text.
struct SecretRef {
  std::string env;   // name of an environment variable, or
  std::string file;  // path of a file holding it (trailing newline ignored)

  bool empty() const { return env.empty() && file.empty(); }
  std::string Describe() const;  // "environment variable RELAY_PASSWORD" / "file /etc/..."
};

// POP-before-SMTP: a POP3 login that opens the relay for this client for a while.
struct PopBeforeSmtp {
  std::string host;
  std::uint16_t port = 110;
  Security security = Security::kNone;  // kStartTls is STLS
  std::string ca_file;
  bool verify_certificate = true;
  std::string username;
  SecretRef password;
  Duration valid_for = std::chrono::minutes(5);  // log in again after this long
};

// Limits for one destination domain of a direct account (big providers publish theirs).
struct DestinationRule {
  std::string domain;                   // A-label, lowercase
  std::uint32_t max_connections = 0;    // 0: the account's destination default
  Duration minimum_wait{0};
  std::vector<SendingLimit> limits;
  std::optional<TlsPolicy> tls_policy;
};

struct AccountConfig {
  std::string name;
  AccountKind kind = AccountKind::kSmtp;
  std::string origin;  // "accounts.toml:12" where the account is defined, for messages

  // Server (smtp, gmail; ews uses url).
  std::string host;
  std::uint16_t port = 25;
  Security security = Security::kStartTls;
  std::string ca_file;
  bool verify_certificate = true;

  // Authentication.
  AuthMode auth = AuthMode::kNone;
  std::vector<PasswordMechanism> password_mechanisms;  // allowed; empty: all
  std::string username;
  SecretRef password;
  SecretRef oauth2_token;
  bool allow_plaintext_auth = false;
  std::optional<PopBeforeSmtp> pop_before_smtp;

  // Identity and connections.
  std::string helo_name;      // empty: the machine's fully qualified name
  std::string local_address;  // IP address to bind; empty: any
  Duration timeout = std::chrono::seconds(60);
  std::uint32_t max_connections = 1;
  std::uint32_t reconnect_every = 999;
  Duration pause_between_chunks{0};
  Duration minimum_wait{0};
  std::vector<SendingLimit> limits;
  std::uint32_t recipients_per_message = 50;  // turbo mode: recipients in one transaction
  // The largest message this account takes, in bytes as sent (encoded); 0: no limit of its own
  // (an SMTP server's SIZE still applies). The provider's limit, e.g. 25 MB.
  std::uint64_t max_message_size = 0;

  // Failover and routing.
  std::string secondary;  // name of the fallback account; empty: none
  std::vector<AddressPattern> excluded_domains;
  std::vector<AddressPattern> only_senders;
  std::vector<AddressPattern> only_recipients;
  std::optional<Address> fixed_sender;

  // Defaults for messages without them.
  std::optional<Mailbox> default_reply_to;
  std::string default_sender_name;

  // direct
  std::string dns_server;  // "ip" or "ip:port" / "[ipv6]:port"; empty: the system's resolver
  TlsPolicy tls_policy = TlsPolicy::kOpportunistic;
  bool mta_sts = true;
  std::uint32_t destination_max_connections = 2;  // per destination domain
  std::vector<DestinationRule> destinations;
  // The [[account.destination]] rule for `domain` (an A-label, lowercase); null when none.
  const DestinationRule* DestinationRuleFor(std::string_view domain) const;

  // Where its mail goes, for people: "smtp.example.com:587 starttls", the pickup folder, or the
  // kind ("direct").
  std::string Where() const;

  // ews, graph
  std::string url;          // EWS endpoint (https://host/EWS/Exchange.asmx)
  std::string tenant_id;    // graph
  std::string client_id;    // graph
  SecretRef client_secret;  // graph: app credentials (client credentials grant)
  std::string mailbox;      // graph: the user to send as (UPN or id)
  std::string graph_endpoint = "https://graph.microsoft.com";
  std::string token_endpoint = "https://login.microsoftonline.com";

  // pickup
  std::string folder;

  // gmail: the plan whose limits the preset holds (they are in `limits`)
  GmailPlan gmail_plan = GmailPlan::kWorkspace;
};

// All accounts of one accounts file, in file order (routing tries them in this order).
class AccountSet {
 public:
  AccountSet() = default;
  explicit AccountSet(std::vector<AccountConfig> accounts) : accounts_(std::move(accounts)) {}

  const std::vector<AccountConfig>& accounts() const { return accounts_; }
  const AccountConfig* Find(std::string_view name) const;
  // The names, comma-separated, for "expected one of" messages.
  std::string Names() const;

 private:
  std::vector<AccountConfig> accounts_;
};

}  // namespace herald
