// TLS helpers of the net module: shared client contexts, per-connection settings, what a peer
// certificate says and why a handshake failed, in plain words. OpenSSL types stay in here and in
// stream.cc.
//
// Threading: ClientTlsContext() is thread-safe; a context it returns may be used from any thread
// (OpenSSL allows creating SSL objects from one SSL_CTX concurrently once it is configured). The
// other functions work on one SSL object, used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <system_error>

#include <asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include "core/status.h"
#include "net/stream.h"

namespace herald::net_internal {

// A new client context: TLS 1.2 minimum, the system trust store plus `ca_file` (PEM) when not
// empty, no compression or renegotiation. Loading the system store is the expensive part (the
// bundle is parsed), so use ClientTlsContext() instead. kInvalidArgument if `ca_file` cannot be
// read or holds no certificate.
Result<std::shared_ptr<asio::ssl::context>> NewClientTlsContext(const std::string& ca_file);

// The shared context for `ca_file` ("" for the system store only), made on first use and kept
// for the life of the process: a changed CA file is read again only by a new process.
Result<std::shared_ptr<asio::ssl::context>> ClientTlsContext(const std::string& ca_file);

// Per connection: SNI (for names, not IP literals: RFC 6066 §3), the name or IP address the
// certificate must match (RFC 6125, no partial wildcards), and whether a failed check ends the
// handshake. Verification runs either way, so its verdict is known after a handshake without it.
Status ConfigureClientSsl(SSL* ssl, const std::string& server_name, bool verify);

// What `certificate` says, every text made printable (it comes from the network).
PeerCertificate DescribeCertificate(X509* certificate);

// The server's certificate after a handshake (successful or not), with OpenSSL's verdict filled
// in; nullopt if the server sent none.
std::optional<PeerCertificate> PeerCertificateOf(SSL* ssl);

// The reason a client handshake on `ssl` with `server_name` at `remote` ("127.0.0.1:465") failed
// with `error` (not a timeout or a cancellation), in plain words.
std::string HandshakeFailureText(SSL* ssl, const std::error_code& error, const std::string& server_name,
                                 const std::string& remote);

// "TLSv1.3" and "TLS_AES_256_GCM_SHA384" style names of the negotiated protocol and cipher.
std::string ProtocolName(SSL* ssl);
std::string CipherName(SSL* ssl);

}  // namespace herald::net_internal
