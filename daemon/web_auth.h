// Request gates of the listener: basic auth against bcrypt hashes, and a token-bucket rate
// limit, both from the web configuration (web_config.h).
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace exporter {

// Checks "Authorization: Basic ..." values against user -> bcrypt hash. bcrypt runs in
// libxcrypt's crypt_r; a successful check is remembered (keyed by a keyed SHA-256 of user,
// password and hash, never the password itself) so that the bcrypt cost is paid once per
// credential, not per scrape. Thread-safe.
class BasicAuthenticator {
 public:
  // max_bcrypt_at_once: uncached checks computing at the same time; more are refused at
  // once (kBusy), so that wrong passwords cannot occupy every worker thread with bcrypt
  // while cached (already verified) credentials keep being served.
  explicit BasicAuthenticator(std::map<std::string, std::string> users, int max_bcrypt_at_once = 2);
  ~BasicAuthenticator();

  bool enabled() const { return !users_.empty(); }
  enum class Result { kOk, kDenied, kBusy };
  // kOk when the header value carries a configured user and its password.
  Result verify(std::string_view authorization) const;
  bool check(std::string_view authorization) const { return verify(authorization) == Result::kOk; }
  // bcrypt computations done so far (cache misses); for tests.
  int bcrypt_runs() const;

 private:
  using Digest = std::array<unsigned char, 32>;
  Digest cache_key(std::string_view user, std::string_view password, const std::string& hash) const;

  std::map<std::string, std::string> users_;
  std::array<unsigned char, 32> cache_secret_{};  // random per process
  mutable std::mutex mutex_;
  mutable std::vector<Digest> cache_;  // successes only, bounded
  mutable int bcrypt_runs_ = 0;
  int max_bcrypt_at_once_;
  mutable int bcrypt_running_ = 0;
};

// "user:password" from a Basic Authorization header value; false when malformed.
bool decode_basic_authorization(std::string_view header, std::string& user, std::string& password);

// A token bucket: `burst` requests at once, one more every `interval`. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(std::chrono::milliseconds interval, int burst);
  bool enabled() const { return interval_.count() > 0; }
  bool allow();

 private:
  std::chrono::milliseconds interval_;
  double burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
  std::mutex mutex_;
};

}  // namespace exporter
