// Fast Prometheus text exposition (format 0.0.4) for cached collector data: direct
// string appends with std::to_chars, each family merged across targets into one
// HELP/TYPE group, label values escaped and made valid UTF-8.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/metric.h"

namespace exporter {

// Label value escaping: \\, \", \n (after UTF-8 sanitising: one U+FFFD per invalid byte).
using collectors::append_label_value;
// HELP escaping: \\ and \n.
void append_help(std::string& out, std::string_view help);
// Prometheus value formatting: NaN, +Inf, -Inf, exact integers without exponent.
void append_value(std::string& out, double value);
// `name="value"` pairs joined with commas (no braces).
std::string render_label_pairs(const collectors::Labels& labels);
std::string_view type_name(collectors::MetricType type);

// A family's name, HELP and type. They are the same in every poll of every target a
// collector polls, so the process keeps one copy of each (intern_family_head) instead of one
// per family of every kept poll: ~11 KB of heap per host with the default collectors
// (heaptrack, docs/sizing.md).
struct FamilyHead {
  std::string name;
  std::string help;
  collectors::MetricType type = collectors::MetricType::kUntyped;
};
using FamilyHeadPtr = std::shared_ptr<const FamilyHead>;

// The shared head with these fields (thread-safe). Heads no family uses any more (e.g. a
// custom collector's old HELP after a reload) are dropped as the table grows.
FamilyHeadPtr intern_family_head(std::string_view name, std::string_view help,
                                 collectors::MetricType type);
// How many heads the table holds (tests).
std::size_t interned_family_heads();

// One family of one poll, rendered once when the poll published it: its sample lines
// (`name{prefix,labels} value\n`), so that scrapes only copy text. Kept either as text
// (lines()) or compressed (deflated(), see compress_families), in one string: a kept poll
// holds ~100 of these per host, and a second string member cost 32 bytes each (~3 KB per
// host, heaptrack).
struct RenderedFamily {
  FamilyHeadPtr head;  // never null
  const std::string& name() const { return head->name; }
  const std::string& help() const { return head->help; }
  collectors::MetricType type() const { return head->type; }
  // The text, or with `compressed` a raw deflate segment of it that ends in a full flush
  // (byte-aligned, no final block, no reference to earlier data): segments of many families
  // and polls concatenate into one valid deflate stream, which GzipWriter wraps as a gzip
  // body without recompressing.
  std::string data;
  // 64-bit hash of the lines (set when compressed; with the length: the reuse check).
  // Cheaper than the crc32 + adler32 it replaced, and crc32 is then computed only for text
  // that is compressed anew (the checksums were ~2% of the exporter's CPU at 10,000 hosts).
  std::uint64_t hash = 0;
  std::uint32_t samples = 0;
  std::uint32_t crc = 0;         // crc32 of the lines (set when compressed): gzip's trailer
  std::uint32_t line_bytes = 0;  // size of the lines, whichever way they are kept
  bool compressed = false;
  std::string_view lines() const { return compressed ? std::string_view() : data; }
  std::string_view deflated() const {
    return compressed ? std::string_view(data) : std::string_view();
  }
};

// The families of one poll with the label prefix their lines carry.
struct RenderedFamilies {
  std::string prefix;  // e.g. `target="a",dc="x"`, may be empty
  std::vector<RenderedFamily> families;
  std::size_t samples = 0;       // over all families
  std::size_t bytes = 0;         // of all lines (as text)
  std::size_t stored_bytes = 0;  // as kept: text or deflate segments
  std::size_t reused = 0;        // families whose segment was taken from the previous poll
};

RenderedFamilies render_families(std::string_view label_prefix,
                                 const collectors::Families& families);
// The same samples with another label prefix (e.g. /probe's, without `target`).
RenderedFamilies with_prefix(const RenderedFamilies& rendered, std::string_view label_prefix);

// Replaces each family's text by its deflate segment (zlib level 1-9): a poll's text
// shrinks ~10x, and gzip scrapes copy the segments instead of compressing the page.
// A family whose text has the same length and 64-bit hash as the same family of
// `previous` (the last poll's, compressed at the same level) takes that segment instead of
// being compressed again: most of a host's series (service states and start modes) do not
// change from one poll to the next, and deflate was ~2/3 of keeping a poll (docs/sizing.md).
void compress_families(RenderedFamilies& rendered, int level,
                       const RenderedFamilies* previous = nullptr);
// compress_families(render_families(...)) without keeping each family's text: rendered into
// one scratch buffer and compressed (or matched with `previous`) family by family, so a poll
// allocates only its segments (the text was allocated, shrunk and freed per family).
RenderedFamilies render_compressed(std::string_view label_prefix,
                                   const collectors::Families& families, int level,
                                   const RenderedFamilies* previous = nullptr);
// A family's lines as text (inflated when kept compressed).
void append_lines(std::string& out, const RenderedFamily& family);

// Builds one gzip member (RFC 1952) from text it compresses itself and from deflate segments
// compressed earlier (RenderedFamily::deflated): the segments are copied, their crc32s
// combined. Text between segments is compressed when the next segment or finish() comes.
class GzipWriter {
 public:
  // With reference_segments, append_segment keeps a reference to the segment instead of
  // copying it (finish_pieces): the segments must outlive the pieces.
  explicit GzipWriter(int level = 1, std::size_t reserve = 0, bool reference_segments = false);
  ~GzipWriter();
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;

