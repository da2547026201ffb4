// Response charsets. WinRM answers in UTF-8, or in UTF-16 when the client asks for it or on
// some locales; the Content-Type charset (or a byte order mark) says which. Everything past
// this point is UTF-8, and values reaching metrics are valid UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "common/utf8.h"
#include "winrm/error.h"

namespace winrm {

// Decodes an HTTP body to UTF-8 by the charset parameter of `content_type`
// ("application/soap+xml;charset=UTF-16"; case-insensitive, value may be quoted) and by a byte
// order mark, which wins over the parameter. Accepted: utf-8 (also "utf8", "us-ascii"),
// utf-16 (BOM, else the "<" of the document decides, else little-endian as Windows sends),
// utf-16le, utf-16be. No charset and no BOM means UTF-8 (the XML default). A UTF-8/16 BOM is
// removed. Invalid UTF-8, lone or reversed surrogates and an odd trailing byte become U+FFFD.
// An unknown charset is a kParse error naming it.
Result<std::string> decode_to_utf8(std::string_view body, std::string_view content_type);

// Same, without a copy when the body is already valid UTF-8: the result views either `body`
// or `storage` (which it overwrites), so both must outlive it.
Result<std::string_view> decode_to_utf8(std::string_view body, std::string_view content_type,
                                        std::string& storage);

// The charset parameter of a Content-Type, lower-cased and unquoted; empty when absent.
std::string charset_of(std::string_view content_type);

// UTF-8 validation and repair live in common/ (shared with the daemon and the collectors).
using common::is_valid_utf8;
using common::sanitize_utf8;
using common::sanitize_utf8_in_place;

}  // namespace winrm
