#include "web_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/base64.h"
#include "common/strings.h"

namespace exporter {

namespace {

constexpr std::size_t kCacheEntries = 64;
// Checked when the user does not exist, so that a reply's timing does not tell whether a
// user name is configured (cost 10, the htpasswd/exporter-toolkit default).
constexpr const char* kDummyHash = "$2y$10$abcdefghijklmnopqrstuu.TCtz8MQSJ87q9Ywbyz5SrHHpQWCc0y";

// crypt_r with its 32 KiB state on the heap; the result compared in constant time.
bool bcrypt_matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* computed = crypt_r(password.c_str(), hash.c_str(), data.get());
  // libxcrypt returns a string starting with '*' on failure, never the hash.
  bool match = computed != nullptr && computed[0] != '*' && std::strlen(computed) == hash.size() &&
               CRYPTO_memcmp(computed, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return match;
}

}  // namespace

bool decode_basic_authorization(std::string_view header, std::string& user, std::string& password) {
  constexpr std::string_view kScheme = "basic ";
  if (header.size() <= kScheme.size()) return false;
  if (!common::istarts_with(header, kScheme)) return false;
  std::string_view encoded = header.substr(kScheme.size());
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  while (!encoded.empty() && encoded.back() == ' ') encoded.remove_suffix(1);
  auto decoded_or = common::base64_decode(encoded);
  if (!decoded_or) return false;
  std::string& decoded = *decoded_or;
  auto colon = decoded.find(':');
  bool ok = colon != std::string::npos;
  if (ok) {
    user = decoded.substr(0, colon);
    password = decoded.substr(colon + 1);
  }
  OPENSSL_cleanse(decoded.data(), decoded.size());
  return ok;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string> users,
                                       int max_bcrypt_at_once)
    : users_(std::move(users)), max_bcrypt_at_once_(max_bcrypt_at_once) {
  if (RAND_bytes(cache_secret_.data(), static_cast<int>(cache_secret_.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");  // start-up/reload only
  }
}

BasicAuthenticator::~BasicAuthenticator() {
  OPENSSL_cleanse(cache_secret_.data(), cache_secret_.size());
}

BasicAuthenticator::Digest BasicAuthenticator::cache_key(std::string_view user,
                                                         std::string_view password,
                                                         const std::string& hash) const {
  Digest digest{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const unsigned char zero = 0;
  unsigned int length = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, cache_secret_.data(), cache_secret_.size()) == 1 &&
            EVP_DigestUpdate(ctx, user.data(), user.size()) == 1 &&
            EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
            EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
            EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
            EVP_DigestUpdate(ctx, hash.data(), hash.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, digest.data(), &length) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) digest.fill(0);  // an all-zero key is never stored (see check)
  return digest;
}

BasicAuthenticator::Result BasicAuthenticator::verify(std::string_view authorization) const {
  std::string user;
  std::string password;
  if (!decode_basic_authorization(authorization, user, password)) return Result::kDenied;
  auto it = users_.find(user);
  const std::string& hash = it == users_.end() ? std::string(kDummyHash) : it->second;
  Digest key = cache_key(user, password, hash);
  bool valid_key = std::any_of(key.begin(), key.end(), [](unsigned char b) { return b != 0; });
  bool cached = false;
  if (valid_key && it != users_.end()) {
    std::lock_guard lock(mutex_);
    for (const auto& entry : cache_) {
      cached |= CRYPTO_memcmp(entry.data(), key.data(), key.size()) == 0;
    }
  }
  Result result = cached ? Result::kOk : Result::kDenied;
  bool admitted = false;
  if (!cached) {
    std::lock_guard lock(mutex_);
    admitted = bcrypt_running_ < max_bcrypt_at_once_;
    if (admitted) ++bcrypt_running_;
    if (!admitted) result = Result::kBusy;
  }
  if (admitted) {
    bool match = bcrypt_matches(password, hash);
    bool ok = match && it != users_.end();
    result = ok ? Result::kOk : Result::kDenied;
    std::lock_guard lock(mutex_);
    --bcrypt_running_;
    ++bcrypt_runs_;
    if (ok && valid_key) {
      if (cache_.size() >= kCacheEntries) cache_.erase(cache_.begin());
      cache_.push_back(key);
    }
  }
  OPENSSL_cleanse(password.data(), password.size());
  return result;
}

int BasicAuthenticator::bcrypt_runs() const {
  std::lock_guard lock(mutex_);
  return bcrypt_runs_;
}

RateLimiter::RateLimiter(std::chrono::milliseconds interval, int burst)
    : interval_(interval),
      burst_(std::max(1, burst)),
      tokens_(burst_),
      last_(std::chrono::steady_clock::now()) {}

bool RateLimiter::allow() {
  if (!enabled()) return true;
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  std::chrono::duration<double, std::milli> elapsed = now - last_;
  last_ = now;
  tokens_ = std::min(burst_, tokens_ + elapsed.count() / static_cast<double>(interval_.count()));
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace exporter