  std::string& text() { return pending_; }  // append text here
  void append_segment(std::string_view deflated, std::uint32_t crc, std::size_t length);
  void append_family(const RenderedFamily& family);  // its segment, or its text
  std::string finish();

  // The finished member in pieces: `own` holds what the writer produced itself (header,
  // text it compressed, trailer); the other pieces are the referenced segments.
  struct Pieces {
    struct Piece {
      const char* external = nullptr;  // a referenced segment; null: a range of `own`
      std::size_t offset = 0;
      std::size_t length = 0;
    };
    std::string own;
    std::vector<Piece> pieces;
    std::size_t size = 0;
    // Views of the pieces in order, `own_storage` being where `own` now lives.
    std::vector<std::string_view> views(const std::string& own_storage) const;
  };
  Pieces finish_pieces();

 private:
  void flush_pending();
  void write_trailer();
  void close_own_run();  // the bytes of out_ since the last piece become a piece
  struct Stream;
  std::unique_ptr<Stream> stream_;
  std::string out_;
  std::string pending_;
  std::uint32_t crc_;
  std::uint64_t length_ = 0;
  bool reference_ = false;
  std::vector<Pieces::Piece> pieces_;
  std::size_t own_mark_ = 0;  // out_ bytes already in pieces_
  std::size_t size_ = 0;      // bytes in pieces_
};

// Writes the families of all sources, one HELP/TYPE group per family name (HELP/TYPE of
// the first source that has it), names in sorted order, samples in source order; a name
// with no samples at all is left out.
void write_rendered(std::string& out, const std::vector<const RenderedFamilies*>& sources);
// The same page into a gzip body: compressed segments are copied, not recompressed.
void write_rendered(GzipWriter& out, const std::vector<const RenderedFamilies*>& sources);

// write_rendered(out, sources) with every line's label prefix (its source's) replaced by
// `label_prefix`: /probe's page without `target`, relabelled straight into `out` (no copy of
// the families per request).
void write_relabelled(std::string& out, const std::vector<const RenderedFamilies*>& sources,
                      std::string_view label_prefix);

// Appends one gzip member (RFC 1952) of `text` to out, compressed at `level` with a pooled
// deflater.
void gzip_member(std::string& out, std::string_view text, int level = 1);

// One source of families with a pre-rendered label prefix (e.g. `target="a",dc="x"`).
struct FamilySource {
  std::string_view label_prefix;
  const collectors::Families* families = nullptr;
};

// write_rendered of the sources rendered now (tests and one-off pages).
void write_families(std::string& out, const std::vector<FamilySource>& sources);

// The writer of every family not rendered from collector rows (self metrics): HELP and
// TYPE once, then its samples, all escaped and formatted like the collectors' families.
class FamilyWriter {
 public:
  FamilyWriter(std::string& out, std::string_view name, std::string_view help,
               collectors::MetricType type);
  // A histogram family (collectors produce none, so it is not a collectors::MetricType).
  static FamilyWriter histogram(std::string& out, std::string_view name, std::string_view help);

  // labels: pre-rendered pairs (may be empty).
  void sample(std::string_view labels, double value);
  // One histogram series: `counts[i]` observations in bucket i (not cumulative) for each
  // upper bound in `bounds` (ascending), then the +Inf bucket, so counts has one more
  // element than bounds. Writes the cumulative _bucket lines, _sum and _count.
  void histogram_sample(std::string_view labels, std::span<const double> bounds,
                        std::span<const std::uint64_t> counts, double sum);

 private:
  FamilyWriter(std::string& out, std::string_view name, std::string_view help,
               std::string_view type);
  void line(std::string_view suffix, std::string_view labels, std::string_view le, double value);

  std::string& out_;
  std::string_view name_;
};

}  // namespace exporter
