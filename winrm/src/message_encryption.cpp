// WinRM message encryption (MS-WSMV 2.2.9.1.1.2.2): gss_wrap_iov/gss_unwrap_iov and the
// multipart/encrypted framing, byte for byte as pywinrm/pypsrp/WinRb build it.
#include "winrm/message_encryption.h"

#include <openssl/evp.h>

#include <cstring>

#include "common/strings.h"

namespace winrm::gss {

namespace {

constexpr std::size_t kNtlmSignatureSize = 16;

std::unexpected<Error> parse_error(std::string_view what) {
  return make_error(ErrorKind::kParse, "multipart/encrypted: " + std::string(what));
}

using common::trim;

// Matches "--" [spaces] "Encrypted Boundary" at pos (Exchange inserts a space); returns
// the position after it or npos.
std::size_t match_boundary(std::string_view body, std::size_t pos) {
  if (body.substr(pos, 2) != "--") return std::string_view::npos;
  pos += 2;
  while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
  if (body.substr(pos, kBoundary.size()) != kBoundary) return std::string_view::npos;
  return pos + kBoundary.size();
}

// Reads one CRLF-terminated line starting at pos.
std::optional<std::string_view> read_line(std::string_view body, std::size_t& pos) {
  const auto end = body.find("\r\n", pos);
  if (end == std::string_view::npos) return std::nullopt;
  auto line = body.substr(pos, end - pos);
  pos = end + 2;
  return line;
}

struct IovRelease {
  gss_iov_buffer_desc* iov;
  int count;
  ~IovRelease() {
    OM_uint32 minor = 0;
    gss_release_iov_buffer(&minor, iov, count);
  }
};

std::string to_string(const gss_buffer_desc& buffer) {
  return std::string(static_cast<const char*>(buffer.value), buffer.length);
}

}  // namespace

std::string encrypted_content_type(std::string_view protocol) {
  return "multipart/encrypted;protocol=\"" + std::string(protocol) + "\";boundary=\"" +
         std::string(kBoundary) + "\"";
}

bool is_encrypted_content_type(std::string_view content_type) {
  return common::istarts_with(trim(content_type), "multipart/encrypted");
}

std::string frame_encrypted(std::string_view protocol, std::size_t length,
                            const WrappedMessage& message) {
  std::string out;
  out.reserve(256 + message.header.size() + message.data.size());
  out += "--Encrypted Boundary\r\n\tContent-Type: ";
  out += protocol;
  out += "\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=";
  out += std::to_string(length);
  out += "\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n";
  const auto header_len = static_cast<std::uint32_t>(message.header.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  out += message.header;
  out += message.data;
  out += "--Encrypted Boundary--\r\n";
  return out;
}

Result<EncryptedParts> parse_encrypted(std::string_view body) {
  std::size_t pos = match_boundary(body, 0);
  if (pos == std::string_view::npos || body.substr(pos, 2) != "\r\n") {
    return parse_error("body does not start with the boundary");
  }
  pos += 2;
  EncryptedParts parts;
  bool have_length = false;
  // First part: headers until the second boundary.
  for (int lines = 0; lines < 16; ++lines) {
    if (match_boundary(body, pos) != std::string_view::npos) break;
    auto line = read_line(body, pos);
    if (!line) return parse_error("truncated first part");
    auto text = trim(*line);
    if (common::istarts_with(text, "Content-Type:")) {
      parts.protocol = std::string(trim(text.substr(13)));
    } else if (common::istarts_with(text, "OriginalContent:")) {
      auto value = trim(text.substr(16));
      const auto at = value.find("Length=");
      if (at == std::string_view::npos) return parse_error("OriginalContent without Length=");
      auto digits = value.substr(at + 7);
      std::size_t n = 0, used = 0;
      for (; used < digits.size() && used < 12 &&
             std::isdigit(static_cast<unsigned char>(digits[used]));
           ++used) {
        n = n * 10 + static_cast<std::size_t>(digits[used] - '0');
      }
      if (used == 0) return parse_error("bad Length=");
      parts.length = n;
      have_length = true;
      if (common::istarts_with(value, "type=")) {
        auto type = value.substr(5, at - 5);
        while (!type.empty() && type.back() == ';') type.remove_suffix(1);
        parts.original_type = std::string(type);
      }
    }
  }
  if (!have_length || parts.protocol.empty()) return parse_error("missing part headers");
  pos = match_boundary(body, pos);
  if (pos == std::string_view::npos || body.substr(pos, 2) != "\r\n") {
    return parse_error("missing second boundary");
  }
  pos += 2;
  auto content_type = read_line(body, pos);
  if (!content_type || !common::istarts_with(trim(*content_type), "Content-Type:")) {
    return parse_error("missing octet-stream part header");
  }
  // Closing boundary: search from the end (the ciphertext may contain anything).
  const std::string_view closing = "--Encrypted Boundary--";
  auto end = body.rfind(closing);
  if (end == std::string_view::npos || end < pos + 4)
    return parse_error("missing closing boundary");
  const auto payload = body.substr(pos, end - pos);
  std::uint32_t header_len = 0;
  for (int i = 0; i < 4; ++i) {
    header_len |= static_cast<std::uint32_t>(static_cast<unsigned char>(payload[i])) << (8 * i);
  }
  if (header_len > payload.size() - 4) return parse_error("header length beyond the payload");
  parts.message.header = std::string(payload.substr(4, header_len));
  parts.message.data = std::string(payload.substr(4 + header_len));
  return parts;
}

Result<WrappedMessage> wrap_winrm(gss_ctx_id_t ctx, bool ntlm, std::string_view plaintext) {
  OM_uint32 minor = 0;
  int conf_state = 0;
  if (ntlm) {
    // gss-ntlmssp has no wrap_iov: wrap and split off the 16-byte signature.
    gss_buffer_desc input{plaintext.size(), const_cast<char*>(plaintext.data())};
    gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
    OM_uint32 major = gss_wrap(&minor, ctx, 1, GSS_C_QOP_DEFAULT, &input, &conf_state, &output);
    if (GSS_ERROR(major))
      return make_auth_error(classify(major, minor), "gss_wrap: " + status_message(major, minor));
    std::string wrapped = to_string(output);
    gss_release_buffer(&minor, &output);
    if (conf_state == 0 || wrapped.size() < kNtlmSignatureSize) {
      return make_auth_error(AuthErrorClass::kOther, "NTLM wrap without confidentiality");
    }
    return WrappedMessage{wrapped.substr(0, kNtlmSignatureSize),
                          wrapped.substr(kNtlmSignatureSize)};
  }
  std::string data(plaintext);
  gss_iov_buffer_desc iov[3];
  iov[0].type = GSS_IOV_BUFFER_TYPE_HEADER | GSS_IOV_BUFFER_FLAG_ALLOCATE;
  iov[0].buffer = GSS_C_EMPTY_BUFFER;
  iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
  iov[1].buffer = {data.size(), data.data()};
  iov[2].type = GSS_IOV_BUFFER_TYPE_PADDING | GSS_IOV_BUFFER_FLAG_ALLOCATE;
  iov[2].buffer = GSS_C_EMPTY_BUFFER;
  OM_uint32 major = gss_wrap_iov(&minor, ctx, 1, GSS_C_QOP_DEFAULT, &conf_state, iov, 3);
  if (GSS_ERROR(major)) {
    return make_auth_error(classify(major, minor), "gss_wrap_iov: " + status_message(major, minor));
  }
  // Release only the buffers GSS allocated (DATA is ours).
  gss_iov_buffer_desc allocated[2] = {iov[0], iov[2]};
  IovRelease release{allocated, 2};
  if (conf_state == 0)
    return make_auth_error(AuthErrorClass::kOther, "wrap without confidentiality");
  WrappedMessage out;
  out.header = to_string(iov[0].buffer);
  out.data = std::move(data);
  out.data += to_string(iov[2].buffer);
  return out;
}

Result<std::string> unwrap_winrm(gss_ctx_id_t ctx, bool ntlm, std::string_view header,
                                 std::string_view data) {
  OM_uint32 minor = 0;
  int conf_state = 0;
  gss_qop_t qop = 0;
  if (ntlm) {
    std::string joined(header);
    joined += data;
    gss_buffer_desc input{joined.size(), joined.data()};
    gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
    OM_uint32 major = gss_unwrap(&minor, ctx, &input, &output, &conf_state, &qop);
    if (GSS_ERROR(major)) {
      return make_auth_error(classify(major, minor), "gss_unwrap: " + status_message(major, minor));
    }
    std::string plain = to_string(output);
    gss_release_buffer(&minor, &output);
    if (conf_state == 0)
      return make_auth_error(AuthErrorClass::kServerRejected, "message not sealed");
    return plain;
  }
  std::string header_copy(header);
  std::string buffer(data);
  gss_iov_buffer_desc iov[3];
  iov[0].type = GSS_IOV_BUFFER_TYPE_HEADER;
  iov[0].buffer = {header_copy.size(), header_copy.data()};
  iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
  iov[1].buffer = {buffer.size(), buffer.data()};
  iov[2].type = GSS_IOV_BUFFER_TYPE_DATA;  // empty trailer, as pyspnego/WinRb do for MIT
  iov[2].buffer = GSS_C_EMPTY_BUFFER;
  OM_uint32 major = gss_unwrap_iov(&minor, ctx, &conf_state, &qop, iov, 3);
  if (GSS_ERROR(major)) {
    return make_auth_error(classify(major, minor),
                           "gss_unwrap_iov: " + status_message(major, minor));
  }
  if (conf_state == 0)
    return make_auth_error(AuthErrorClass::kServerRejected, "message not sealed");
  buffer.resize(iov[1].buffer.length);
  return buffer;
}

Result<std::string> encrypt_body(gss_ctx_id_t ctx, bool ntlm, std::string_view protocol,
                                 std::string_view soap) {
  auto wrapped = wrap_winrm(ctx, ntlm, soap);
  if (!wrapped) return std::unexpected(wrapped.error());
  // Length= is the plaintext length (pywinrm; identical to pypsrp for AES, no padding).
  return frame_encrypted(protocol, soap.size(), *wrapped);
}

Result<std::string> decrypt_body(gss_ctx_id_t ctx, bool ntlm, std::string_view body) {
  auto parts = parse_encrypted(body);
  if (!parts) return std::unexpected(parts.error());
  auto plain = unwrap_winrm(ctx, ntlm, parts->message.header, parts->message.data);
  if (!plain) return plain;
  // Padding (RC4) may trail the plaintext; Length= counts the SOAP bytes.
  if (plain->size() < parts->length || plain->size() > parts->length + 16) {
    return make_error(ErrorKind::kParse,
                      "decrypted length " + std::to_string(plain->size()) +
                          " does not match Length=" + std::to_string(parts->length));
  }
  plain->resize(parts->length);
  return plain;
}

}  // namespace winrm::gss
