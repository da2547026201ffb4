#include "query_cache.h"

#include <cstring>
#include <functional>

#include "exposition.h"

namespace exporter {

namespace {

// Blob layout: per row its class name and property count, per property its name, type,
// nil flag, value count and values. Lengths and counts are 32-bit, host byte order (the
// blob never leaves the process).
void put_u32(std::string& out, std::uint32_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void put_text(std::string& out, std::string_view text) {
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out.append(text);
}

class Reader {
 public:
  explicit Reader(std::string_view blob) : blob_(blob) {}
  std::uint32_t u32() {
    std::uint32_t value = 0;
    std::memcpy(&value, blob_.data() + at_, sizeof(value));
    at_ += sizeof(value);
    return value;
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(blob_[at_++]); }
  std::string_view text() {
    const std::uint32_t size = u32();
    std::string_view out = blob_.substr(at_, size);
    at_ += size;
    return out;
  }
  bool done() const { return at_ >= blob_.size(); }

 private:
  std::string_view blob_;
  std::size_t at_ = 0;
};

}  // namespace

std::string serialize_rows(const std::vector<winrm::Row>& rows) {
  std::size_t size = sizeof(std::uint32_t);
  for (const auto& row : rows) {
    size += 2 * sizeof(std::uint32_t) + row.class_name().size();
    for (const auto& property : row.properties()) {
      size += 2 + 2 * sizeof(std::uint32_t) + property.name.size();
      for (auto value : property.values) size += sizeof(std::uint32_t) + value.size();
    }
  }
  std::string out;
  out.reserve(size);  // exactly: the entry's bytes are what a target costs
  put_u32(out, static_cast<std::uint32_t>(rows.size()));
  for (const auto& row : rows) {
    put_text(out, row.class_name());
    put_u32(out, static_cast<std::uint32_t>(row.properties().size()));
    for (const auto& property : row.properties()) {
      put_text(out, property.name);
      out.push_back(static_cast<char>(property.type));
      out.push_back(property.is_null ? 1 : 0);
      put_u32(out, static_cast<std::uint32_t>(property.values.size()));
      for (auto value : property.values) put_text(out, value);
    }
  }
  return out;
}

std::vector<winrm::Row> deserialize_rows(std::string_view blob) {
  std::vector<winrm::Row> rows;
  if (blob.size() < sizeof(std::uint32_t)) return rows;
  Reader in(blob);
  const std::uint32_t count = in.u32();
  rows.reserve(count);
  auto arena = std::make_shared<winrm::TextArena>();  // one for all rows, like a page
  for (std::uint32_t r = 0; r < count; ++r) {
    winrm::Row& row = rows.emplace_back(arena, in.text());
    const std::uint32_t properties = in.u32();
    row.reserve(properties);
    for (std::uint32_t p = 0; p < properties; ++p) {
      const std::string_view name = in.text();
      const auto type = static_cast<winrm::Property::Type>(in.u8());
      const bool is_null = in.u8() != 0;
      const std::uint32_t values = in.u32();
      if (is_null) row.add_null(name);
      for (std::uint32_t v = 0; v < values; ++v) row.add(name, in.text(), type);
    }
  }
  return rows;
}

std::uint64_t query_hash(const collectors::Query& query) {
  const std::size_t a = std::hash<std::string>{}(query.wmi_namespace);
  const std::size_t b = std::hash<std::string>{}(query.wql);
  return static_cast<std::uint64_t>(a) * 0x9E3779B97F4A7C15ull ^ static_cast<std::uint64_t>(b);
}

void QueryStats::add(const std::string& collector, std::uint64_t sent, std::uint64_t reused) {
  if (sent == 0 && reused == 0) return;
  std::lock_guard lock(mutex_);
  auto it = counts_.find(collector);
  if (it == counts_.end()) it = counts_.emplace(collector, Counts{}).first;
  it->second.sent += sent;
  it->second.reused += reused;
}

std::uint64_t QueryStats::sent(const std::string& collector) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(collector);
  return it == counts_.end() ? 0 : it->second.sent;
}

std::uint64_t QueryStats::reused(const std::string& collector) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(collector);
  return it == counts_.end() ? 0 : it->second.reused;
}

