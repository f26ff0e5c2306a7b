// Users and TLS files handed to the test servers (see mail_servers.h).
#pragma once

#include <string>

namespace herald::test_servers {

// A mailbox user: SMTP AUTH (PLAIN, LOGIN, CRAM-MD5 where the server offers it) and POP3 login.
struct MailUser {
  std::string name;
  std::string password;
};

// A server's certificate chain and private key, PEM files (see test_certificates.h).
struct TlsFiles {
  std::string certificate;
  std::string key;
  bool empty() const { return certificate.empty(); }
};

// For a port option: the server has no such port.
inline constexpr int kNoPort = -1;

}  // namespace herald::test_servers
