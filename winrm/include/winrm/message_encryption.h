// WinRM message encryption (MS-WSMV 2.2.9.1.1.2.2): the multipart/encrypted framing of a
// SOAP body and the gss_wrap/gss_unwrap of it, byte for byte as pywinrm/pypsrp/WinRb
// build it. Shared by the Negotiate client and winrm-sim's acceptor.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "winrm/error.h"
#include "winrm/gss.h"

namespace winrm::gss {

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

}  // namespace winrm::gss
