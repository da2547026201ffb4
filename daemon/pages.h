// Renders /metrics and /probe bodies from cache views plus the exporter's telemetry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache.h"
#include "net/server.h"

namespace exporter {

// Appends process-wide self metrics (telemetry) to a page.
using ExtraRenderer = std::function<void(std::string& out)>;

// /metrics: extra (may be empty), per-target self series with a `target` label,
// then every fresh cached family with `target` + configured labels.
std::string render_metrics_page(const std::vector<Cache::TargetView>& targets,
                                const ExtraRenderer& extra,
                                std::chrono::steady_clock::time_point now);

// The same page as a gzip body, built from the cached deflate segments without
// decompressing or recompressing them (only the head and HELP/TYPE lines are compressed).
// In parts: the segments are referenced where the cache keeps them (the body owns the views
// that keep them alive), never copied into one page buffer: the server sends them with
// gathered writes. A page of 10,000 hosts is ~200 MB that is neither copied nor faulted in.
net::BodyParts render_metrics_page_gzip_parts(std::vector<Cache::TargetView> targets,
                                              const ExtraRenderer& extra,
                                              std::chrono::steady_clock::time_point now);
// The same joined into one string (tests, tools).
std::string render_metrics_page_gzip(const std::vector<Cache::TargetView>& targets,
                                     const ExtraRenderer& extra,
                                     std::chrono::steady_clock::time_point now);

// /probe: one target's self series and fresh families without the `target` label
// (configured labels stay).
std::string render_probe_page(const Cache::TargetView& target,
                              std::chrono::steady_clock::time_point now);
// The same appended to `out` (a buffer the caller keeps between requests).
void render_probe_page(const Cache::TargetView& target, std::chrono::steady_clock::time_point now,
                       std::string& out);

}  // namespace exporter
