#include "smtp/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/text.h"
#include "smtp/command.h"
#include "smtp/internal/base64.h"

namespace herald::smtp {
namespace {

using smtp_internal::DecodeBase64;
using smtp_internal::EncodeBase64;

void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

// A string that is overwritten when it goes out of scope, for temporaries holding secrets.
struct ScopedSecret {
  std::string value;
  ~ScopedSecret() { Cleanse(value); }
};

std::string JoinOffered(const std::vector<std::string>& offered) {
  if (offered.empty()) return "no AUTH mechanism";
  std::string out = "AUTH";
  for (const std::string& m : offered) {
    out += ' ';
    out += Printable(m, 30);
  }
  return out;
}

std::string JoinMechanisms(const std::vector<Mechanism>& mechanisms) {
  std::string out;
  for (Mechanism m : mechanisms) {
    if (!out.empty()) out += ", ";
    out += MechanismName(m);
  }
  return out;
}

bool Contains(const std::vector<Mechanism>& list, Mechanism m) {
  return std::find(list.begin(), list.end(), m) != list.end();
}

bool HasControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

// Reads a JSON string starting at text[pos] == '"'; returns its content (escapes kept simple:
// \" \\ \/ and the letter escapes; \u is kept as written). Advances pos past the closing quote.
std::optional<std::string> JsonString(std::string_view text, std::size_t& pos) {
  if (pos >= text.size() || text[pos] != '"') return std::nullopt;
  std::string out;
  for (++pos; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c == '"') {
      ++pos;
      return out;
    }
    if (c == '\\') {
      if (++pos >= text.size()) return std::nullopt;
      c = text[pos];
      switch (c) {
        case 'n': out += ' '; break;
        case 't': out += ' '; break;
        case 'r': case 'b': case 'f': break;
        case 'u': out += "\\u"; break;
        default: out += c;
      }
      continue;
    }
    out += c;
  }
  return std::nullopt;
}

void SkipSpace(std::string_view text, std::size_t& pos) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r' || text[pos] == '\n')) {
    ++pos;
  }
}

std::optional<std::string> DescribeFlatJsonObject(std::string_view json) {
  std::size_t pos = 0;
  SkipSpace(json, pos);
  if (pos >= json.size() || json[pos] != '{') return std::nullopt;
  ++pos;
  std::string out;
  for (;;) {
    SkipSpace(json, pos);
    if (pos < json.size() && json[pos] == '}') break;
    std::optional<std::string> key = JsonString(json, pos);
    if (!key) return std::nullopt;
    SkipSpace(json, pos);
    if (pos >= json.size() || json[pos] != ':') return std::nullopt;
    ++pos;
    SkipSpace(json, pos);
    std::string value;
    if (pos < json.size() && json[pos] == '"') {
      std::optional<std::string> s = JsonString(json, pos);
      if (!s) return std::nullopt;
      value = std::move(*s);
    } else {
      const std::size_t end = json.find_first_of(",}", pos);
      if (end == std::string_view::npos) return std::nullopt;
      value = std::string(TrimBlanks(json.substr(pos, end - pos)));
      if (value.empty() || value.front() == '{' || value.front() == '[') return std::nullopt;
      pos = end;
    }
    if (!out.empty()) out += ", ";
    out += Printable(*key, 40);
    out += ' ';
    out += Printable(value, 200);
    SkipSpace(json, pos);
    if (pos < json.size() && json[pos] == ',') {
      ++pos;
      continue;
    }
    if (pos < json.size() && json[pos] == '}') break;
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string_view MechanismName(Mechanism mechanism) {
  switch (mechanism) {
    case Mechanism::kPlain: return "PLAIN";
    case Mechanism::kLogin: return "LOGIN";
    case Mechanism::kCramMd5: return "CRAM-MD5";
    case Mechanism::kXoauth2: return "XOAUTH2";
  }
  return "?";
}

std::optional<Mechanism> MechanismFromName(std::string_view name) {
  for (Mechanism m : {Mechanism::kPlain, Mechanism::kLogin, Mechanism::kCramMd5, Mechanism::kXoauth2}) {
    if (EqualsIgnoreCase(name, MechanismName(m))) return m;
  }
  return std::nullopt;
}

Result<Mechanism> ChooseMechanism(const std::vector<std::string>& offered, const AuthPolicy& policy) {
  std::vector<Mechanism> allowed = policy.allowed;
  if (allowed.empty()) allowed = {Mechanism::kPlain, Mechanism::kLogin, Mechanism::kCramMd5};
  auto is_offered = [&](Mechanism m) {
    return std::any_of(offered.begin(), offered.end(),
                       [&](const std::string& o) { return EqualsIgnoreCase(o, MechanismName(m)); });
  };
  auto usable = [&](Mechanism m) { return Contains(allowed, m) && is_offered(m); };

  const Mechanism with_tls[] = {Mechanism::kXoauth2, Mechanism::kPlain, Mechanism::kLogin, Mechanism::kCramMd5};
  const Mechanism without_tls[] = {Mechanism::kCramMd5, Mechanism::kXoauth2, Mechanism::kPlain, Mechanism::kLogin};
  bool cleartext_refused = false;
  for (Mechanism m : policy.tls_active ? with_tls : without_tls) {
    if (!usable(m)) continue;
    // Only CRAM-MD5 keeps the secret off an unencrypted wire.
    if (!policy.tls_active && m != Mechanism::kCramMd5 && !policy.allow_plaintext) {
      cleartext_refused = true;
      continue;
    }
    return m;
  }
  if (cleartext_refused) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("the server offers {} without TLS; of the mechanisms the account allows ({}) "
                              "none protects the credentials on an unencrypted connection, so none were sent "
                              "(use security = \"starttls\" or \"tls\", or set allow_plaintext_auth = true)",
                              JoinOffered(offered), JoinMechanisms(allowed)));
  }
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("the server offers {}; the account allows {}", JoinOffered(offered),
                            JoinMechanisms(allowed)));
}

