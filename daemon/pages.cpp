#include "pages.h"

#include "exposition.h"

namespace exporter {

namespace {

using collectors::MetricType;

// /probe's label prefix: the configured labels without `target` (/metrics':
// Cache::metrics_prefix).
std::string probe_prefix(const TargetInfo& info) { return render_label_pairs(info.labels); }

std::string join(std::string_view prefix, std::string_view more) {
  if (prefix.empty()) return std::string(more);
  if (more.empty()) return std::string(prefix);
  std::string out(prefix);
  out += ',';
  out += more;
  return out;
}

bool collector_success(const TargetInfo& info, const Cache::CollectorView& view,
                       std::chrono::steady_clock::time_point now) {
  return view.snapshot && view.snapshot->success && Cache::fresh(info, *view.snapshot, now);
}

// Per-target self series. `target_labels` is `target="x"` or empty (probe).
void write_self_series(std::string& out, const std::vector<Cache::TargetView>& targets,
                       const std::vector<std::string>& target_labels,
                       std::chrono::steady_clock::time_point now) {
  {
    FamilyWriter family(out, "winrm_exporter_target_up",
                        "1 when the latest poll of at least one collector of the target succeeded.",
                        MetricType::kGauge);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      bool up = false;
      for (const auto& view : targets[i].collectors) {
        up = up || collector_success(*targets[i].info, view, now);
      }
      family.sample(target_labels[i], up ? 1 : 0);
    }
  }
  auto per_collector = [&](std::string_view name, std::string_view help, MetricType type,
                           auto&& emit) {
    FamilyWriter family(out, name, help, type);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      for (const auto& view : targets[i].collectors) {
        std::string labels =
            join(target_labels[i], render_label_pairs({{"collector", view.collector}}));
        emit(family, labels, *targets[i].info, view);
      }
    }
  };
  per_collector("winrm_exporter_collector_success",
                "1 when the latest poll of the collector succeeded and its data is not stale.",
                MetricType::kGauge,
                [&](FamilyWriter& family, const std::string& labels, const TargetInfo& info,
                    const Cache::CollectorView& view) {
                  family.sample(labels, collector_success(info, view, now) ? 1 : 0);
                });
  per_collector("winrm_exporter_collector_duration_seconds",
                "Duration of the latest poll of the collector.", MetricType::kGauge,
                [&](FamilyWriter& family, const std::string& labels, const TargetInfo&,
                    const Cache::CollectorView& view) {
                  if (view.snapshot) family.sample(labels, view.snapshot->duration_seconds);
                });
  per_collector("winrm_exporter_collector_last_success_timestamp_seconds",
                "Unix time of the latest successful poll of the collector.", MetricType::kGauge,
                [&](FamilyWriter& family, const std::string& labels, const TargetInfo&,
                    const Cache::CollectorView& view) {
                  if (view.snapshot && view.snapshot->last_success_unix > 0) {
                    family.sample(labels, view.snapshot->last_success_unix);
                  }
                });
  per_collector("winrm_exporter_collector_errors_total",
                "Failed polls of the collector by error kind.", MetricType::kCounter,
                [&](FamilyWriter& family, const std::string& labels, const TargetInfo&,
                    const Cache::CollectorView& view) {
                  for (const auto& [kind, count] : view.errors.by_kind) {
                    family.sample(join(labels, render_label_pairs({{"kind", kind}})),
                                  static_cast<double>(count));
                  }
                });
}

// The parts of a /metrics page: the head (extra and self series, text) and the cached families.
struct PageParts {
  std::string head;
  std::vector<const RenderedFamilies*> sources;
  std::size_t bytes = 0;  // of the families' text
};

PageParts collect(const std::vector<Cache::TargetView>& targets, const ExtraRenderer& extra,
                  std::chrono::steady_clock::time_point now) {
  PageParts parts;
  std::vector<std::string> self_labels;
  self_labels.reserve(targets.size());
  for (const auto& target : targets) {
    self_labels.push_back(render_label_pairs({{"target", target.info->name}}));
    for (const auto& view : target.collectors) {
      if (!view.snapshot || !Cache::fresh(*target.info, *view.snapshot, now)) continue;
      parts.bytes += view.snapshot->families->bytes;
      parts.sources.push_back(view.snapshot->families.get());
    }
  }
  parts.head.reserve(4096 + targets.size() * 1024);
  if (extra) extra(parts.head);
  write_self_series(parts.head, targets, self_labels, now);
  return parts;
}

}  // namespace

std::string render_metrics_page(const std::vector<Cache::TargetView>& targets,
                                const ExtraRenderer& extra,
                                std::chrono::steady_clock::time_point now) {
  PageParts parts = collect(targets, extra, now);
  std::string out = std::move(parts.head);
  out.reserve(out.size() + parts.bytes + parts.bytes / 16);
  write_rendered(out, parts.sources);
  return out;
}

net::BodyParts render_metrics_page_gzip_parts(std::vector<Cache::TargetView> targets,
                                              const ExtraRenderer& extra,
                                              std::chrono::steady_clock::time_point now) {
  // What the parts point into: the views (their snapshots hold the segments) and the
  // bytes the writer produced itself.
  struct Storage {
    std::vector<Cache::TargetView> targets;
    std::string own;
  };
  auto storage = std::make_shared<Storage>();
  storage->targets = std::move(targets);
  PageParts parts = collect(storage->targets, extra, now);
  GzipWriter out(1, parts.head.size() / 4, /*reference_segments=*/true);
  out.text() = std::move(parts.head);
  write_rendered(out, parts.sources);
  GzipWriter::Pieces pieces = out.finish_pieces();
  storage->own = std::move(pieces.own);
  net::BodyParts body;
  body.parts = pieces.views(storage->own);
  body.size = pieces.size;
  body.owner = std::move(storage);
  return body;
}

std::string render_metrics_page_gzip(const std::vector<Cache::TargetView>& targets,
                                     const ExtraRenderer& extra,
                                     std::chrono::steady_clock::time_point now) {
  net::BodyParts body = render_metrics_page_gzip_parts(targets, extra, now);
  std::string out;
  out.reserve(body.size);
  for (std::string_view part : body.parts) out += part;
  return out;
}

std::string render_probe_page(const Cache::TargetView& target,
                              std::chrono::steady_clock::time_point now) {
  std::string out;
  render_probe_page(target, now, out);
  return out;
}

void render_probe_page(const Cache::TargetView& target, std::chrono::steady_clock::time_point now,
                       std::string& out) {
  const std::vector<Cache::TargetView> targets{target};
  write_self_series(out, targets, {std::string()}, now);
  std::vector<const RenderedFamilies*> sources;
  sources.reserve(target.collectors.size());
  for (const auto& view : target.collectors) {
    if (view.snapshot && Cache::fresh(*target.info, *view.snapshot, now)) {
      sources.push_back(view.snapshot->families.get());
    }
  }
  // Re-labelled from the cached text straight into the page: no copy of the families.
  write_relabelled(out, sources, probe_prefix(*target.info));
}

}  // namespace exporter
