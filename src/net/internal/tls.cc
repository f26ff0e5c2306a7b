#include "net/internal/tls.h"

#include <arpa/inet.h>

#include <ctime>
#include <map>
#include <mutex>

#include <asio/ip/address.hpp>
#include <asio/ssl/error.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/text.h"

namespace herald::net_internal {
namespace {

constexpr std::size_t kMaxTextBytes = 256;

// The oldest error on this thread's OpenSSL queue, in words; clears the queue.
std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : fmt::format("OpenSSL error {:#x}", code);
}

std::string AsnText(const ASN1_STRING* text) {
  return Printable(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                    static_cast<std::size_t>(ASN1_STRING_length(text))),
                   kMaxTextBytes);
}

std::string IpText(const ASN1_OCTET_STRING* bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  int length = ASN1_STRING_length(bytes);
  const unsigned char* data = ASN1_STRING_get0_data(bytes);
  if (length == 4 && inet_ntop(AF_INET, data, text, sizeof text) != nullptr) return text;
  if (length == 16 && inet_ntop(AF_INET6, data, text, sizeof text) != nullptr) return text;
  return "(malformed IP address)";
}

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  // RFC 2253 order and escaping, but UTF-8 left as is (Printable() shows it as \xNN).
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string text = Printable(std::string_view(data, static_cast<std::size_t>(length)), kMaxTextBytes);
  BIO_free(bio);
  return text;
}

std::string TimeText(const ASN1_TIME* time) {
  std::tm tm = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return "(unreadable time)";
  return FormatLocalTime(std::chrono::time_point_cast<Duration>(std::chrono::system_clock::from_time_t(timegm(&tm))));
}

std::string Join(const std::vector<std::string>& names) {
  if (names.empty()) return "no name";
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

bool IsIssuerUnknown(long result) {
  return result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
         result == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || result == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
         result == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

std::string CertificateFailureText(SSL* ssl, const std::string& server_name) {
  long result = SSL_get_verify_result(ssl);
  std::string reason = X509_verify_cert_error_string(result);
  std::optional<PeerCertificate> certificate = PeerCertificateOf(ssl);
  if (!certificate) return fmt::format("certificate of {} not trusted: {}", server_name, reason);
  if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    return fmt::format("certificate of {} not trusted: {}: certificate is for {} (issuer {})", server_name, reason,
                       Join(certificate->names), certificate->issuer);
  }
  std::string text = fmt::format("certificate of {} not trusted: {}; it is for {} (subject {}, issuer {}, valid until {})",
                                 server_name, reason, Join(certificate->names), certificate->subject,
                                 certificate->issuer, certificate->not_after);
  if (IsIssuerUnknown(result)) {
    text += "; if the server uses a private certificate authority, give its certificate as the account's CA file";
  }
  return text;
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> NewClientTlsContext(const std::string& ca_file) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (raw == nullptr) return Internal("cannot create a TLS context: " + TakeOpenSslError());
  auto context = std::make_shared<asio::ssl::context>(raw);  // owns `raw` from here
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  // Without a system store only `ca_file` is trusted; that is not an error by itself.
  if (SSL_CTX_set_default_verify_paths(raw) != 1) ERR_clear_error();
  if (!ca_file.empty() && SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr) != 1) {
    return InvalidArgument(fmt::format("cannot use the CA file {}: {}", ca_file, TakeOpenSslError()));
  }
  return context;
}

Result<std::shared_ptr<asio::ssl::context>> ClientTlsContext(const std::string& ca_file) {
  static std::mutex mutex;
  // Never destroyed: OpenSSL may already be cleaned up when static destructors run.
  static auto* contexts = new std::map<std::string, std::shared_ptr<asio::ssl::context>>();
  std::lock_guard lock(mutex);
  auto found = contexts->find(ca_file);
  if (found != contexts->end()) return found->second;
  Result<std::shared_ptr<asio::ssl::context>> made = NewClientTlsContext(ca_file);
  if (made.ok()) contexts->emplace(ca_file, *made);
  return made;
}

