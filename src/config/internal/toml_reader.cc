#include "config/internal/toml_reader.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/text.h"
#include "core/units.h"

namespace herald::config_internal {
namespace {

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// `text` with C0 control characters and DEL written as \r, \n, \t or \xNN; everything else,
// UTF-8 included, as it is. Errors quote names and values from the file, and a line break in one
// must not start a line of the message that does not name the file, nor a control sequence reach
// the terminal (found by fuzz/config_fuzzer.cc).
std::string EscapeControls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7F) out += fmt::format("\\x{:02X}", u);
    else out += c;
  }
  return out;
}

// What other mail tools (mail clients, MTAs, mailing scripts and libraries) call herald's settings,
// for the hint on an unknown key: each name with herald's keys it may stand for, in order of
// likelihood; the first one the table has is suggested ("tls" is `security` in an SMTP account
// and `tls_policy` in a direct one).
struct Synonym {
  std::string_view name;
  std::vector<std::string_view> keys;
};

const std::vector<Synonym>& Synonyms() {
  static const auto* synonyms = new std::vector<Synonym>{
      // Accounts.
      {"server", {"host"}}, {"smtp_server", {"host"}}, {"smtp_host", {"host"}}, {"hostname", {"host"}},
      {"mail_server", {"host"}}, {"mailserver", {"host"}}, {"relay", {"host"}}, {"relay_host", {"host"}},
      {"relayhost", {"host"}}, {"smarthost", {"host"}}, {"smtp", {"host"}},
      {"smtp_port", {"port"}},
      {"user", {"username"}}, {"user_name", {"username"}}, {"login", {"username"}}, {"smtp_user", {"username"}},
      {"smtp_username", {"username"}},
      {"pass", {"password_env"}}, {"passwd", {"password_env"}}, {"pwd", {"password_env"}},
      {"secret", {"password_env"}}, {"smtp_password", {"password_env"}}, {"smtp_pass", {"password_env"}},
      {"ssl", {"security", "tls_policy"}}, {"tls", {"security", "tls_policy"}},
      {"starttls", {"security", "tls_policy"}}, {"encryption", {"security", "tls_policy"}},
      {"secure", {"security", "tls_policy"}}, {"use_ssl", {"security"}}, {"use_tls", {"security"}},
      {"smtp_tls", {"security", "tls_policy"}}, {"tls_mode", {"security", "tls_policy"}},
      {"ssl_mode", {"security"}}, {"smtp_tls_security_level", {"tls_policy"}},
      {"verify", {"verify_certificate"}}, {"verify_ssl", {"verify_certificate"}},
      {"verify_tls", {"verify_certificate"}}, {"tls_verify", {"verify_certificate"}},
      {"ssl_verify", {"verify_certificate"}}, {"check_certificate", {"verify_certificate"}},
      {"ca", {"ca_file"}}, {"cafile", {"ca_file"}}, {"ca_cert", {"ca_file"}}, {"ca_certificate", {"ca_file"}},
      {"ca_bundle", {"ca_file"}}, {"tls_ca_file", {"ca_file"}},
      {"type", {"kind"}}, {"provider", {"kind"}}, {"transport", {"kind"}}, {"protocol", {"kind"}},
      {"authentication", {"auth"}}, {"auth_method", {"auth_methods"}}, {"mechanisms", {"auth_methods"}},
      {"helo", {"helo_name"}}, {"ehlo", {"helo_name"}}, {"ehlo_name", {"helo_name"}},
      {"local_hostname", {"helo_name"}}, {"myhostname", {"helo_name"}},
      {"bind", {"local_address"}}, {"bind_address", {"local_address"}}, {"source_address", {"local_address"}},
      {"source_ip", {"local_address"}}, {"local_ip", {"local_address"}},
      {"connections", {"max_connections"}}, {"pool_size", {"max_connections"}},
      {"max_messages_per_connection", {"reconnect_every"}}, {"messages_per_connection", {"reconnect_every"}},
      {"rate", {"limits"}}, {"rate_limit", {"limits"}}, {"rate_limits", {"limits"}}, {"quota", {"limits"}},
      {"limit", {"limits"}},
      {"delay", {"minimum_wait", "retry_delay"}}, {"wait", {"minimum_wait"}}, {"throttle", {"minimum_wait"}},
      {"interval", {"minimum_wait"}},
      {"fallback", {"secondary"}}, {"failover", {"secondary"}}, {"backup", {"secondary"}},
      {"exclude", {"excluded_domains"}}, {"excluded", {"excluded_domains"}},
      {"exclude_domains", {"excluded_domains"}}, {"blocked_domains", {"excluded_domains"}},
      {"max_size", {"max_message_size"}}, {"size_limit", {"max_message_size"}},
      {"message_size_limit", {"max_message_size"}},
      {"dns", {"dns_server"}}, {"nameserver", {"dns_server"}}, {"resolver", {"dns_server"}},
      {"directory", {"folder"}}, {"dir", {"folder"}}, {"pickup_folder", {"folder"}}, {"path", {"folder", "file"}},
      {"connect_timeout", {"timeout"}},
      // Task files.
      {"sender", {"from"}}, {"from_address", {"from"}}, {"from_email", {"from"}}, {"mail_from", {"from"}},
      {"sender_name", {"from_name"}}, {"replyto", {"reply_to"}}, {"reply_address", {"reply_to"}},
      {"body", {"text"}}, {"text_body", {"text"}}, {"plain", {"text"}}, {"plaintext", {"text"}},
      {"body_file", {"text_file"}}, {"template", {"text_file"}}, {"html_body", {"html"}},
      {"html_template", {"html_file"}}, {"attachment", {"attachments"}}, {"attach", {"attachments"}},
      {"files", {"attachments"}}, {"header", {"headers"}}, {"extra_headers", {"headers"}},
      {"csv", {"file"}}, {"csv_file", {"file"}}, {"list", {"file"}}, {"recipients_file", {"file"}},
      {"email_column", {"address_column"}}, {"email_field", {"address_column"}},
      {"address_field", {"address_column"}}, {"column", {"address_column"}},
      {"separator", {"delimiter"}}, {"sep", {"delimiter"}}, {"delim", {"delimiter"}},
      {"parallel", {"concurrency"}}, {"threads", {"concurrency"}}, {"workers", {"concurrency"}},
      {"parallelism", {"concurrency"}}, {"concurrent", {"concurrency"}},
      {"max_retries", {"retries"}}, {"retry", {"retries"}}, {"retry_count", {"retries"}},
      {"attempts", {"retries"}}, {"retry_interval", {"retry_delay"}}, {"retry_after", {"retry_delay"}},
      {"batch_size", {"block_size"}}, {"chunk_size", {"block_size"}}, {"batch_pause", {"block_pause"}},
      {"batch_delay", {"block_pause"}}, {"send_delay", {"pending_delay"}}, {"undo_delay", {"pending_delay"}},
      {"via", {"accounts"}}, {"accounts_file", {"accounts"}}, {"store_file", {"store"}},
      {"database", {"store"}}, {"db", {"store"}},
  };
  return *synonyms;
}

}  // namespace

