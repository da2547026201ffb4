// HTTP/1.1 request model and an incremental, bounded request parser (no I/O).
// The parser is what a network peer controls: every input size is capped by ParserLimits
// and every malformed input ends in an error status, never in unbounded memory.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"

struct x509_st;  // OpenSSL's X509, kept out of this header so the parser has no OpenSSL use

namespace net {

struct Header {
  std::string name;
  std::string value;
};

// ASCII case-insensitive equality (HTTP header names, tokens).
using common::iequals;

struct Request {
  std::string method;
  std::string target;     // as sent: path and query
  std::string path;       // target up to '?'
  std::string query;      // after '?', still percent-encoded
  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<Header> headers;
  std::string body;  // de-chunked

  // Connection facts, filled in by the server.
  std::uint64_t connection_id = 0;  // unique per server, stable for the connection's life
  std::string peer_address;         // numeric IP
  int peer_port = 0;
  int local_port = 0;  // the listener's port
  bool tls = false;
  std::string sni;  // TLS server name the client sent; empty when none
  // The client certificate when the client sent one and it verified against the
  // SSL_CTX's settings; null otherwise.
  std::shared_ptr<x509_st> peer_certificate;
  // When the server had the whole request (parsed, before any queueing for a worker).
  std::chrono::steady_clock::time_point received{};

  // First header with this name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
  // First header's value or "".
  std::string header_value(std::string_view name) const;
  // Every value of a repeated header, in order.
  std::vector<std::string_view> header_values(std::string_view name) const;
  // Whether the client allows the connection to stay open (version and Connection header).
  bool keep_alive() const;
  // Percent- and '+'-decoded value of the first query parameter `name`.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct ParserLimits {
  std::size_t max_head_bytes = 16 * 1024;  // request line + headers (and chunked trailers)
  std::size_t max_header_count = 100;
  std::size_t max_body_bytes = 1024 * 1024;
};

class RequestParser {
 public:
  enum class Status { kNeedMore, kComplete, kError };

  explicit RequestParser(ParserLimits limits = {});

  // Appends bytes and parses as far as they allow. After kComplete, take() the request;
  // bytes after it (pipelining) stay buffered: feed({}) parses them.
  Status feed(std::string_view data);
  Status status() const { return status_; }
  // After kError: 400, 413 (body), 431 (head), 501 (transfer coding), 505 (version).
  int error_status() const { return error_status_; }
  const std::string& error_reason() const { return error_reason_; }
  // The head is complete, the client sent "Expect: 100-continue" and the body is not.
  bool expects_continue() const { return expect_continue_ && phase_ != Phase::kHead; }
  // The completed request; the parser moves on to the next one.
  Request take();
  // Some bytes of an unfinished request are buffered.
  bool in_progress() const { return buffer_.size() > 0 || phase_ != Phase::kHead; }
  std::size_t buffered_bytes() const { return buffer_.size(); }
  // Frees the buffer's memory when nothing is buffered (idle keep-alive connections).
  void release_memory();

 private:
  enum class Phase { kHead, kLengthBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };
  Status fail(int status, std::string reason);
  Status parse();
  Status parse_head(std::string_view head);
  Status parse_chunked();

  ParserLimits limits_;
  std::string buffer_;
  std::size_t cursor_ = 0;  // parse position in buffer_
  std::size_t scan_ = 0;    // where the search for the head's end resumes
  Phase phase_ = Phase::kHead;
  Status status_ = Status::kNeedMore;
  int error_status_ = 0;
  std::string error_reason_;
  Request request_;
  std::uint64_t remaining_ = 0;  // body or chunk bytes still expected
  std::size_t trailer_bytes_ = 0;
  bool expect_continue_ = false;
};

// "OK", "Not Found", ... ("Unknown" for codes without one).
std::string_view reason_phrase(int status);

}  // namespace net
