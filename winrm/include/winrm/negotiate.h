// Kerberos/NTLM (SPNEGO "Negotiate") for WinRM: a per-profile credential manager that
// refreshes tickets without kinit, the Negotiate Auth with mutual authentication,
// message encryption (multipart/encrypted) and channel binding, plus the GSS helpers
// the simulator's acceptor shares with the client.
#pragma once

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "winrm/auth.h"
#include "winrm/error.h"
#include "winrm/transport.h"

namespace winrm {

std::string_view to_string(AuthErrorClass error_class);
// Errors of this layer are ErrorKind::kAuth with Error::auth_class set and message
// "<class>: <detail>"; this returns the class (nullopt for other errors).
std::optional<AuthErrorClass> auth_error_class(const Error& error);
std::unexpected<Error> make_auth_error(AuthErrorClass error_class, std::string_view detail,
                                       int http_status = 0);

enum class NegotiateMech { kKerberos, kNtlm };

struct CredentialOptions {
  std::string profile;  // names the in-process cache MEMORY:winrm-exporter-<profile>
  NegotiateMech mech = NegotiateMech::kKerberos;
  // "user", "user@REALM" (Kerberos) or "DOMAIN\user" / "user@DOMAIN" (NTLM). Optional
  // with a keytab (its first entry is used).
  std::string principal;
  std::string realm;          // appended to a principal without '@'; krb5.conf default otherwise
  std::string client_keytab;  // "FILE:/path" or a path; preferred source
  std::string password;       // secret: never logged or put into error text
  std::string ccache;         // an existing cache kept fresh elsewhere (sssd, k5start)
  // Refresh once this fraction of a ticket's lifetime has passed (tickets stay usable
  // through a KDC outage for the rest of their lifetime).
  double refresh_fraction = 0.5;
  std::chrono::milliseconds min_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
};

// Counters for the daemon's metrics (winrm_exporter_kerberos_*).
struct CredentialStats {
  std::atomic<std::uint64_t> acquisitions{0};  // tickets obtained from the KDC (AS or renewal)
  std::atomic<std::uint64_t> renewals{0};      // of which renewals (ccache mode)
  std::atomic<std::uint64_t> handshake_credentials{0};  // gss_acquire_cred_from calls
  std::array<std::atomic<std::uint64_t>, kAuthErrorClassCount> failures{};  // by class
  std::atomic<std::int64_t> ticket_expiry_unix{0};  // 0 = no ticket (NTLM: always 0)
};

namespace gss {

// Owns a GSS credential handle.
class Credential {
 public:
  explicit Credential(gss_cred_id_t cred) : cred_(cred) {}
  ~Credential();
  Credential(const Credential&) = delete;
  Credential& operator=(const Credential&) = delete;
  gss_cred_id_t get() const { return cred_; }

 private:
  gss_cred_id_t cred_;
};

// Owns a GSS security context (initiator or acceptor). Not thread-safe.
class Context {
 public:
  Context() = default;
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  gss_ctx_id_t* ptr() { return &ctx_; }
  gss_ctx_id_t get() const { return ctx_; }
  void reset();

 private:
  gss_ctx_id_t ctx_ = GSS_C_NO_CONTEXT;
};

// "major: ...; minor: ..." from gss_display_status.
std::string status_message(OM_uint32 major, OM_uint32 minor);
// Classifies a GSS/krb5 failure (minor is a krb5 error code for the krb5 mech).
AuthErrorClass classify(OM_uint32 major, OM_uint32 minor);

gss_OID krb5_mech();
gss_OID spnego_mech();
gss_OID ntlmssp_mech();  // 1.3.6.1.4.1.311.2.2.10 (gss-ntlmssp)

// WinRM message encryption: the per-message token header and the encrypted data,
// split the way MS-WSMV 2.2.9.1.1.2.2 frames them.
struct WrappedMessage {
  std::string header;
  std::string data;  // ciphertext (+ padding)
};
// Kerberos: gss_wrap_iov HEADER|DATA|PADDING; NTLM: gss_wrap split after the 16-byte
// signature.
Result<WrappedMessage> wrap_winrm(gss_ctx_id_t ctx, bool ntlm, std::string_view plaintext);
Result<std::string> unwrap_winrm(gss_ctx_id_t ctx, bool ntlm, std::string_view header,
                                 std::string_view data);

inline constexpr std::string_view kSpnegoEncrypted = "application/HTTP-SPNEGO-session-encrypted";
inline constexpr std::string_view kKerberosEncrypted =
    "application/HTTP-Kerberos-session-encrypted";
inline constexpr std::string_view kBoundary = "Encrypted Boundary";

// multipart/encrypted;protocol="<protocol>";boundary="Encrypted Boundary"
std::string encrypted_content_type(std::string_view protocol);
bool is_encrypted_content_type(std::string_view content_type);
// The multipart body: both part headers with a leading TAB, LE32 header length, header,
// data, closing boundary without CRLF before it. length goes into Length=.
std::string frame_encrypted(std::string_view protocol, std::size_t length,
                            const WrappedMessage& message);
struct EncryptedParts {
  std::string protocol;       // from the first part's Content-Type
  std::size_t length = 0;     // OriginalContent Length=
  std::string original_type;  // OriginalContent type= (e.g. application/soap+xml;charset=UTF-8)
  WrappedMessage message;
};
// Hand-parses the body (accepts part headers with or without the TAB, whitespace
// after "--"). kParse on malformed framing.
Result<EncryptedParts> parse_encrypted(std::string_view body);
// wrap + frame / parse + unwrap + Length check.
Result<std::string> encrypt_body(gss_ctx_id_t ctx, bool ntlm, std::string_view protocol,
                                 std::string_view soap);
Result<std::string> decrypt_body(gss_ctx_id_t ctx, bool ntlm, std::string_view body);

// Channel bindings with application_data = "tls-server-end-point:" + hash; empty
// addresses (RFC 5929 / what Windows and requests-kerberos use).
class ChannelBindings {
 public:
  explicit ChannelBindings(std::string application_data);
  gss_channel_bindings_t get() { return &bindings_; }