Result<SaslClient> SaslClient::Create(Mechanism mechanism, std::string user, std::string secret) {
  auto fail = [&](std::string message) {
    Cleanse(secret);
    return Status(StatusCode::kInvalidArgument, fmt::format("AUTH {}: {}", MechanismName(mechanism), message));
  };
  if (user.empty()) return fail("the user name is empty");
  if (secret.empty()) return fail(mechanism == Mechanism::kXoauth2 ? "the access token is empty" : "the password is empty");
  if (user.find('\0') != std::string::npos) return fail("the user name contains NUL");
  if (secret.find('\0') != std::string::npos) return fail("the secret contains NUL");
  if (mechanism == Mechanism::kXoauth2 && (HasControl(user) || HasControl(secret))) {
    return fail("the user name or token contains control characters");
  }
  return SaslClient(mechanism, std::move(user), std::move(secret));
}

SaslClient::SaslClient(SaslClient&& other) noexcept
    : mechanism_(other.mechanism_),
      user_(other.user_),
      secret_(other.secret_),
      answers_(other.answers_),
      sent_user_(other.sent_user_),
      server_error_(std::move(other.server_error_)) {
  other.Wipe();
}

SaslClient& SaslClient::operator=(SaslClient&& other) noexcept {
  if (this != &other) {
    Wipe();
    mechanism_ = other.mechanism_;
    user_ = other.user_;
    secret_ = other.secret_;
    answers_ = other.answers_;
    sent_user_ = other.sent_user_;
    server_error_ = std::move(other.server_error_);
    other.Wipe();
  }
  return *this;
}

SaslClient::~SaslClient() { Wipe(); }

void SaslClient::Wipe() {
  Cleanse(user_);
  Cleanse(secret_);
}

Result<std::string> SaslClient::InitialCommand() const {
  switch (mechanism_) {
    case Mechanism::kPlain: {
      // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; authzid left empty.
      ScopedSecret message;
      message.value.reserve(user_.size() + secret_.size() + 2);
      message.value.push_back('\0');
      message.value.append(user_);
      message.value.push_back('\0');
      message.value.append(secret_);
      ScopedSecret encoded{EncodeBase64(message.value)};
      return AuthCommand("PLAIN", encoded.value);
    }
    case Mechanism::kXoauth2: {
      ScopedSecret message;
      message.value.reserve(user_.size() + secret_.size() + 22);
      message.value.append("user=").append(user_).append("\x01" "auth=Bearer ").append(secret_).append("\x01\x01");
      ScopedSecret encoded{EncodeBase64(message.value)};
      return AuthCommand("XOAUTH2", encoded.value);
    }
    case Mechanism::kLogin:
      return AuthCommand("LOGIN");
    case Mechanism::kCramMd5:
      return AuthCommand("CRAM-MD5");
  }
  return Internal("unknown SASL mechanism");
}

