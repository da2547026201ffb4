#include "http.h"

#include <algorithm>
#include <charconv>

namespace net {
namespace {

using common::trim_ows;

// RFC 9110 tchar.
bool is_token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_token_char(static_cast<unsigned char>(c));
  });
}

// Field values: visible characters, SP, HTAB and obs-text; no other control bytes.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = common::ascii_lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Longest chunk-size line accepted (size, extensions, CRLF): extensions are ignored.
constexpr std::size_t kMaxChunkLine = 1024;

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

std::string Request::header_value(std::string_view name) const {
  auto v = header(name);
  return v ? std::string(*v) : std::string();
}

std::vector<std::string_view> Request::header_values(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& h : headers)
    if (iequals(h.name, name)) out.emplace_back(h.value);
  return out;
}

bool Request::keep_alive() const {
  bool close = false, keep = false;
  for (auto value : header_values("Connection")) {
    // A comma-separated list of connection options.
    while (!value.empty()) {
      auto comma = value.find(',');
      auto item = trim_ows(value.substr(0, comma));
      if (iequals(item, "close")) close = true;
      if (iequals(item, "keep-alive")) keep = true;
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  if (close) return false;
  return version_minor >= 1 || keep;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    if (key == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

RequestParser::RequestParser(ParserLimits limits) : limits_(limits) {}

RequestParser::Status RequestParser::fail(int status, std::string reason) {
  status_ = Status::kError;
  error_status_ = status;
  error_reason_ = std::move(reason);
  return status_;
}

RequestParser::Status RequestParser::feed(std::string_view data) {
  if (status_ != Status::kNeedMore) return status_;
  buffer_.append(data);
  return parse();
}

Request RequestParser::take() {
  Request out = std::move(request_);
  request_ = Request{};
  buffer_.erase(0, cursor_);
  cursor_ = 0;
  scan_ = 0;
  phase_ = Phase::kHead;
  status_ = Status::kNeedMore;
  remaining_ = 0;
  trailer_bytes_ = 0;
  expect_continue_ = false;
  return out;
}

void RequestParser::release_memory() {
  if (buffer_.empty()) std::string().swap(buffer_);
}

RequestParser::Status RequestParser::parse() {
  if (phase_ == Phase::kHead) {
    // Empty lines before a request line are ignored (RFC 9112 2.2).
    while (buffer_.size() - cursor_ >= 2 && buffer_[cursor_] == '\r' &&
           buffer_[cursor_ + 1] == '\n') {
      cursor_ += 2;
      if (cursor_ > limits_.max_head_bytes) return fail(431, "too many empty lines");
    }
    const std::size_t from = std::max(cursor_, scan_ >= 3 ? scan_ - 3 : 0);
    const auto end = buffer_.find("\r\n\r\n", from);
    if (end == std::string::npos) {
      scan_ = buffer_.size();
      if (buffer_.size() - cursor_ > limits_.max_head_bytes)
        return fail(431, "request head too large");
      return status_;
    }
    const std::size_t head_len = end + 4 - cursor_;
    if (head_len > limits_.max_head_bytes) return fail(431, "request head too large");
    const std::string_view head(buffer_.data() + cursor_, end + 2 - cursor_);
    if (parse_head(head) == Status::kError) return status_;
    cursor_ = end + 4;
  }
  if (phase_ == Phase::kLengthBody) {
    const std::size_t available = buffer_.size() - cursor_;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available));
    request_.body.append(buffer_, cursor_, n);
    cursor_ += n;
    remaining_ -= n;
    if (remaining_ == 0) phase_ = Phase::kDone;
  } else if (phase_ != Phase::kDone && phase_ != Phase::kHead) {
    if (parse_chunked() == Status::kError) return status_;
  }
  if (phase_ == Phase::kDone) status_ = Status::kComplete;
  // Drop consumed body bytes early so a large body is not held twice.
  if (status_ == Status::kNeedMore && phase_ != Phase::kHead && cursor_ > 0) {
    buffer_.erase(0, cursor_);
    cursor_ = 0;
    scan_ = 0;
  }
  return status_;
}

RequestParser::Status RequestParser::parse_head(std::string_view head) {
  // head: lines, each ending in CRLF.
  auto next_line = [&head](std::string_view& line) {
    auto crlf = head.find("\r\n");
    line = head.substr(0, crlf);
    head.remove_prefix(crlf + 2);
  };
  std::string_view line;
  next_line(line);
  // request-line = method SP request-target SP HTTP-version
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return fail(400, "malformed request line");
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method");
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
      }))
    return fail(400, "malformed request target");
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return fail(400, "malformed HTTP version");
  if (version[5] != '1') return fail(505, "HTTP version not supported");
  request_.method = std::string(method);
  request_.target = std::string(target);
  const auto q = target.find('?');
  request_.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));
  request_.version_minor = version[7] - '0';

  while (!head.empty()) {
    next_line(line);
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return fail(400, "obsolete line folding");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without a colon");
    const auto name = line.substr(0, colon);
    const auto value = trim_ows(line.substr(colon + 1));
    if (!is_token(name)) return fail(400, "malformed header name");
    if (!is_field_value(value)) return fail(400, "control character in a header value");
    if (request_.headers.size() >= limits_.max_header_count) return fail(431, "too many headers");
    request_.headers.push_back({std::string(name), std::string(value)});
  }

  // Body framing (RFC 9112 6): Transfer-Encoding wins, but both together are refused
  // (request smuggling); differing Content-Lengths too.
  std::optional<std::uint64_t> length;
  bool chunked = false;
  for (const auto& h : request_.headers) {
    if (iequals(h.name, "Content-Length")) {
      std::uint64_t v = 0;
      const auto* end = h.value.data() + h.value.size();
      auto [ptr, ec] = std::from_chars(h.value.data(), end, v);
      if (h.value.empty() || ec != std::errc() || ptr != end || h.value.front() == '+')
        return fail(400, "malformed Content-Length");
      if (length && *length != v) return fail(400, "conflicting Content-Length headers");
      length = v;
    } else if (iequals(h.name, "Transfer-Encoding")) {
      if (chunked || !iequals(trim_ows(h.value), "chunked"))
        return fail(501, "unsupported transfer coding");
      chunked = true;
    } else if (iequals(h.name, "Expect")) {
      if (!iequals(trim_ows(h.value), "100-continue")) return fail(417, "unsupported expectation");
      expect_continue_ = true;
    }
  }
  if (chunked && length) return fail(400, "both Content-Length and Transfer-Encoding");
  if (chunked) {
    phase_ = Phase::kChunkSize;
  } else if (length && *length > 0) {
    if (*length > limits_.max_body_bytes) return fail(413, "request body too large");
    remaining_ = *length;
    request_.body.reserve(static_cast<std::size_t>(*length));
    phase_ = Phase::kLengthBody;
  } else {
    phase_ = Phase::kDone;
  }
  return status_;
}