 private:
  std::string data_;
  gss_channel_bindings_struct bindings_{};
};


}  // namespace gss

// Obtains and refreshes the Kerberos ticket of one profile, and hands out a GSS
// credential per handshake. Thread-safe; acquisitions of the same principal are
// serialized (parallel AS requests would each hit the KDC).
//
// Refresh policy (ours, not MIT's: MIT's client_keytab refresh inside
// gss_acquire_cred_from fires on every call once a ticket is within 30 s of expiry,
// which with short lifetimes is an AS-REQ storm): a new ticket is requested once
// refresh_fraction of its lifetime has passed; on failure the old ticket is used until
// it expires and retries back off exponentially (min_backoff .. max_backoff).
class CredentialManager {
 public:
  explicit CredentialManager(CredentialOptions options);
  ~CredentialManager();
  CredentialManager(const CredentialManager&) = delete;
  CredentialManager& operator=(const CredentialManager&) = delete;

  // A credential for one handshake (SPNEGO mech restricted to krb5 or NTLM). Refreshes
  // the ticket first when due. Errors are kAuth with a class (auth_error_class).
  Result<std::shared_ptr<gss::Credential>> acquire();

  // Expiry of the current ticket (nullopt: none yet / NTLM).
  std::optional<std::chrono::system_clock::time_point> ticket_expiry() const;
  const CredentialStats& stats() const { return *stats_; }
  std::shared_ptr<CredentialStats> shared_stats() const { return stats_; }
  const std::string& profile() const { return options_.profile; }
  NegotiateMech mech() const { return options_.mech; }
  // "MEMORY:winrm-exporter-<profile>"
  const std::string& ccache_name() const { return ccache_name_; }

 private:
  Result<void> refresh_locked(std::chrono::system_clock::time_point now);
  Result<std::shared_ptr<gss::Credential>> acquire_ntlm();
  Result<std::shared_ptr<gss::Credential>> acquire_krb5_locked();

  CredentialOptions options_;
  std::string ccache_name_;
  std::shared_ptr<CredentialStats> stats_;
  std::shared_ptr<std::mutex> principal_mutex_;  // shared by managers of one principal
  mutable std::mutex state_mutex_;
  std::chrono::system_clock::time_point ticket_start_{}, ticket_end_{};
  std::chrono::system_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::optional<Error> last_error_;
};

enum class EncryptionPolicy { kAuto, kAlways, kNever };  // auto: on for HTTP, off for HTTPS
enum class ChannelBindingPolicy { kAuto, kNever };       // auto: on for HTTPS

struct NegotiateOptions {
  std::shared_ptr<CredentialManager> credentials;
  std::string spn_service = "HTTP";  // or "WSMAN"
  std::string spn_host;              // empty: the endpoint's host (never reverse DNS)
  NegotiateMech mechanism = NegotiateMech::kKerberos;
  EncryptionPolicy encryption = EncryptionPolicy::kAuto;
  ChannelBindingPolicy channel_binding = ChannelBindingPolicy::kAuto;
  int max_legs = 4;  // handshake round trips before giving up
};

// Per-target handshake counters (one Auth per target).
struct NegotiateStats {
  std::atomic<std::uint64_t> handshakes{0};
  std::atomic<std::uint64_t> handshake_failures{0};
  std::atomic<std::uint64_t> reauth_on_401{0};
  std::atomic<std::uint64_t> encrypted_messages{0};
};

// The Auth for `auth: kerberos` / `auth: ntlm`. Holds one security context bound to
// the connection it was made on. Not thread-safe (like Connection).
std::shared_ptr<Auth> make_negotiate_auth(NegotiateOptions options,
                                          std::shared_ptr<NegotiateStats> stats = nullptr);

}  // namespace winrm
