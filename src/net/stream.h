// net: TCP and TLS byte streams for the protocol clients (SMTP, POP3, direct MX delivery, HTTPS).
//
// A Stream is one TCP connection, upgraded in place to TLS by StartTls() (implicit TLS right after
// Connect(), or STARTTLS after the server agreed). Every operation takes a deadline and reports
// failure as a Status in plain words ("timed out after 30s while reading from 192.0.2.1:587",
// "certificate of mail.example.com not trusted: certificate has expired ..."); nothing throws.
//
// The stream never reads ahead: ReadSome() returns only bytes the caller asked for, so a protocol
// that must discard what arrived before a TLS handshake (RFC 3207 §4.2) can do so.
//
// Any failed operation (I/O error, end of stream, timeout, cancellation) closes the stream: the
// state of a half-done read, write or TLS record is unknown, so every later operation fails too.
//
// Threading: a Stream belongs to the executor of the coroutine that called Connect() and is used
// from that executor only. At most one ReadSome() and one Write() may be in progress at a time (a
// read and a write may overlap); Connect() and StartTls() run alone. Destroying a Stream (or
// calling Close()) while an operation is in progress is safe: the operation ends with an error.
// An open, idle Stream may keep a deadline timer waiting (until the last deadline it was given),
// so its io_context's run() returns only after that or after the Stream is closed or destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "core/clock.h"
#include "core/status.h"

namespace herald {

struct ConnectOptions {
  std::string host;            // a name or an IP literal (IPv6 without brackets)
  std::uint16_t port = 0;
  std::string local_address;   // an IP address to bind before connecting; empty: any
  Duration timeout{30'000};    // for resolving and connecting, all addresses together
};

struct TlsOptions {
  // SNI (sent for names only, never for IP literals: RFC 6066 §3) and the name the certificate
  // must match (RFC 6125; an IP literal is matched against the certificate's IP addresses).
  // Empty: the host given to Connect().
  std::string server_name;
  // Check the certificate chain and the name. False only behind an explicit user setting: the
  // handshake then succeeds whatever the certificate says, and peer_certificate()->verify_error
  // tells what verification would have said — the caller must log it.
  bool verify = true;
  std::string ca_file;  // extra trust anchors (PEM) besides the system store; empty: system only
  // TLS 1.2 is the minimum, always.
};

// What the server's certificate says; names and texts from the network are made printable.
struct PeerCertificate {
  std::vector<std::string> names;  // subjectAltName DNS names and IP addresses (else the CN)
  std::string subject, issuer;     // RFC 2253 ("CN=mail.example.com,O=Example")
  std::string not_after;           // FormatLocalTime(): "2027-03-01 13:00:00+01:00"
  bool verified = false;           // chain and name checked and trusted
  std::string verify_error;        // why it would not be trusted (OpenSSL's words); empty if verified
};

class Stream {
 public:
  // Resolves `host` (all A/AAAA results; IP literals are used as they are) and tries each address
  // in turn until one connects, all within options.timeout; binds to local_address first when
  // set. TCP_NODELAY is on. Errors (kUnavailable) say which: "cannot resolve mail.example: name
  // not found", "cannot connect to mail.example:25: 192.0.2.1:25: connection refused", "timed
  // out after 30s while connecting to ..."; an empty host or a malformed local address is
  // kInvalidArgument.
  static asio::awaitable<Result<std::unique_ptr<Stream>>> Connect(ConnectOptions options);

  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // TLS client handshake on the open connection (TLS 1.2 or newer). Errors, all kUnavailable
  // except an unreadable CA file (kInvalidArgument) and a second call (kFailedPrecondition):
  //   "certificate of <name> not trusted: <OpenSSL's reason>; it is for <names> (...)"
  //   "certificate of <name> not trusted: hostname mismatch: certificate is for <names> (...)"
  //   "protocol version too old: <server> offers only TLS 1.1 or older; herald needs TLS 1.2+"
  //   "TLS handshake with <server> failed: <reason>", "timed out after 30s while TLS handshake ..."
  asio::awaitable<Status> StartTls(TlsOptions options, Duration timeout);

  // Reads what is available, at least one byte, into `buffer` (not empty; it must stay valid until
  // the operation ends). At the end of the stream: kUnavailable "connection closed by the server".
  asio::awaitable<Result<std::size_t>> ReadSome(std::span<char> buffer, Duration timeout);

  // Writes every byte of every piece, in order, with one deadline for all. Plain TCP writes the
  // pieces as they are (writev, no copy), at once when the socket buffer takes them (the
  // coroutine then goes on without a round of the event loop); TLS packs small pieces into full
  // records. `pieces` and the bytes they point to must stay valid until the operation ends.
  asio::awaitable<Status> Write(std::span<const std::string_view> pieces, Duration timeout);

  bool tls() const;
  std::string tls_version() const;  // "TLSv1.3"; empty before StartTls()
  std::string cipher() const;       // "TLS_AES_256_GCM_SHA384"; empty before StartTls()
  std::optional<PeerCertificate> peer_certificate() const;  // after a successful StartTls()
  std::string remote_endpoint() const;  // "192.0.2.1:587", "[::1]:25", for logs
  std::string local_endpoint() const;   // the same for our end
  bool is_open() const;

  // Closes the connection at once (no TLS close_notify); operations in progress end with an
  // error and later ones fail.
  void Close();

  class Impl;

 private:
  explicit Stream(std::shared_ptr<Impl> impl);

  std::shared_ptr<Impl> impl_;
};

}  // namespace herald