Result<std::string> SaslClient::Answer(std::string_view challenge) {
  const std::string_view name = MechanismName(mechanism_);
  auto unexpected = [&]() {
    return InvalidArgument(fmt::format("AUTH {}: unexpected challenge '{}' from the server", name,
                                       Printable(challenge, 60)));
  };
  std::optional<std::string> decoded = DecodeBase64(TrimBlanks(challenge));
  if (!decoded) {
    return InvalidArgument(fmt::format("AUTH {}: the server's challenge '{}' is not base64", name,
                                       Printable(challenge, 60)));
  }
  ++answers_;
  switch (mechanism_) {
    case Mechanism::kPlain: {
      if (answers_ > 1 || !decoded->empty()) return unexpected();
      ScopedSecret message;
      message.value.push_back('\0');
      message.value.append(user_);
      message.value.push_back('\0');
      message.value.append(secret_);
      ScopedSecret encoded{EncodeBase64(message.value)};
      return AuthResponseLine(encoded.value);
    }
    case Mechanism::kLogin: {
      if (answers_ > 2) return unexpected();
      const std::string prompt = AsciiLowercase(*decoded);
      bool want_password;
      if (prompt.find("pass") != std::string::npos) {
        want_password = true;
      } else if (prompt.find("user") != std::string::npos) {
        want_password = false;
      } else {
        want_password = sent_user_;
      }
      if (want_password) {
        ScopedSecret encoded{EncodeBase64(secret_)};
        return AuthResponseLine(encoded.value);
      }
      sent_user_ = true;
      return AuthResponseLine(EncodeBase64(user_));
    }
    case Mechanism::kCramMd5: {
      if (answers_ > 1 || decoded->empty()) return unexpected();
      return AuthResponseLine(EncodeBase64(CramMd5Response(user_, secret_, *decoded)));
    }
    case Mechanism::kXoauth2: {
      if (answers_ > 1) return unexpected();
      server_error_ = DescribeXoauth2Error(*decoded);
      // The server waits for an empty line before it sends the final 5xx (Google's XOAUTH2 docs).
      return std::string("\r\n");
    }
  }
  return Internal("unknown SASL mechanism");
}

std::string CramMd5Response(std::string_view user, std::string_view password, std::string_view challenge) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  HMAC(EVP_md5(), password.data(), static_cast<int>(password.size()),
       reinterpret_cast<const unsigned char*>(challenge.data()), challenge.size(), digest, &digest_size);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(user);
  out.push_back(' ');
  for (unsigned int i = 0; i < digest_size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  OPENSSL_cleanse(digest, sizeof digest);
  return out;
}

std::string DescribeXoauth2Error(std::string_view json) {
  if (std::optional<std::string> described = DescribeFlatJsonObject(json)) return *described;
  return Printable(json, 200);
}

std::string RedactForLog(std::string_view command_line) {
  std::string_view line = command_line;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const std::size_t space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  if (EqualsIgnoreCase(verb, "AUTH") && space != std::string_view::npos) {
    std::string_view rest = line.substr(space + 1);
    const std::size_t mech_end = rest.find(' ');
    std::string out = "AUTH ";
    out += Printable(rest.substr(0, mech_end), 20);
    if (mech_end != std::string_view::npos) out += " ****";
    return out;
  }
  static constexpr std::string_view kKnown[] = {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "QUIT",
                                                "NOOP", "STARTTLS", "VRFY", "EXPN", "HELP", "BDAT"};
  for (std::string_view known : kKnown) {
    if (EqualsIgnoreCase(verb, known)) return Printable(line, 600);
  }
  // Inside an AUTH exchange the client's lines are base64 credentials; nothing else is sent bare.
  return "****";
}

}  // namespace herald::smtp
