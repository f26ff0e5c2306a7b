// Test certificates made at test time with OpenSSL's C API, for every test that needs a TLS peer
// (net, smtp, pop3): a private CA, server certificates issued by it, and the broken kinds a client
// must refuse (self-signed, expired, wrong host name, unknown CA). Keys are EC P-256, so a whole
// set takes milliseconds. Everything is written as PEM into a folder the caller owns (TempDir).
//
// Linked as the static library herald_test_tls (tests/CMakeLists.txt). Test setup code: errors
// throw std::runtime_error. Not thread-safe (run it before starting servers).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace herald {

// Paths of the PEM files of one certificate and its private key.
struct CertificateFiles {
  std::string certificate;
  std::string key;
};

// How long a certificate is valid, relative to now.
struct Validity {
  std::chrono::seconds not_before = -std::chrono::hours(24);
  std::chrono::seconds not_after = std::chrono::hours(24 * 365);
};

class TestCertificateAuthority {
 public:
  // A new CA named `common_name`, its certificate written to `<folder>/<file_stem>.pem`.
  TestCertificateAuthority(std::string folder, std::string file_stem, std::string common_name);
  ~TestCertificateAuthority();
  TestCertificateAuthority(const TestCertificateAuthority&) = delete;
  TestCertificateAuthority& operator=(const TestCertificateAuthority&) = delete;

  // The CA certificate (PEM): what a client trusts (TlsOptions::ca_file).
  const std::string& certificate_file() const { return certificate_file_; }

  // Issues a server certificate for `names` (DNS names and IP literals, all in subjectAltName;
  // the first is also the CN), written to `<folder>/<file_stem>.pem` and `.key`.
  CertificateFiles Issue(const std::string& file_stem, const std::vector<std::string>& names,
                         Validity validity = {}) const;

 private:
  struct Key;
  std::string folder_;
  std::string certificate_file_;
  std::unique_ptr<Key> key_;  // the CA's key and certificate
};

// A self-signed server certificate for `names` (the client cannot chain it to anything).
CertificateFiles MakeSelfSignedCertificate(const std::string& folder, const std::string& file_stem,
                                           const std::vector<std::string>& names);

// The usual set for TLS tests.
struct TestCertificates {
  std::string ca_file;          // the test CA: trust this
  CertificateFiles localhost;   // from the CA: localhost, 127.0.0.1, ::1
  CertificateFiles wrong_host;  // from the CA: mail.other.example only
  CertificateFiles expired;     // from the CA: localhost, 127.0.0.1; expired a day ago
  CertificateFiles self_signed; // self-signed: localhost, 127.0.0.1
  CertificateFiles unknown_ca;  // localhost, 127.0.0.1 from another CA, not in ca_file
};

// Makes the set in `folder` (which must exist).
TestCertificates MakeTestCertificates(const std::string& folder);

}  // namespace herald
