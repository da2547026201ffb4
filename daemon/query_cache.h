// Rows of `refresh:` queries (collectors/README.md) kept between a target's polls, so data
// that changes only on a reboot or a config change costs one WinRM round trip per refresh
// instead of one per poll. One QueryCache per target (App::Runtime), keyed by collector and
// query; collectors stay clock-free, the daemon decides when rows are reused.
//
// Memory: a winrm::Row views the TextArena of its whole response page, so a kept Row would
// keep that page alive (1 KiB at least). An entry stores one compact serialised copy of its
// rows instead (property names and values, a few hundred bytes for a 1-row query) and rebuilds
// rows from it on reuse.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"
#include "winrm/row.h"

namespace exporter {

// Exporter-wide counters: queries sent and reused per collector (bounded by the number of
// collectors, never per target) and the bytes and entries every target's cache holds.
class QueryStats {
 public:
  void add(const std::string& collector, std::uint64_t sent, std::uint64_t reused);
  // Appends winrm_exporter_queries_sent_total, _queries_reused_total, _query_cache_bytes and
  // _query_cache_entries.
  void render(std::string& out) const;
  std::uint64_t sent(const std::string& collector) const;
  std::uint64_t reused(const std::string& collector) const;
  std::int64_t bytes() const { return bytes_.load(); }
  std::int64_t entries() const { return entries_.load(); }

 private:
  friend class QueryCache;
  struct Counts {
    std::uint64_t sent = 0;
    std::uint64_t reused = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Counts, std::less<>> counts_;
  std::atomic<std::int64_t> bytes_{0};
  std::atomic<std::int64_t> entries_{0};
};

// The rows a serialised copy holds, rebuilt (all in one fresh arena), and the copy itself.
std::string serialize_rows(const std::vector<winrm::Row>& rows);
std::vector<winrm::Row> deserialize_rows(std::string_view blob);

class QueryCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit QueryCache(std::shared_ptr<QueryStats> stats = nullptr) : stats_(std::move(stats)) {}
  ~QueryCache();
  QueryCache(const QueryCache&) = delete;
  QueryCache& operator=(const QueryCache&) = delete;

  // The rows query `index` of `collector` returned at a time less than query.refresh before
  // `now`, if kept (and the query's namespace and WQL are still those they were read with).
  std::optional<std::vector<winrm::Row>> lookup(std::string_view collector, std::size_t index,
                                                const collectors::Query& query,
                                                Clock::time_point now) const;
  // Keeps a copy of `rows`, read at `read_at` (when the request went out).
  void store(std::string_view collector, std::size_t index, const collectors::Query& query,
             const std::vector<winrm::Row>& rows, Clock::time_point read_at);
  // Drops every entry (the target was unreachable: a reboot may follow).
  void clear();
  // Drops the entries of collectors no longer polled or whose query changed (reload):
  // `polled` maps the target's enabled collectors to their definitions.
  void retain(const std::map<std::string, collectors::CollectorPtr>& polled);

  std::size_t entries() const;
  std::size_t bytes() const;  // heap bytes the entries hold (what a target costs)

 private:
  struct Entry {
    std::string collector;
    std::size_t index = 0;
    std::uint64_t query_hash = 0;  // namespace + WQL: a changed query never matches
    Clock::time_point read_at;
    std::string blob;  // serialize_rows
  };
  static std::size_t cost(const Entry& entry);
  void account(std::int64_t bytes, std::int64_t entries);
  void erase_locked(std::size_t position);

  std::shared_ptr<QueryStats> stats_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;  // a handful per target: a linear search beats a map
  std::size_t bytes_ = 0;
};

std::uint64_t query_hash(const collectors::Query& query);

}  // namespace exporter
