// Real mail servers from Debian packages for herald's integration tests (docs/design.md, "How it
// is tested"), each started and stopped by the test itself: on free ports of 127.0.0.1 (or
// ::1), with its configuration, state and logs in a folder of the test, stopped by process id, with
// every wait bounded. No system-wide configuration or service is used or changed.
//
//   PostfixServer   submission (STARTTLS), smtps (implicit TLS), smtp with POP-before-SMTP; AUTH
//                   through Dovecot; every delivered message readable per recipient
//   DovecotServer   POP3/STLS/POP3S, SASL authentication for Postfix, POP-before-SMTP logins
//   AiosmtpdServer  python3-aiosmtpd: STARTTLS, AUTH PLAIN/LOGIN, records envelope and message
//   SmtpSink        Postfix's smtp-sink: fast counting sink for benchmarks, per-recipient counts
//   DnsmasqServer   dnsmasq: MX/A/AAAA/TXT records of test domains for direct delivery, NXDOMAIN,
//                   SERVFAIL, every query logged
//   HttpsServer     Python's http.server over TLS: fixed answers by Host and path (MTA-STS policies)
// Certificates for their TLS ports: MakeTestCertificates() in tests/tls_certificates.h.
//
// A typical fixture (members destroyed in reverse order: servers stop before the folder goes):
//
//   TempDir temp_;
//   DovecotServer dovecot_{{.directory = temp_.Path("dovecot"), .users = {{"alice", "secret"}}, ...}};
//   PostfixServer postfix_{{.directory = temp_.Path("postfix"), .sasl_socket = ..., ...}};
//
// Start() returns a Status whose message includes the server's log when it fails; Stop() (also
// run by the destructor) ends the server's whole process group. Should the test process die
// without stopping them, a watchdog per server stops it within seconds (server_process.h).
#pragma once

#include "servers/aiosmtpd_server.h"
#include "servers/dnsmasq_server.h"
#include "servers/dovecot_server.h"
#include "servers/https_server.h"
#include "servers/postfix_server.h"
#include "servers/server_credentials.h"
#include "servers/server_process.h"
#include "servers/smtp_sink.h"