void Diagnostics::Error(const toml::node* node, std::string_view key, std::string_view message) {
  ErrorAt(node != nullptr ? node->source() : toml::source_region{}, key, message);
}

void Diagnostics::ErrorAt(const toml::source_region& where, std::string_view key, std::string_view message) {
  std::string location = file_;
  if (where.begin.line > 0) location += fmt::format(":{}:{}", where.begin.line, where.begin.column);
  if (key.empty()) {
    errors_.push_back(fmt::format("{}: {}", location, EscapeControls(message)));
  } else {
    errors_.push_back(fmt::format("{}: {}: {}", location, EscapeControls(key), EscapeControls(message)));
  }
}

void Diagnostics::NoteSetting(std::string_view key_path) {
  if (settings_read_ == nullptr) return;
  std::string name;
  bool in_index = false;
  for (char c : key_path) {
    if (c == '[') in_index = true;
    if (!in_index) name += c;
    if (c == ']') in_index = false;
  }
  settings_read_->insert(std::move(name));
}

std::string Diagnostics::Origin(const toml::node& node) const {
  return fmt::format("{}:{}", file_, node.source().begin.line);
}

Status Diagnostics::ToStatus() const {
  if (errors_.empty()) return Status::Ok();
  std::string message;
  for (const std::string& error : errors_) {
    if (!message.empty()) message += '\n';
    message += error;
  }
  return InvalidArgument(std::move(message));
}