Status ConfigureClientSsl(SSL* ssl, const std::string& server_name, bool verify) {
  if (server_name.empty()) return InvalidArgument("TLS needs the server's name to check its certificate");
  SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  std::error_code not_ip;
  asio::ip::make_address(server_name, not_ip);
  ERR_clear_error();
  if (!not_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) != 1) {
      return InvalidArgument(fmt::format("cannot check a certificate for {}: {}", server_name, TakeOpenSslError()));
    }
    return Status::Ok();
  }
  if (HasLineBreakOrNul(server_name) || SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1) {
    return InvalidArgument(fmt::format("cannot send the server name {} (SNI): {}", Printable(server_name),
                                       TakeOpenSslError()));
  }
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (X509_VERIFY_PARAM_set1_host(param, server_name.data(), server_name.size()) != 1) {
    return InvalidArgument(fmt::format("cannot check a certificate for {}: {}", Printable(server_name),
                                       TakeOpenSslError()));
  }
  return Status::Ok();
}

PeerCertificate DescribeCertificate(X509* certificate) {
  PeerCertificate out;
  auto* alt_names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alt_names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names, i);
      if (name->type == GEN_DNS) out.names.push_back(AsnText(name->d.dNSName));
      if (name->type == GEN_IPADD) out.names.push_back(IpText(name->d.iPAddress));
    }
    GENERAL_NAMES_free(alt_names);
  }
  const X509_NAME* subject = X509_get_subject_name(certificate);
  if (out.names.empty()) {  // RFC 6125 §6.4.4: the CN only when there is no subjectAltName
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index >= 0) out.names.push_back(AsnText(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index))));
  }
  out.subject = NameText(subject);
  out.issuer = NameText(X509_get_issuer_name(certificate));
  out.not_after = TimeText(X509_get0_notAfter(certificate));
  return out;
}

std::optional<PeerCertificate> PeerCertificateOf(SSL* ssl) {
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) {
    // After a failed verification OpenSSL has not yet set the peer certificate; the chain the
    // server sent (leaf first) is there.
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    if (chain != nullptr && sk_X509_num(chain) > 0) leaf = sk_X509_value(chain, 0);
  }
  if (leaf == nullptr) return std::nullopt;
  PeerCertificate out = DescribeCertificate(leaf);
  long result = SSL_get_verify_result(ssl);
  out.verified = result == X509_V_OK;
  if (!out.verified) out.verify_error = X509_verify_cert_error_string(result);
  return out;
}

std::string HandshakeFailureText(SSL* ssl, const std::error_code& error, const std::string& server_name,
                                 const std::string& remote) {
  if (error.category() == asio::error::get_ssl_category()) {
    auto code = static_cast<unsigned long>(error.value());
    if (ERR_GET_LIB(code) == ERR_LIB_SSL) {
      switch (ERR_GET_REASON(code)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
          return CertificateFailureText(ssl, server_name);
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
          return fmt::format("protocol version too old: {} offers only TLS 1.1 or older; herald needs TLS 1.2 or newer",
                             remote);
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
          return fmt::format("TLS handshake with {} failed: the server did not answer in TLS ({}); is this a "
                             "port for plain text or STARTTLS?",
                             remote, ERR_reason_error_string(code));
        default:
          break;
      }
    }
    const char* reason = ERR_reason_error_string(code);
    return fmt::format("TLS handshake with {} failed: {}", remote, reason != nullptr ? reason : error.message());
  }
  if (error == asio::ssl::error::stream_truncated || error == asio::error::eof ||
      error == asio::error::connection_reset) {
    return fmt::format("TLS handshake with {} failed: the server closed the connection", remote);
  }
  return fmt::format("TLS handshake with {} failed: {}", remote, error.message());
}

std::string ProtocolName(SSL* ssl) { return SSL_get_version(ssl); }

std::string CipherName(SSL* ssl) {
  const char* name = SSL_get_cipher_name(ssl);
  return name != nullptr ? name : "";
}

}  // namespace herald::net_internal
