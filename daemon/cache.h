// Per-target cache of immutable collector snapshots. Polls publish a new snapshot
// (shared_ptr<const ...>); scrapes copy only shared_ptrs under a short lock, never the
// series, and never wait on a poll.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
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

namespace exporter {

struct TargetInfo {
  std::string name;
  collectors::Labels labels;  // configured extra labels, sorted by name
  std::chrono::milliseconds interval{30000};
  int stale_after_intervals = 3;
  std::vector<std::string> collectors;
};

struct CollectorSnapshot {
  std::shared_ptr<const collectors::Families> families;  // last good result (may be null)
  bool success = false;                                  // outcome of the latest poll
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

  struct CollectorView {
    std::string collector;
    SnapshotPtr snapshot;  // null until the first poll finished
    ErrorCounts errors;
  };
  struct TargetView {
    std::shared_ptr<const TargetInfo> info;
    std::vector<CollectorView> collectors;
  };

  // Replaces the target set; snapshots of targets/collectors that stay are kept.
  void set_targets(const std::vector<TargetInfo>& targets);

  // Publishes the result of one poll. On failure the previous families are kept
  // (they age out by staleness) and the error is counted.
  void record_success(const std::string& target, const std::string& collector,
                      collectors::Families families, double duration_seconds);
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
    mutable std::mutex mutex;
    std::vector<CollectorView> collectors;  // in info->collectors order
  };
  std::shared_ptr<Entry> find(const std::string& target) const;
  static TargetView snapshot_of(const Entry& entry);
  void update(const std::string& target, const std::string& collector,
              const std::function<void(CollectorView&)>& change);

  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<Entry>> ordered_;  // configuration order
  std::unordered_map<std::string, std::shared_ptr<Entry>> by_name_;
};

}  // namespace exporter
