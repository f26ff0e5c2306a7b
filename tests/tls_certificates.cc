#include "tls_certificates.h"

#include <stdio.h>

#include <stdexcept>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace herald {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  unsigned long code = ERR_get_error();
  char reason[256] = "no OpenSSL error";
  if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
  throw std::runtime_error("test certificates: " + what + ": " + reason);
}

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

PkeyPtr NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) Fail("generating an EC key");
  return key;
}

long Seconds(std::chrono::seconds s) { return static_cast<long>(s.count()); }

void AddExtension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) Fail("making extension " + value);
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

bool LooksLikeIp(const std::string& name) {
  return name.find(':') != std::string::npos || name.find_first_not_of("0123456789.") == std::string::npos;
}

// A certificate for `key` named `common_name`, issued by `issuer` signed with `issuer_key`
// (itself when `issuer` is null).
X509Ptr MakeCertificate(EVP_PKEY* key, const std::string& common_name, X509* issuer, EVP_PKEY* issuer_key,
                        Validity validity, bool ca, const std::vector<std::string>& names) {
  static long serial = 1000;
  X509Ptr certificate(X509_new());
  if (certificate == nullptr) Fail("X509_new");
  X509* x = certificate.get();
  X509_set_version(x, 2);  // v3
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), Seconds(validity.not_before));
  X509_gmtime_adj(X509_getm_notAfter(x), Seconds(validity.not_after));
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("herald tests"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : x;
  if (ca) {
    AddExtension(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(x, signer, NID_key_usage, "critical,digitalSignature");
    AddExtension(x, signer, NID_ext_key_usage, "serverAuth");
  }
  AddExtension(x, signer, NID_subject_key_identifier, "hash");
  if (!names.empty()) {
    std::string alt_names;
    for (const std::string& entry : names) {
      if (!alt_names.empty()) alt_names += ',';
      alt_names += (LooksLikeIp(entry) ? "IP:" : "DNS:") + entry;
    }
    AddExtension(x, signer, NID_subject_alt_name, alt_names);
  }
  if (X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) Fail("signing " + common_name);
  return certificate;
}

void WriteCertificate(const std::string& path, X509* certificate) {
  FILE* file = fopen(path.c_str(), "w");
  if (file == nullptr) throw std::runtime_error("test certificates: cannot write " + path);
  bool ok = PEM_write_X509(file, certificate) == 1;
  fclose(file);
  if (!ok) Fail("writing " + path);
}

void WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* file = fopen(path.c_str(), "w");
  if (file == nullptr) throw std::runtime_error("test certificates: cannot write " + path);
  bool ok = PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  fclose(file);
  if (!ok) Fail("writing " + path);
}

CertificateFiles WriteServerFiles(const std::string& folder, const std::string& file_stem, X509* certificate,
                                  EVP_PKEY* key) {
  CertificateFiles files{folder + "/" + file_stem + ".pem", folder + "/" + file_stem + ".key"};
  WriteCertificate(files.certificate, certificate);
  WriteKey(files.key, key);
  return files;
}

}  // namespace

struct TestCertificateAuthority::Key {
  PkeyPtr key;
  X509Ptr certificate;
};

TestCertificateAuthority::TestCertificateAuthority(std::string folder, std::string file_stem, std::string common_name)
    : folder_(std::move(folder)), key_(std::make_unique<Key>()) {
  key_->key = NewKey();
  Validity ten_years{-std::chrono::hours(24), std::chrono::hours(24 * 3650)};
  key_->certificate = MakeCertificate(key_->key.get(), common_name, nullptr, nullptr, ten_years, true, {});
  certificate_file_ = folder_ + "/" + file_stem + ".pem";
  WriteCertificate(certificate_file_, key_->certificate.get());
}

TestCertificateAuthority::~TestCertificateAuthority() = default;

CertificateFiles TestCertificateAuthority::Issue(const std::string& file_stem, const std::vector<std::string>& names,
                                                 Validity validity) const {
  PkeyPtr key = NewKey();
  X509Ptr certificate = MakeCertificate(key.get(), names.empty() ? file_stem : names.front(),
                                        key_->certificate.get(), key_->key.get(), validity, false, names);
  return WriteServerFiles(folder_, file_stem, certificate.get(), key.get());
}

CertificateFiles MakeSelfSignedCertificate(const std::string& folder, const std::string& file_stem,
                                           const std::vector<std::string>& names) {
  PkeyPtr key = NewKey();
  X509Ptr certificate =
      MakeCertificate(key.get(), names.empty() ? file_stem : names.front(), nullptr, nullptr, {}, false, names);
  return WriteServerFiles(folder, file_stem, certificate.get(), key.get());
}

TestCertificates MakeTestCertificates(const std::string& folder) {
  TestCertificateAuthority ca(folder, "ca", "herald test CA");
  TestCertificateAuthority other_ca(folder, "other-ca", "herald other CA");
  TestCertificates out;
  out.ca_file = ca.certificate_file();
  out.localhost = ca.Issue("localhost", {"localhost", "127.0.0.1", "::1"});
  out.wrong_host = ca.Issue("wrong-host", {"mail.other.example"});
  Validity expired{-std::chrono::hours(24 * 30), -std::chrono::hours(24)};
  out.expired = ca.Issue("expired", {"localhost", "127.0.0.1"}, expired);
  out.self_signed = MakeSelfSignedCertificate(folder, "self-signed", {"localhost", "127.0.0.1"});
  out.unknown_ca = other_ca.Issue("unknown-ca", {"localhost", "127.0.0.1"});
  return out;
}

}  // namespace herald