void QueryStats::render(std::string& out) const {
  std::vector<std::pair<std::string, Counts>> counts;
  {
    std::lock_guard lock(mutex_);
    counts.assign(counts_.begin(), counts_.end());
  }
  using collectors::MetricType;
  if (!counts.empty()) {
    FamilyWriter sent(out, "winrm_exporter_queries_sent_total",
                      "WQL queries sent to targets (one Enumerate each), by collector.",
                      MetricType::kCounter);
    for (const auto& [collector, c] : counts) {
      sent.sample(render_label_pairs({{"collector", collector}}), static_cast<double>(c.sent));
    }
    FamilyWriter reused(out, "winrm_exporter_queries_reused_total",
                        "WQL queries answered from rows kept by their refresh: setting instead "
                        "of a round trip, by collector.",
                        MetricType::kCounter);
    for (const auto& [collector, c] : counts) {
      reused.sample(render_label_pairs({{"collector", collector}}), static_cast<double>(c.reused));
    }
  }
  FamilyWriter(out, "winrm_exporter_query_cache_bytes",
               "Heap bytes of the rows kept for refresh: queries, all targets.", MetricType::kGauge)
      .sample("", static_cast<double>(bytes_.load()));
  FamilyWriter(out, "winrm_exporter_query_cache_entries",
               "Query results kept for refresh: queries, all targets.", MetricType::kGauge)
      .sample("", static_cast<double>(entries_.load()));
}

QueryCache::~QueryCache() {
  std::lock_guard lock(mutex_);
  account(-static_cast<std::int64_t>(bytes_), -static_cast<std::int64_t>(entries_.size()));
}

std::size_t QueryCache::cost(const Entry& entry) {
  // The collector name fits the string's inline buffer (names are short); count it if not.
  const std::size_t name = entry.collector.capacity() > 15 ? entry.collector.capacity() + 1 : 0;
  return sizeof(Entry) + entry.blob.capacity() + 1 + name;
}

void QueryCache::account(std::int64_t bytes, std::int64_t entries) {
  if (!stats_) return;
  stats_->bytes_ += bytes;
  stats_->entries_ += entries;
}

std::optional<std::vector<winrm::Row>> QueryCache::lookup(std::string_view collector,
                                                          std::size_t index,
                                                          const collectors::Query& query,
                                                          Clock::time_point now) const {
  if (query.refresh.count() <= 0) return std::nullopt;
  const std::uint64_t hash = query_hash(query);
  std::string blob;
  {
    std::lock_guard lock(mutex_);
    for (const Entry& entry : entries_) {
      if (entry.index != index || entry.collector != collector) continue;
      if (entry.query_hash != hash || now - entry.read_at >= query.refresh) return std::nullopt;
      blob = entry.blob;  // rows are rebuilt outside the lock
      break;
    }
  }
  if (blob.empty()) return std::nullopt;
  return deserialize_rows(blob);
}

void QueryCache::store(std::string_view collector, std::size_t index,
                       const collectors::Query& query, const std::vector<winrm::Row>& rows,
                       Clock::time_point read_at) {
  if (query.refresh.count() <= 0) return;
  Entry fresh{std::string(collector), index, query_hash(query), read_at, serialize_rows(rows)};
  std::lock_guard lock(mutex_);
  for (Entry& entry : entries_) {
    if (entry.index != index || entry.collector != collector) continue;
    const std::size_t before = cost(entry);
    entry = std::move(fresh);
    const std::size_t after = cost(entry);
    bytes_ = bytes_ - before + after;
    account(static_cast<std::int64_t>(after) - static_cast<std::int64_t>(before), 0);
    return;
  }
  entries_.push_back(std::move(fresh));
  const std::size_t added = cost(entries_.back());
  bytes_ += added;
  account(static_cast<std::int64_t>(added), 1);
}

void QueryCache::erase_locked(std::size_t position) {
  const std::size_t removed = cost(entries_[position]);
  bytes_ -= removed;
  account(-static_cast<std::int64_t>(removed), -1);
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(position));
}

void QueryCache::clear() {
  std::lock_guard lock(mutex_);
  account(-static_cast<std::int64_t>(bytes_), -static_cast<std::int64_t>(entries_.size()));
  entries_.clear();
  entries_.shrink_to_fit();
  bytes_ = 0;
}

void QueryCache::retain(const std::map<std::string, collectors::CollectorPtr>& polled) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = entries_.size(); i-- > 0;) {
    const Entry& entry = entries_[i];
    auto it = polled.find(entry.collector);
    const bool keep = it != polled.end() && it->second &&
                      entry.index < it->second->queries().size() &&
                      it->second->queries()[entry.index].refresh.count() > 0 &&
                      query_hash(it->second->queries()[entry.index]) == entry.query_hash;
    if (!keep) erase_locked(i);
  }
}

std::size_t QueryCache::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t QueryCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

}  // namespace exporter
