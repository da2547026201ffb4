// GSS-API helpers shared by the Negotiate client and winrm-sim's acceptor: RAII owners of
// credentials and contexts, status texts and their classification, the mechanism OIDs and
// TLS channel bindings. The only public header that includes the GSSAPI headers besides
// message_encryption.h (daemon headers never include either).
#pragma once

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <string>

#include "winrm/error.h"

namespace winrm::gss {

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
// Classifies a krb5_error_code (or errno) from the krb5 API.
AuthErrorClass classify_krb5(long code);

gss_OID krb5_mech();
gss_OID spnego_mech();
gss_OID ntlmssp_mech();  // 1.3.6.1.4.1.311.2.2.10 (gss-ntlmssp)

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

}  // namespace winrm::gss
