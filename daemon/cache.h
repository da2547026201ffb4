// Per-target cache of immutable collector snapshots. Polls publish a new snapshot
// (shared_ptr<const ...>) holding their families already rendered as exposition text and
// compressed into deflate segments (once per poll, in the polling thread); scrapes copy only
// shared_ptrs under a short lock and then the segments (gzip) or their text, and never wait
// on a poll.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "collectors/metric.h"
#include "exposition.h"

namespace exporter {

struct TargetInfo {
  std::string name;
  collectors::Labels labels;  // configured extra labels, sorted by name
  std::chrono::milliseconds interval{30000};
  int stale_after_intervals = 3;
  std::vector<std::string> collectors;
};

struct CollectorSnapshot {
  // Last good result as /metrics text with the target's label prefix (may be null).
  std::shared_ptr<const RenderedFamilies> families;
  bool success = false;          // outcome of the latest poll
  double last_success_unix = 0;  // wall clock of the last good poll, 0 = never
  std::chrono::steady_clock::time_point last_success_steady{};
  double duration_seconds = 0;  // of the latest poll
  std::string error_kind;       // of the latest poll, empty on success
  std::string error_message;    // of the latest poll, empty on success
};

// Error counts of one (target, collector) by kind; monotonic while the target exists.
struct ErrorCounts {
  std::map<std::string, std::uint64_t> by_kind;
};

class Cache {
 public:
  using SnapshotPtr = std::shared_ptr<const CollectorSnapshot>;

  // zlib level (1-9) of the kept text, 0: keep it as text. Compressed, a poll's text is ~10x
  // smaller and gzip scrapes copy it without compressing (docs/sizing.md).
  static constexpr int kDefaultCompressionLevel = 1;
  explicit Cache(int compression_level = kDefaultCompressionLevel)
      : compression_level_(compression_level) {}

  struct CollectorView {
    std::string collector;
    SnapshotPtr snapshot;  // null until the first poll finished
    ErrorCounts errors;
  };
  struct TargetView {
    std::shared_ptr<const TargetInfo> info;
    std::vector<CollectorView> collectors;
  };

  // Replaces the target set; snapshots of targets/collectors that stay are kept (their
  // text is re-labelled when the target's labels changed).
  void set_targets(const std::vector<TargetInfo>& targets);

  // Label prefix of a target's series on /metrics: `target="name"` + its labels.
  static std::string metrics_prefix(const TargetInfo& info);

  // Publishes the result of one poll, rendered here. On failure the previous families are kept
  // (they age out by staleness) and the error is counted.
  void record_success(const std::string& target, const std::string& collector,
                      const collectors::Families& families, double duration_seconds);
  void record_failure(const std::string& target, const std::string& collector,
                      const std::string& error_kind, const std::string& message,
                      double duration_seconds);

  std::vector<TargetView> view_all() const;
  // nullopt-like: info is null when the target is unknown.
  TargetView view(const std::string& target) const;

  // Whether a collector's series are still fresh (not stale) at now.
  static bool fresh(const TargetInfo& info, const CollectorSnapshot& snapshot,
                    std::chrono::steady_clock::time_point now);

 private:
  struct Entry {
    std::shared_ptr<const TargetInfo> info;
    std::string prefix;  // metrics_prefix(*info)
    mutable std::mutex mutex;
    std::vector<CollectorView> collectors;  // in info->collectors order
  };
  std::shared_ptr<Entry> find(const std::string& target) const;
  static TargetView snapshot_of(const Entry& entry);
  void update(const std::shared_ptr<Entry>& entry, const std::string& collector,
              const std::function<void(CollectorView&)>& change);

  // Compresses one poll's rendered families; segments of families whose text did not change
  // since `previous` (the last kept result of the same collector) are reused, not recompressed.
  std::shared_ptr<const RenderedFamilies> keep(RenderedFamilies rendered,
                                               const RenderedFamilies* previous = nullptr) const;

  const int compression_level_;
  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<Entry>> ordered_;  // configuration order
  std::unordered_map<std::string, std::shared_ptr<Entry>> by_name_;
};

// Concurrent callers share one computation: a caller arriving while one runs waits for it
// and takes its result; a caller arriving after it starts a new one (the data behind a page
// changes with every poll, so results are not kept beyond their waiters).
template <typename T>
class SingleFlight {
 public:
  std::shared_ptr<const T> get(const std::function<T()>& compute) {
    std::unique_lock lock(mutex_);
    while (running_) {
      const std::uint64_t generation = generation_;
      ++waiting_;
      done_.wait(lock, [&] { return generation_ != generation; });
      std::shared_ptr<const T> result = result_;
      if (--waiting_ == 0) result_.reset();  // the last waiter lets the page go
      if (result) return result;
      // The computation failed (threw): try again, possibly as the one computing.
    }
    running_ = true;
    lock.unlock();
    std::shared_ptr<const T> result;
    try {
      result = std::make_shared<const T>(compute());
    } catch (...) {
      finish(nullptr);
      throw;
    }
    finish(result);
    return result;
  }

  // Callers waiting for a running computation (for tests).
  int waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_;
  }

 private:
  void finish(std::shared_ptr<const T> result) {
    std::lock_guard lock(mutex_);
    running_ = false;
    ++generation_;
    if (waiting_ > 0) result_ = std::move(result);
    done_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable done_;
  bool running_ = false;
  std::uint64_t generation_ = 0;
  int waiting_ = 0;
  std::shared_ptr<const T> result_;  // for the waiters of the last computation
};

}  // namespace exporter