TableReader::TableReader(const toml::table& table, std::string prefix, Diagnostics& diagnostics)
    : table_(table), prefix_(std::move(prefix)), diagnostics_(diagnostics) {}

std::string TableReader::KeyPath(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

bool TableReader::Has(std::string_view key) const { return table_.contains(key); }

const toml::node* TableReader::Node(std::string_view key) {
  known_.emplace(key);
  diagnostics_.NoteSetting(KeyPath(key));
  return table_.get(key);
}

void TableReader::Error(std::string_view key, std::string_view message) {
  const toml::node* node = table_.get(key);
  diagnostics_.Error(node != nullptr ? node : &table_, KeyPath(key), message);
}

void TableReader::Refuse(std::string_view key, std::string_view message) {
  if (!table_.contains(key)) return;
  known_.emplace(key);
  Error(key, message);
}

std::optional<std::string> TableReader::String(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  if (const auto* value = node->as_string()) {
    const std::string& text = value->get();
    if (text.find('\0') != std::string::npos) {
      Error(key, "contains a NUL character");
      return std::nullopt;
    }
    return text;
  }
  Error(key, fmt::format("expected a string, got {}", TypeName(*node)));
  return std::nullopt;
}

std::optional<std::string> TableReader::NonEmptyString(std::string_view key) {
  std::optional<std::string> text = String(key);
  if (text && TrimBlanks(*text).empty()) {
    Error(key, "is empty; expected a value or no key at all");
    return std::nullopt;
  }
  return text;
}

std::optional<std::int64_t> TableReader::Integer(std::string_view key, std::int64_t min, std::int64_t max) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_integer();
  if (value == nullptr) {
    Error(key, fmt::format("expected an integer from {} to {}, got {}", min, max, TypeName(*node)));
    return std::nullopt;
  }
  std::int64_t n = value->get();
  if (n < min || n > max) {
    Error(key, fmt::format("expected an integer from {} to {}, got {}", min, max, n));
    return std::nullopt;
  }
  return n;
}

std::optional<std::uint64_t> TableReader::ByteSize(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  if (const auto* bytes = node->as_integer(); bytes != nullptr && bytes->get() >= 0) {
    return static_cast<std::uint64_t>(bytes->get());
  }
  const auto* text = node->as_string();
  if (text == nullptr) {
    Error(key, fmt::format("expected a size like \"25MB\" or a number of bytes, got {}",
                           node->is_integer() ? "a negative integer" : TypeName(*node)));
    return std::nullopt;
  }
  Result<std::uint64_t> size = ParseByteSize(text->get());
  if (!size.ok()) {
    Error(key, size.status().message());
    return std::nullopt;
  }
  return *size;
}