RequestParser::Status RequestParser::parse_chunked() {
  while (phase_ != Phase::kDone) {
    if (phase_ == Phase::kChunkSize) {
      const auto eol = buffer_.find("\r\n", cursor_);
      if (eol == std::string::npos) {
        if (buffer_.size() - cursor_ > kMaxChunkLine) return fail(400, "chunk size line too long");
        return status_;
      }
      if (eol - cursor_ > kMaxChunkLine) return fail(400, "chunk size line too long");
      std::string_view line(buffer_.data() + cursor_, eol - cursor_);
      line = line.substr(0, line.find(';'));
      line = trim_ows(line);
      if (line.empty() || line.size() > 16) return fail(400, "malformed chunk size");
      std::uint64_t size = 0;
      for (char c : line) {
        int v = hex_value(c);
        if (v < 0) return fail(400, "malformed chunk size");
        size = size * 16 + static_cast<std::uint64_t>(v);
      }
      cursor_ = eol + 2;
      if (size > limits_.max_body_bytes - request_.body.size())
        return fail(413, "request body too large");
      remaining_ = size;
      phase_ = size == 0 ? Phase::kTrailers : Phase::kChunkData;
    } else if (phase_ == Phase::kChunkData) {
      const std::size_t available = buffer_.size() - cursor_;
      if (available == 0) return status_;
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available));
      request_.body.append(buffer_, cursor_, n);
      cursor_ += n;
      remaining_ -= n;
      if (remaining_ > 0) return status_;
      phase_ = Phase::kChunkDataEnd;
    } else if (phase_ == Phase::kChunkDataEnd) {
      if (buffer_.size() - cursor_ < 2) return status_;
      if (buffer_.compare(cursor_, 2, "\r\n") != 0) return fail(400, "chunk not followed by CRLF");
      cursor_ += 2;
      phase_ = Phase::kChunkSize;
    } else if (phase_ == Phase::kTrailers) {
      // Trailer fields are read and dropped; they count against the head limit.
      const auto eol = buffer_.find("\r\n", cursor_);
      if (eol == std::string::npos) {
        if (trailer_bytes_ + (buffer_.size() - cursor_) > limits_.max_head_bytes)
          return fail(431, "trailers too large");
        return status_;
      }
      trailer_bytes_ += eol + 2 - cursor_;
      if (trailer_bytes_ > limits_.max_head_bytes) return fail(431, "trailers too large");
      const bool last = eol == cursor_;
      cursor_ = eol + 2;
      if (last) phase_ = Phase::kDone;
    } else {
      break;
    }
  }
  return status_;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace net
