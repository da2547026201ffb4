// OpenSSL server contexts for the listener, built from tls_server_config (web_config.h), and
// rebuilt when the certificate, key or client CA files change on disk.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "web_config.h"

struct ssl_ctx_st;

namespace exporter {

using SslCtxPtr = std::shared_ptr<ssl_ctx_st>;

// A server SSL_CTX for these settings. Error names the file or option and OpenSSL's reason.
std::expected<SslCtxPtr, std::string> build_server_context(const TlsServerSettings& settings);

// Hands out the current SSL_CTX for new connections. At most once a second it compares
// the files' identity (inode, size, mtime) with the ones the context was built from and
// rebuilds it when they changed; a failed rebuild (a key replaced before its certificate,
// say) keeps the previous context and is retried at the next check. Thread-safe.
class TlsContextProvider {
 public:
  static std::expected<std::shared_ptr<TlsContextProvider>, std::string> create(
      TlsServerSettings settings);

  SslCtxPtr current();
  // New settings (configuration reload). Error: the previous ones stay in force.
  std::expected<void, std::string> update(TlsServerSettings settings);
  // Contexts built after the first one.
  int rebuilds() const;

 private:
  struct FileId {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    long long mtime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  explicit TlsContextProvider(TlsServerSettings settings, SslCtxPtr context,
                              std::vector<FileId> files);
  static std::vector<FileId> identify(const TlsServerSettings& settings);

  mutable std::mutex mutex_;
  TlsServerSettings settings_;
  SslCtxPtr context_;
  // The context replaced last, kept alive so that a caller which took current()'s raw
  // pointer just before a rebuild can still SSL_new() from it (net::TlsContextProvider).
  SslCtxPtr previous_;
  std::vector<FileId> files_;         // what context_ was built from
  std::vector<FileId> failed_files_;  // a rebuild from these failed (logged once)
  std::chrono::steady_clock::time_point next_check_;
  int rebuilds_ = 0;
};

}  // namespace exporter