std::optional<double> TableReader::Number(std::string_view key, double min, double max) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  std::optional<double> n;
  if (const auto* f = node->as_floating_point()) n = f->get();
  if (const auto* i = node->as_integer()) n = static_cast<double>(i->get());
  if (!n || std::isnan(*n) || *n < min || *n > max) {
    Error(key, fmt::format("expected a number from {} to {}", min, max));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> TableReader::Bool(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  if (const auto* value = node->as_boolean()) return value->get();
  Error(key, fmt::format("expected true or false, got {}", TypeName(*node)));
  return std::nullopt;
}

std::optional<Duration> TableReader::DurationValue(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_string();
  if (value == nullptr) {
    Error(key, fmt::format("expected a duration string like \"30s\", \"2m\" or \"1h\", got {}", TypeName(*node)));
    return std::nullopt;
  }
  Result<Duration> duration = ParseDuration(value->get());
  if (!duration.ok()) {
    Error(key, duration.status().message());
    return std::nullopt;
  }
  return *duration;
}

std::optional<std::vector<std::string>> TableReader::StringList(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  if (const auto* single = node->as_string()) return std::vector<std::string>{single->get()};
  const auto* array = node->as_array();
  if (array == nullptr) {
    Error(key, fmt::format("expected a list of strings, got {}", TypeName(*node)));
    return std::nullopt;
  }
  std::vector<std::string> items;
  bool ok = true;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    if (const auto* text = item.as_string()) {
      items.push_back(text->get());
    } else {
      diagnostics_.Error(&item, fmt::format("{}[{}]", KeyPath(key), i),
                         fmt::format("expected a string, got {}", TypeName(item)));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return items;
}

std::optional<std::string> TableReader::ChoiceWord(std::string_view key, std::string_view expected) {
  const toml::node* node = Node(key);
  if (node == nullptr) return std::nullopt;
  if (const auto* value = node->as_string()) return value->get();
  Error(key, fmt::format("expected one of {}, got {}", expected, TypeName(*node)));
  return std::nullopt;
}

const toml::table* TableReader::Table(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return nullptr;
  if (const auto* table = node->as_table()) return table;
  Error(key, fmt::format("expected a table, got {}", TypeName(*node)));
  return nullptr;
}

const toml::array* TableReader::Array(std::string_view key) {
  const toml::node* node = Node(key);
  if (node == nullptr) return nullptr;
  if (const auto* array = node->as_array()) return array;
  Error(key, fmt::format("expected an array, got {}", TypeName(*node)));
  return nullptr;
}

void TableReader::DoNotSuggest(std::string_view key) { not_suggested_.emplace(key); }

std::string_view TableReader::Suggestion(std::string_view unknown) const {
  auto suggestible = [this](std::string_view key) {
    return known_.count(key) > 0 && not_suggested_.count(key) == 0;
  };
  const std::string name = AsciiLowercase(unknown);
  for (const Synonym& synonym : Synonyms()) {
    if (synonym.name != name) continue;
    for (std::string_view key : synonym.keys) {
      if (suggestible(key)) return key;
    }
  }
  std::vector<std::string_view> candidates;
  for (const std::string& key : known_) {
    if (suggestible(key)) candidates.push_back(key);
  }
  return ClosestWord(unknown, candidates);
}

void TableReader::Finish() {
  for (const auto& [key, node] : table_) {
    if (known_.count(key.str()) > 0) continue;
    std::string_view suggestion = Suggestion(key.str());
    diagnostics_.ErrorAt(key.source(), KeyPath(key.str()),
                         suggestion.empty() ? std::string("unknown setting; check its spelling and the section it is in")
                                            : fmt::format("unknown setting; did you mean \"{}\"?", suggestion));
  }
}

Result<toml::table> ParseTomlFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("{}: cannot open the file", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return IoError(fmt::format("{}: read error", path));
  try {
    return toml::parse(buffer.str(), path);
  } catch (const toml::parse_error& error) {
    // toml++ quotes what it saw, raw: "expected 'true', saw 't<LF>'".
    return InvalidArgument(fmt::format("{}:{}:{}: {}", path, error.source().begin.line, error.source().begin.column,
                                       EscapeControls(error.description())));
  }
}

}  // namespace herald::config_internal
