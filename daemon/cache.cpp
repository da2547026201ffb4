#include "cache.h"

#include <functional>
#include <utility>

namespace exporter {

std::string Cache::metrics_prefix(const TargetInfo& info) {
  collectors::Labels labels;
  labels.emplace_back("target", info.name);
  labels.insert(labels.end(), info.labels.begin(), info.labels.end());
  return render_label_pairs(labels);
}

void Cache::set_targets(const std::vector<TargetInfo>& targets) {
  std::vector<std::shared_ptr<Entry>> ordered;
  std::unordered_map<std::string, std::shared_ptr<Entry>> by_name;
  std::unique_lock lock(mutex_);
  for (const auto& info : targets) {
    if (by_name.contains(info.name)) continue;
    auto entry = std::make_shared<Entry>();
    entry->info = std::make_shared<const TargetInfo>(info);
    entry->prefix = metrics_prefix(info);
    std::shared_ptr<Entry> old;
    if (auto it = by_name_.find(info.name); it != by_name_.end()) old = it->second;
    for (const auto& collector : info.collectors) {
      CollectorView view{collector, nullptr, {}};
      if (old) {
        std::lock_guard old_lock(old->mutex);
        for (const auto& previous : old->collectors) {
          if (previous.collector == collector) view = previous;
        }
      }
      if (view.snapshot && view.snapshot->families &&
          view.snapshot->families->prefix != entry->prefix) {
        // Changed labels: the kept series move to the new label set.
        auto relabelled = std::make_shared<CollectorSnapshot>(*view.snapshot);
        relabelled->families = keep(with_prefix(*view.snapshot->families, entry->prefix));
        view.snapshot = std::move(relabelled);
      }
      entry->collectors.push_back(std::move(view));
    }
    by_name.emplace(info.name, entry);
    ordered.push_back(std::move(entry));
  }
  ordered_ = std::move(ordered);
  by_name_ = std::move(by_name);
}

std::shared_ptr<const RenderedFamilies> Cache::keep(RenderedFamilies rendered,
                                                    const RenderedFamilies* previous) const {
  if (compression_level_ > 0) compress_families(rendered, compression_level_, previous);
  return std::make_shared<const RenderedFamilies>(std::move(rendered));
}

std::shared_ptr<Cache::Entry> Cache::find(const std::string& target) const {
  std::shared_lock lock(mutex_);
  auto it = by_name_.find(target);
  return it == by_name_.end() ? nullptr : it->second;
}

void Cache::update(const std::shared_ptr<Entry>& entry, const std::string& collector,
                   const std::function<void(CollectorView&)>& change) {
  if (!entry) return;  // removed by a reload while polling
  std::lock_guard lock(entry->mutex);
  for (auto& view : entry->collectors) {
    if (view.collector == collector) change(view);
  }
}

void Cache::record_success(const std::string& target, const std::string& collector,
                           const collectors::Families& families, double duration_seconds) {
  auto entry = find(target);
  if (!entry) return;  // removed by a reload while polling
  // The last kept result of this collector: unchanged families reuse its segments.
  SnapshotPtr previous;
  {
    std::lock_guard lock(entry->mutex);
    for (const auto& view : entry->collectors) {
      if (view.collector == collector) previous = view.snapshot;
    }
  }
  auto snapshot = std::make_shared<CollectorSnapshot>();
  // Rendered and compressed without holding a lock: scrapes only copy the result.
  const RenderedFamilies* before = previous ? previous->families.get() : nullptr;
  if (compression_level_ > 0) {
    snapshot->families = std::make_shared<const RenderedFamilies>(
        render_compressed(entry->prefix, families, compression_level_, before));
  } else {
    snapshot->families = keep(render_families(entry->prefix, families));
  }
  snapshot->success = true;
  snapshot->last_success_unix =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  snapshot->last_success_steady = std::chrono::steady_clock::now();
  snapshot->duration_seconds = duration_seconds;
  SnapshotPtr published = std::move(snapshot);
  // The replaced snapshot (possibly the last reference to many series) is freed after the
  // entry's lock is released, so that scrapes do not wait for it.
  SnapshotPtr replaced;
  update(entry, collector,
         [&](CollectorView& view) { replaced = std::exchange(view.snapshot, published); });
}

void Cache::record_failure(const std::string& target, const std::string& collector,
                           const std::string& error_kind, const std::string& message,
                           double duration_seconds) {
  SnapshotPtr replaced;  // freed outside the lock, as in record_success
  update(find(target), collector, [&](CollectorView& view) {
    auto snapshot = std::make_shared<CollectorSnapshot>();
    if (view.snapshot) {
      snapshot->families = view.snapshot->families;  // shared, not copied
      snapshot->last_success_unix = view.snapshot->last_success_unix;
      snapshot->last_success_steady = view.snapshot->last_success_steady;
    }
    snapshot->success = false;
    snapshot->duration_seconds = duration_seconds;
    snapshot->error_kind = error_kind;
    snapshot->error_message = message;
    replaced = std::exchange(view.snapshot, std::move(snapshot));
    ++view.errors.by_kind[error_kind];
  });
}

Cache::TargetView Cache::snapshot_of(const Entry& entry) {
  std::lock_guard lock(entry.mutex);
  return TargetView{entry.info, entry.collectors};
}

std::vector<Cache::TargetView> Cache::view_all() const {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    std::shared_lock lock(mutex_);
    entries = ordered_;
  }
  std::vector<TargetView> views;
  views.reserve(entries.size());
  for (const auto& entry : entries) views.push_back(snapshot_of(*entry));
  return views;
}

Cache::TargetView Cache::view(const std::string& target) const {
  auto entry = find(target);
  if (!entry) return {};
  return snapshot_of(*entry);
}

bool Cache::fresh(const TargetInfo& info, const CollectorSnapshot& snapshot,
                  std::chrono::steady_clock::time_point now) {
  if (!snapshot.families || snapshot.last_success_unix == 0) return false;
  auto max_age = info.interval * std::max(1, info.stale_after_intervals);
  return now - snapshot.last_success_steady <= max_age;
}

}  // namespace exporter
