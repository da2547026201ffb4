// GSS-API helpers (see gss.h): RAII owners, status texts and their classification,
// mechanism OIDs, channel bindings.
#include "winrm/gss.h"

#include <krb5/krb5.h>

#include <cerrno>
#include <string_view>
#include <utility>

namespace winrm::gss {

AuthErrorClass classify_krb5(long code) {
  switch (code) {
    case 0:
      return AuthErrorClass::kOther;
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case KRB5_REALM_UNKNOWN:
      return AuthErrorClass::kKdcUnreachable;
    case KRB5KRB_AP_ERR_SKEW:
    case KRB5_KDCREP_SKEW:
      return AuthErrorClass::kClockSkew;
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
      return AuthErrorClass::kPrincipalUnknown;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5_PREAUTH_FAILED:
    case KRB5KDC_ERR_KEY_EXP:
    case KRB5KDC_ERR_CLIENT_REVOKED:
    case KRB5KDC_ERR_ETYPE_NOSUPP:
    case KRB5_KT_KVNONOTFOUND:
      return AuthErrorClass::kCredentialsInvalid;
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_END:
    case KRB5_FCC_NOFILE:
    case KRB5_CC_NOTFOUND:
    case KRB5_CC_END:
    case KRB5_KT_NAME_TOOLONG:
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
    case ENOENT:
    case EACCES:
      return AuthErrorClass::kNoCredentials;
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5KRB_AP_ERR_BADMATCH:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_REPEAT:
    case KRB5KRB_AP_ERR_MUT_FAIL:
      return AuthErrorClass::kServerRejected;
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return AuthErrorClass::kKdcUnreachable;
    default:
      return AuthErrorClass::kOther;
  }
}

Credential::~Credential() {
  OM_uint32 minor = 0;
  if (cred_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred_);
}

Context::~Context() { reset(); }

void Context::reset() {
  OM_uint32 minor = 0;
  if (ctx_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx_, GSS_C_NO_BUFFER);
  ctx_ = GSS_C_NO_CONTEXT;
}

namespace {
void append_status(std::string& out, OM_uint32 code, int type) {
  OM_uint32 minor = 0, context = 0;
  do {
    gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
    if (GSS_ERROR(gss_display_status(&minor, code, type, GSS_C_NO_OID, &context, &text))) break;
    if (!out.empty()) out += "; ";
    out.append(static_cast<const char*>(text.value), text.length);
    gss_release_buffer(&minor, &text);
  } while (context != 0);
}
}  // namespace

std::string status_message(OM_uint32 major, OM_uint32 minor) {
  std::string out;
  append_status(out, major, GSS_C_GSS_CODE);
  if (minor != 0) append_status(out, minor, GSS_C_MECH_CODE);
  return out;
}

AuthErrorClass classify(OM_uint32 major, OM_uint32 minor) {
  const auto by_minor = classify_krb5(static_cast<krb5_error_code>(minor));
  if (by_minor != AuthErrorClass::kOther) return by_minor;
  if (minor != 0) {
    // The mechglue renumbers mechanism minor codes (SPNEGO especially): recognise the
    // krb5 error by its text instead.
    std::string text;
    append_status(text, minor, GSS_C_MECH_CODE);
    // MIT's texts (with the principal inserted, hence the fragments).
    static const std::pair<std::string_view, AuthErrorClass> kTexts[] = {
        {"not found in Kerberos database", AuthErrorClass::kPrincipalUnknown},
        {"Cannot contact any KDC", AuthErrorClass::kKdcUnreachable},
        {"Cannot find KDC", AuthErrorClass::kKdcUnreachable},
        {"Clock skew too great", AuthErrorClass::kClockSkew},
        {"Preauthentication failed", AuthErrorClass::kCredentialsInvalid},
        {"Ticket expired", AuthErrorClass::kNoCredentials},
        {"No Kerberos credentials available", AuthErrorClass::kNoCredentials},
        {"No credentials cache found", AuthErrorClass::kNoCredentials},
        {"Matching credential not found", AuthErrorClass::kNoCredentials},
        {"Message stream modified", AuthErrorClass::kServerRejected},
        {"Mutual authentication failed", AuthErrorClass::kServerRejected},
    };
    for (const auto& [fragment, error_class] : kTexts) {
      if (text.find(fragment) != std::string::npos) return error_class;
    }
  }
  switch (GSS_ROUTINE_ERROR(major)) {
    case GSS_S_NO_CRED:
    case GSS_S_CREDENTIALS_EXPIRED:
      return AuthErrorClass::kNoCredentials;
    case GSS_S_DEFECTIVE_TOKEN:
    case GSS_S_BAD_SIG:
    case GSS_S_BAD_BINDINGS:
    case GSS_S_DEFECTIVE_CREDENTIAL:
    case GSS_S_CONTEXT_EXPIRED:
      return AuthErrorClass::kServerRejected;
    default:
      return AuthErrorClass::kOther;
  }
}

gss_OID krb5_mech() {
  static gss_OID_desc oid = {9, const_cast<char*>("\x2a\x86\x48\x86\xf7\x12\x01\x02\x02")};
  return &oid;
}
gss_OID spnego_mech() {
  static gss_OID_desc oid = {6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};
  return &oid;
}
gss_OID ntlmssp_mech() {
  static gss_OID_desc oid = {10, const_cast<char*>("\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a")};
  return &oid;
}

ChannelBindings::ChannelBindings(std::string application_data)
    : data_(std::move(application_data)) {
  bindings_.initiator_addrtype = GSS_C_AF_UNSPEC;
  bindings_.acceptor_addrtype = GSS_C_AF_UNSPEC;
  bindings_.application_data = {data_.size(), data_.data()};
}

}  // namespace winrm::gss
