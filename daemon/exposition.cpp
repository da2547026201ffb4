#include "exposition.h"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/utf8.h"

namespace exporter {

void append_help(std::string& out, std::string_view help) {
  std::string clean = common::sanitize_utf8(help, common::Utf8Repair::kEachByte);
  for (char c : clean) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[64];
  std::to_chars_result result;
  // Integers up to 2^53 are exact in a double: print them without exponent.
  if (value == std::trunc(value) && std::fabs(value) <= 9007199254740992.0) {
    result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  out.append(buffer, result.ptr);
}

std::string render_label_pairs(const collectors::Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
  return out;
}

std::string_view type_name(collectors::MetricType type) {
  switch (type) {
    case collectors::MetricType::kCounter:
      return "counter";
    case collectors::MetricType::kGauge:
      return "gauge";
    case collectors::MetricType::kUntyped:
      break;
  }
  return "untyped";
}

namespace {

// `name{prefix,labels} value\n`; labels: the sample's pre-rendered pairs.
void append_sample(std::string& out, std::string_view name, std::string_view prefix,
                   std::string_view labels, double value) {
  out += name;
  if (!prefix.empty() || !labels.empty()) {
    out += '{';
    out += prefix;
    if (!prefix.empty() && !labels.empty()) out += ',';
    out += labels;
    out += '}';
  }
  out += ' ';
  append_value(out, value);
  out += '\n';
}

// The interned heads (intern_family_head): looked up by their fields without building a key.
class HeadTable {
 public:
  struct View {
    std::string_view name;
    std::string_view help;
    collectors::MetricType type;
  };

  FamilyHeadPtr get(const View& view) {
    std::lock_guard lock(mutex_);
    if (auto it = heads_.find(view); it != heads_.end()) return *it;
    if (heads_.size() >= purge_at_) {
      // Only the table holds these (use_count 1 under the lock: nobody else can take one).
      std::erase_if(heads_, [](const FamilyHeadPtr& head) { return head.use_count() == 1; });
      purge_at_ = std::max<std::size_t>(1024, 2 * heads_.size());
    }
    auto head = std::make_shared<const FamilyHead>(
        FamilyHead{std::string(view.name), std::string(view.help), view.type});
    heads_.insert(head);
    return head;
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return heads_.size();
  }

 private:
  static View view_of(const FamilyHeadPtr& head) { return {head->name, head->help, head->type}; }
  static View view_of(const View& view) { return view; }
  struct Hash {
    using is_transparent = void;
    template <class T>
    std::size_t operator()(const T& key) const {
      const View v = view_of(key);
      const std::size_t h = std::hash<std::string_view>{}(v.name);
      return (h ^ (std::hash<std::string_view>{}(v.help) + 0x9e3779b97f4a7c15ULL + (h << 6) +
                   (h >> 2))) +
             static_cast<std::size_t>(v.type);
    }
  };
  struct Equal {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const View x = view_of(a);
      const View y = view_of(b);
      return x.type == y.type && x.name == y.name && x.help == y.help;
    }
  };

  std::mutex mutex_;
  std::unordered_set<FamilyHeadPtr, Hash, Equal> heads_;
  std::size_t purge_at_ = 1024;
};

HeadTable& head_table() {
  static HeadTable* const table = new HeadTable();  // never destroyed: used until exit
  return *table;
}

}  // namespace

FamilyHeadPtr intern_family_head(std::string_view name, std::string_view help,
                                 collectors::MetricType type) {
  return head_table().get({name, help, type});
}

std::size_t interned_family_heads() { return head_table().size(); }

namespace {

void append_family_lines(std::string& out, std::string_view label_prefix,
                         const collectors::MetricFamily& family) {
  out.reserve(out.size() + family.label_text.size() +
              family.samples.size() * (family.name.size() + label_prefix.size() + 32));
  for (const auto& sample : family.samples) {
    append_sample(out, family.name, label_prefix, family.label_pairs(sample), sample.value);
  }
}

}  // namespace

RenderedFamilies render_families(std::string_view label_prefix,
                                 const collectors::Families& families) {
  RenderedFamilies rendered;
  rendered.prefix = label_prefix;
  rendered.families.reserve(families.size());
  for (const auto& family : families) {
    RenderedFamily& out = rendered.families.emplace_back();
    out.head = intern_family_head(family.name, family.help, family.type);
    out.samples = family.samples.size();
    append_family_lines(out.data, label_prefix, family);
    out.data.shrink_to_fit();  // kept for a whole interval: no slack per poll
    out.line_bytes = static_cast<std::uint32_t>(out.data.size());
    rendered.samples += out.samples;
    rendered.bytes += out.data.size();
    rendered.stored_bytes += out.data.size();
  }
  return rendered;
}

namespace {

// Appends `lines` (a family's, each `name{old_prefix,labels} value`, `name{old_prefix} value`,
// `name{labels} value` or `name value`: append_sample) with `old_prefix` swapped for
// `label_prefix`.
void append_relabelled(std::string& out, std::string_view lines, std::string_view name,
                       std::string_view old_prefix, std::string_view label_prefix) {
  while (!lines.empty()) {
    std::size_t end = lines.find('\n');
    std::string_view line = lines.substr(0, end == std::string_view::npos ? lines.size() : end + 1);
    lines.remove_prefix(line.size());
    std::string_view rest = line.substr(name.size());
    bool has_labels;
    if (old_prefix.empty()) {
      has_labels = rest.starts_with('{');
      if (has_labels) rest.remove_prefix(1);
    } else {
      rest.remove_prefix(1 + old_prefix.size());  // `{` + old prefix
      has_labels = rest.starts_with(',');
      rest.remove_prefix(1);  // `,` before the labels or `}` before the value
    }
    // rest: `labels} value\n` when has_labels, else ` value\n`.
    out += name;
    if (label_prefix.empty() && !has_labels) {
      out += rest;
      continue;
    }
    out += '{';
    out += label_prefix;
    if (has_labels) {
      if (!label_prefix.empty()) out += ',';
    } else {
      out += '}';
    }
    out += rest;
  }
}

}  // namespace

RenderedFamilies with_prefix(const RenderedFamilies& rendered, std::string_view label_prefix) {
  RenderedFamilies out;
  out.prefix = label_prefix;
  out.samples = rendered.samples;
  out.families.reserve(rendered.families.size());
  std::string text;  // one inflate buffer for all families
  for (const auto& family : rendered.families) {
    RenderedFamily& copy = out.families.emplace_back();
    copy.head = family.head;
    copy.samples = family.samples;
    // Every line grows by at most the new prefix and its `{`, `,` or `}`.
    copy.data.reserve(family.line_bytes + family.samples * (label_prefix.size() + 2));
    text.clear();
    if (family.compressed) append_lines(text, family);
    append_relabelled(copy.data, family.compressed ? std::string_view(text) : family.lines(),
                      family.name(), rendered.prefix, label_prefix);
    copy.line_bytes = static_cast<std::uint32_t>(copy.data.size());
    out.bytes += copy.data.size();
    out.stored_bytes += copy.data.size();
  }
  return out;
}

namespace {

// Raw deflate (no zlib/gzip wrapper): the segments are spliced into gzip bodies.
constexpr int kRawDeflate = -15;

// In place: zlib's state points back at its z_stream, which therefore must not move.
void init_deflater(z_stream& stream, int level) {
  stream = z_stream{};
  if (deflateInit2(&stream, std::clamp(level, 1, 9), Z_DEFLATED, kRawDeflate, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::bad_alloc();  // the only failure with valid arguments
  }
}

// Objects that cost much to set up (zlib: ~260 KB of malloc for a deflate stream; libdeflate:
// a few hundred KB for a compressor), kept for reuse between polls and pages: set up once per
// poll or page before. The pool keeps a few (each is in use only while a thread compresses,
// and one core runs one at a time), so ~1,000 poll threads do not each hold one; the rest are
// freed.
template <typename T>
class KeptPool {
 public:
  using Ptr = std::unique_ptr<T>;

  static KeptPool& instance() {
    static KeptPool* pool = new KeptPool;  // never destroyed: used until exit
    return *pool;
  }

  // A kept object for which `fits` holds, else null.
  template <typename Fits>
  Ptr take_if(const Fits& fits) {
    std::lock_guard lock(mutex_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (fits(**it)) {
        Ptr kept = std::move(*it);
        free_.erase(it);
        return kept;
      }
    }
    return nullptr;
  }

  void give(Ptr kept) {
    std::lock_guard lock(mutex_);
    if (free_.size() < kKeep) free_.push_back(std::move(kept));
    // else: freed here - more were in use at once than are worth keeping
  }

 private:
  static constexpr std::size_t kKeep = 8;
  std::mutex mutex_;
  std::vector<Ptr> free_;
};

// A pooled object for one scope (returned to the pool at its end, also on exceptions): a kept
// one that fits(args...), else T(args...).
template <typename T>
class Pooled {
 public:
  template <typename... Args>
  explicit Pooled(const Args&... args)
      : kept_(KeptPool<T>::instance().take_if([&](const T& kept) { return kept.fits(args...); })) {
    if (!kept_) kept_ = std::make_unique<T>(args...);
  }
  ~Pooled() {
    if (kept_) KeptPool<T>::instance().give(std::move(kept_));
  }
  Pooled(const Pooled&) = delete;
  Pooled& operator=(const Pooled&) = delete;
  T& operator*() { return *kept_; }
  T* operator->() { return kept_.get(); }

 private:
  typename KeptPool<T>::Ptr kept_;
};

// A zlib raw deflate stream at one level, for the spliceable segments. Reused, it costs a reset.
struct DeflateStream {
  explicit DeflateStream(int level) : level(level) { init_deflater(z, level); }
  ~DeflateStream() { deflateEnd(&z); }
  DeflateStream(const DeflateStream&) = delete;
  DeflateStream& operator=(const DeflateStream&) = delete;
  bool fits(int wanted) const { return level == wanted; }
  z_stream z{};
  int level;
};

// libdeflate for whole buffers: a /probe page compressed as one gzip member, a cached segment
// inflated to relabel it or to serve it as text. A /probe was ~75% zlib; with libdeflate a
// 119 KB page takes 123 us instead of 286 to gzip (and comes out 9% smaller) and 54 us instead
// of 118 to inflate and re-label (bench/RESULTS.md "/probe with libdeflate"). zlib stays for the
// cached segments: they end with a sync flush so that they can be spliced, which libdeflate's
// whole-buffer API cannot produce.
struct LibdeflateCoders {
  LibdeflateCoders() = default;
  ~LibdeflateCoders() {
    libdeflate_free_compressor(compressor);  // both accept null
    libdeflate_free_decompressor(decompressor);
  }
  LibdeflateCoders(const LibdeflateCoders&) = delete;
  LibdeflateCoders& operator=(const LibdeflateCoders&) = delete;
  bool fits() const { return true; }
  libdeflate_compressor* compressor_at(int wanted) {
    if (compressor == nullptr || level != wanted) {
      libdeflate_free_compressor(compressor);
      compressor = libdeflate_alloc_compressor(wanted);
      level = wanted;
      if (compressor == nullptr) throw std::bad_alloc();
    }
    return compressor;
  }
  libdeflate_decompressor* inflater() {
    if (decompressor == nullptr) decompressor = libdeflate_alloc_decompressor();
    if (decompressor == nullptr) throw std::bad_alloc();
    return decompressor;
  }
  libdeflate_compressor* compressor = nullptr;  // at `level`, made on first use
  libdeflate_decompressor* decompressor = nullptr;
  int level = 0;
};

// Appends to out the text compressed from scratch (no reference to earlier data) and ended
// by a sync flush (byte-aligned, not final), so that it may be followed by any segment.
void append_segment_of(DeflateStream& pooled, std::string& out, std::string_view text) {
  z_stream& stream = pooled.z;
  deflateReset(&stream);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  while (true) {
    const std::size_t at = out.size();
    const std::size_t room = deflateBound(&stream, stream.avail_in) + 64;
    int status = Z_OK;
    // Grown without zero-filling the room deflate overwrites (resize did: a memset of about
    // the text's size per segment).
    out.resize_and_overwrite(at + room, [&](char* data, std::size_t) {
      stream.next_out = reinterpret_cast<Bytef*>(data + at);
      stream.avail_out = static_cast<uInt>(room);
      status = deflate(&stream, Z_SYNC_FLUSH);
      return at + room - stream.avail_out;
    });
    if (status != Z_OK && status != Z_BUF_ERROR) {
      throw std::logic_error("deflate failed: " + std::to_string(status));
    }
    if (stream.avail_out != 0 && stream.avail_in == 0) break;  // all in, all flushed
  }
}

struct Group {
  const RenderedFamily* first = nullptr;
  std::size_t samples = 0;
  std::vector<const RenderedFamily*> members;
};

struct Grouped {
  std::unordered_map<std::string_view, Group> groups;
  std::vector<std::string_view> names;  // sorted
  std::size_t bytes = 0;
};

Grouped group_families(const std::vector<const RenderedFamilies*>& sources) {
  Grouped grouped;
  for (const auto* source : sources) {
    if (!source) continue;
    grouped.bytes += source->bytes;
    for (const auto& family : source->families) {
      Group& group = grouped.groups[family.name()];
      if (!group.first) group.first = &family;
      group.samples += family.samples;
      group.members.push_back(&family);
    }
  }
  grouped.names.reserve(grouped.groups.size());
  for (const auto& [name, group] : grouped.groups) grouped.names.push_back(name);
  std::sort(grouped.names.begin(), grouped.names.end());
  return grouped;
}

void append_header(std::string& out, const RenderedFamily& first) {
  out += "# HELP ";
  out += first.name();
  out += ' ';
  append_help(out, first.help());
  out += "\n# TYPE ";
  out += first.name();
  out += ' ';
  out += type_name(first.type());
  out += '\n';
}

}  // namespace

namespace {

// The same family in the previous poll's families (usually at the same index).
const RenderedFamily* previous_family(const RenderedFamilies* previous, std::size_t index,
                                      std::string_view name) {
  if (!previous) return nullptr;
  const auto& families = previous->families;
  if (index < families.size() && families[index].name() == name) return &families[index];
  for (const auto& family : families) {
    if (family.name() == name) return &family;
  }
  return nullptr;
}

}  // namespace

namespace {

// A family of one line has nothing for deflate to match: zlib level 1 gave its text back
// within 5 bytes of its size (53-162 byte lines of the default collectors) and cost ~3.6 us
// per line (reset, trees, flush), for ~33 changed one-line families per host and minute.
constexpr std::size_t kMaxStoredLine = 4096;

// `text` as one stored (uncompressed) deflate block, not final: byte-aligned before and after
// (header bits 000 and padding, LEN, NLEN, the bytes), so a valid segment like the others.
void append_stored_segment(std::string& out, std::string_view text) {
  const auto length = static_cast<std::uint16_t>(text.size());
  const auto inverse = static_cast<std::uint16_t>(~length);
  out.clear();
  out.reserve(5 + text.size());
  out += '\0';
  out += static_cast<char>(length & 0xff);
  out += static_cast<char>(length >> 8);
  out += static_cast<char>(inverse & 0xff);
  out += static_cast<char>(inverse >> 8);
  out += text;
}

// The text of a segment made by append_stored_segment (one stored block of exactly
// `line_bytes`), else nullopt: a deflated segment never has that shape.
std::optional<std::string_view> stored_segment_text(std::string_view segment,
                                                    std::uint32_t line_bytes) {
  if (segment.size() != std::size_t{line_bytes} + 5 || segment[0] != '\0') return std::nullopt;
  const auto length = static_cast<std::uint32_t>(static_cast<unsigned char>(segment[1]) |
                                                 static_cast<unsigned char>(segment[2]) << 8);
  if (length != line_bytes) return std::nullopt;
  return segment.substr(5);
}

// Keeps one family's text as a deflate segment: the previous poll's segment when the text is
// the same (length and a 64-bit hash), else the text compressed with `deflater` (taken from
// the pool on first use). `segment`: scratch, reused between families.
void keep_deflated(RenderedFamily& family, std::string_view text, const RenderedFamily* before,
                   int level, std::optional<Pooled<DeflateStream>>& deflater, std::string& segment,
                   std::size_t& reused) {
  family.line_bytes = static_cast<std::uint32_t>(text.size());
  // A false match (the same length and hash, other text) is ~2^-64 per family and poll.
  family.hash = std::hash<std::string_view>{}(text);
  if (before && before->compressed && before->line_bytes == family.line_bytes &&
      before->hash == family.hash) {
    family.data = before->data;
    family.compressed = true;
    family.crc = before->crc;
    ++reused;
    return;
  }
  family.crc = static_cast<std::uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), text.size()));
  if (family.samples <= 1 && text.size() <= kMaxStoredLine) {
    append_stored_segment(family.data, text);
    family.compressed = true;
    return;
  }
  if (!deflater) deflater.emplace(std::clamp(level, 1, 9));
  segment.clear();
  append_segment_of(**deflater, segment, text);
  family.data.assign(segment);  // exactly its size: kept for a whole interval
  family.compressed = true;
}

}  // namespace

void compress_families(RenderedFamilies& rendered, int level, const RenderedFamilies* previous) {
  std::optional<Pooled<DeflateStream>> stream;  // taken on the first family that needs deflate
  std::string segment;
  rendered.stored_bytes = 0;
  rendered.reused = 0;
  for (std::size_t i = 0; i < rendered.families.size(); ++i) {
    RenderedFamily& family = rendered.families[i];
    if (!family.compressed) {
      // The text leaves the family (freed at the end of this block), the segment takes its
      // place. A swap, not `data = std::string()`: libstdc++'s move assignment from a short
      // (SSO) string copies its bytes into the buffer it already has and keeps that buffer,
      // so every kept poll held its whole text beside its segments (heaptrack: ~60% of the
      // heap at 500 hosts, ~125 KB per host).
      std::string text;
      text.swap(family.data);
      keep_deflated(family, text, previous_family(previous, i, family.name()), level, stream,
                    segment, rendered.reused);
    }
    rendered.stored_bytes += family.data.size();
  }
}

RenderedFamilies render_compressed(std::string_view label_prefix,
                                   const collectors::Families& families, int level,
                                   const RenderedFamilies* previous) {
  RenderedFamilies rendered;
  rendered.prefix = label_prefix;
  rendered.families.reserve(families.size());
  std::optional<Pooled<DeflateStream>> stream;
  // One family's lines at a time (the kept result holds only segments), in buffers the
  // thread keeps between polls: grown once, not per poll (malloc was the poll workers'
  // largest cost at 10,000 hosts). Released when a huge family made them large.
  thread_local std::string text;
  thread_local std::string segment;
  for (std::size_t i = 0; i < families.size(); ++i) {
    const collectors::MetricFamily& family = families[i];
    RenderedFamily& out = rendered.families.emplace_back();
    const RenderedFamily* before = previous_family(previous, i, family.name);
    // The previous poll's head when it matches: no lookup in the process-wide table (a lock
    // and two hashes of name and HELP per family and poll).
    if (before && before->type() == family.type && before->help() == family.help) {
      out.head = before->head;
    } else {
      out.head = intern_family_head(family.name, family.help, family.type);
    }
    out.samples = static_cast<std::uint32_t>(family.samples.size());
    text.clear();
    append_family_lines(text, label_prefix, family);
    keep_deflated(out, text, before, level, stream, segment, rendered.reused);
    rendered.samples += out.samples;
    rendered.bytes += text.size();
    rendered.stored_bytes += out.data.size();
  }
  constexpr std::size_t kKeepScratch = 1 << 20;
  if (text.capacity() > kKeepScratch) std::string().swap(text);
  if (segment.capacity() > kKeepScratch) std::string().swap(segment);
  return rendered;
}

void append_lines(std::string& out, const RenderedFamily& family) {
  if (!family.compressed) {
    out += family.data;
    return;
  }
  // A one-line family is one stored block, its text as it is: most of a host's families are,
  // and libdeflate's per-call set-up is not needed for them.
  const std::string_view segment = family.data;
  if (auto stored = stored_segment_text(segment, family.line_bytes)) {
    out += *stored;
    return;
  }
  // A segment ends with a sync flush (an empty stored block, not final); libdeflate inflates
  // whole streams only, so a copy gets an empty final stored block added (BFINAL=1, BTYPE=00,
  // LEN=0, NLEN=0xffff): a fixed Huffman one would make libdeflate rebuild its static tables
  // after every segment with dynamic blocks.
  thread_local std::string whole;
  whole.assign(segment);
  whole.append("\x01\x00\x00\xff\xff", 5);
  Pooled<LibdeflateCoders> coders;
  libdeflate_decompressor* inflater = coders->inflater();
  const std::size_t at = out.size();
  bool ok = false;
  // The size handed to the lambda is not used: g++ 12's libstdc++ passes the grown capacity
  // there, not the size asked for.
  out.resize_and_overwrite(at + family.line_bytes, [&](char* data, std::size_t) {
    std::size_t produced = 0;
    ok = libdeflate_deflate_decompress(inflater, whole.data(), whole.size(), data + at,
                                       family.line_bytes, &produced) == LIBDEFLATE_SUCCESS &&
         produced == family.line_bytes;
    return ok ? at + family.line_bytes : at;
  });
  constexpr std::size_t kKeepScratch = 1 << 20;
  if (whole.capacity() > kKeepScratch) std::string().swap(whole);
  // Our own segment of exactly line_bytes: anything else is a bug, not input to tolerate.
  if (!ok) throw std::logic_error("corrupt cached deflate segment for " + family.name());
}

struct GzipWriter::Stream {
  explicit Stream(int level) : deflater(level) {}
  Pooled<DeflateStream> deflater;
};

GzipWriter::GzipWriter(int level, std::size_t reserve, bool reference_segments)
    : stream_(std::make_unique<Stream>(std::clamp(level, 1, 9))),
      crc_(static_cast<std::uint32_t>(crc32(0, nullptr, 0))),
      reference_(reference_segments) {
  out_.reserve(reserve + 64);
  // RFC 1952 header: deflate, no flags, no mtime, no extra flags, OS unknown.
  static constexpr char kHeader[] = {'\x1f', '\x8b', 8, 0, 0, 0, 0, 0, 0, '\xff'};
  out_.append(kHeader, sizeof kHeader);
}

GzipWriter::~GzipWriter() = default;

void GzipWriter::flush_pending() {
  if (pending_.empty()) return;
  crc_ = static_cast<std::uint32_t>(
      crc32_z(crc_, reinterpret_cast<const Bytef*>(pending_.data()), pending_.size()));
  length_ += pending_.size();
  append_segment_of(*stream_->deflater, out_, pending_);
  pending_.clear();
}

void GzipWriter::close_own_run() {
  if (out_.size() == own_mark_) return;
  pieces_.push_back({nullptr, own_mark_, out_.size() - own_mark_});
  size_ += out_.size() - own_mark_;
  own_mark_ = out_.size();
}

namespace {

// crc32_combine(a, b, length) is crc32_combine_op(a, b, crc32_combine_gen(length)), and the
// gen step is most of its cost (~0.28 us against ~0.09 us on the test VM): a gzip /metrics page
// combines one crc per kept family (~1 M at 10,000 hosts). Segment lengths below 64 KiB get their
// op computed once per process (a 256 KiB table, touched pages only; racing threads store the
// same value).
uLong combine_op(std::size_t length) {
  static std::array<std::atomic<std::uint32_t>, 65536> ops{};  // 0: not computed yet
  if (length >= ops.size()) return crc32_combine_gen(static_cast<z_off_t>(length));
  std::uint32_t op = ops[length].load(std::memory_order_relaxed);
  if (op == 0) {
    op = static_cast<std::uint32_t>(crc32_combine_gen(static_cast<z_off_t>(length)));
    ops[length].store(op, std::memory_order_relaxed);
  }
  return op;
}

}  // namespace

void GzipWriter::append_segment(std::string_view deflated, std::uint32_t crc, std::size_t length) {
  flush_pending();
  if (reference_) {
    close_own_run();
    if (!deflated.empty()) pieces_.push_back({deflated.data(), 0, deflated.size()});
    size_ += deflated.size();
  } else {
    out_.append(deflated);
  }
  crc_ = static_cast<std::uint32_t>(crc32_combine_op(crc_, crc, combine_op(length)));
  length_ += length;
}

void GzipWriter::append_family(const RenderedFamily& family) {
  if (!family.compressed) {
    pending_ += family.data;
  } else {
    append_segment(family.data, family.crc, family.line_bytes);
  }
}

void GzipWriter::write_trailer() {
  flush_pending();
  out_ += '\x03';  // an empty final block (fixed Huffman): ends the deflate stream
  out_ += '\x00';
  for (std::uint32_t word : {crc_, static_cast<std::uint32_t>(length_)}) {  // little-endian
    for (int shift = 0; shift < 32; shift += 8) out_ += static_cast<char>((word >> shift) & 0xFF);
  }
}

std::string GzipWriter::finish() {
  if (reference_) {
    Pieces pieces = finish_pieces();
    std::string joined;
    joined.reserve(pieces.size);
    for (std::string_view piece : pieces.views(pieces.own)) joined += piece;
    return joined;
  }
  write_trailer();
  return std::move(out_);
}

GzipWriter::Pieces GzipWriter::finish_pieces() {
  write_trailer();
  close_own_run();  // without references: all of out_ is the one piece
  Pieces result;
  result.size = size_;
  result.pieces = std::move(pieces_);
  result.own = std::move(out_);
  return result;
}

std::vector<std::string_view> GzipWriter::Pieces::views(const std::string& own_storage) const {
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Piece& piece : pieces) {
    out.emplace_back(piece.external ? piece.external : own_storage.data() + piece.offset,
                     piece.length);
  }
  return out;
}

void write_rendered(std::string& out, const std::vector<const RenderedFamilies*>& sources) {
  Grouped grouped = group_families(sources);
  out.reserve(out.size() + grouped.bytes + grouped.names.size() * 256);
  for (std::string_view name : grouped.names) {
    const Group& group = grouped.groups[name];
    if (group.samples == 0) continue;  // a family with no samples is noise
    append_header(out, *group.first);
    for (const auto* member : group.members) append_lines(out, *member);
  }
}

void write_rendered(GzipWriter& out, const std::vector<const RenderedFamilies*>& sources) {
  Grouped grouped = group_families(sources);
  for (std::string_view name : grouped.names) {
    const Group& group = grouped.groups[name];
    if (group.samples == 0) continue;
    append_header(out.text(), *group.first);
    for (const auto* member : group.members) out.append_family(*member);
  }
}

void write_relabelled(std::string& out, const std::vector<const RenderedFamilies*>& sources,
                      std::string_view label_prefix) {
  Grouped grouped = group_families(sources);
  out.reserve(out.size() + grouped.bytes + grouped.bytes / 16 + grouped.names.size() * 256);
  // The inflate buffer of this thread, kept between requests (a /probe runs this per request:
  // no heap growth and trim of a family's text each time).
  thread_local std::string text;
  for (std::string_view name : grouped.names) {
    const Group& group = grouped.groups[name];
    if (group.samples == 0) continue;
    append_header(out, *group.first);
    for (const auto* member : group.members) {
      // The member's own prefix: that of the source whose families hold it (a handful).
      std::string_view old_prefix;
      for (const auto* source : sources) {
        if (source && !source->families.empty() && member >= source->families.data() &&
            member < source->families.data() + source->families.size()) {
          old_prefix = source->prefix;
          break;
        }
      }
      std::string_view lines = member->lines();
      if (member->compressed) {
        text.clear();
        append_lines(text, *member);
        lines = text;
      }
      append_relabelled(out, lines, member->name(), old_prefix, label_prefix);
    }
  }
  constexpr std::size_t kKeepScratch = 1 << 20;
  if (text.capacity() > kKeepScratch) std::string().swap(text);
}

void gzip_member(std::string& out, std::string_view text, int level) {
  Pooled<LibdeflateCoders> coders;
  libdeflate_compressor* compressor = coders->compressor_at(std::clamp(level, 1, 9));
  const std::size_t at = out.size();
  const std::size_t room = libdeflate_gzip_compress_bound(compressor, text.size());
  std::size_t written = 0;
  out.resize_and_overwrite(at + room, [&](char* data, std::size_t) {
    written = libdeflate_gzip_compress(compressor, text.data(), text.size(), data + at, room);
    return at + written;
  });
  // The bound always fits: 0 would be a bug in the bound, not input to tolerate.
  if (written == 0) throw std::logic_error("libdeflate_gzip_compress: output over its bound");
}

void write_families(std::string& out, const std::vector<FamilySource>& sources) {
  std::vector<RenderedFamilies> rendered;
  rendered.reserve(sources.size());
  for (const auto& source : sources) {
    if (source.families) rendered.push_back(render_families(source.label_prefix, *source.families));
  }
  std::vector<const RenderedFamilies*> pointers;
  for (const auto& source : rendered) pointers.push_back(&source);
  write_rendered(out, pointers);
}

FamilyWriter::FamilyWriter(std::string& out, std::string_view name, std::string_view help,
                           collectors::MetricType type)
    : FamilyWriter(out, name, help, type_name(type)) {}

FamilyWriter FamilyWriter::histogram(std::string& out, std::string_view name,
                                     std::string_view help) {
  return FamilyWriter(out, name, help, std::string_view("histogram"));
}

FamilyWriter::FamilyWriter(std::string& out, std::string_view name, std::string_view help,
                           std::string_view type)
    : out_(out), name_(name) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void FamilyWriter::sample(std::string_view labels, double value) { line("", labels, "", value); }

void FamilyWriter::histogram_sample(std::string_view labels, std::span<const double> bounds,
                                    std::span<const std::uint64_t> counts, double sum) {
  if (counts.size() != bounds.size() + 1) {
    throw std::logic_error("histogram_sample: counts needs one more element than bounds");
  }
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    le.clear();
    if (i < bounds.size()) {
      // As Go's FormatFloat 'g' (client_golang): 0.0005, not the shorter 5e-04.
      char buffer[64];
      auto result =
          std::to_chars(buffer, buffer + sizeof buffer, bounds[i], std::chars_format::general);
      le.assign(buffer, result.ptr);
    } else {
      le = "+Inf";
    }
    line("_bucket", labels, le, static_cast<double>(cumulative));
  }
  line("_sum", labels, "", sum);
  line("_count", labels, "", static_cast<double>(cumulative));
}

void FamilyWriter::line(std::string_view suffix, std::string_view labels, std::string_view le,
                        double value) {
  out_ += name_;
  out_ += suffix;
  if (!labels.empty() || !le.empty()) {
    out_ += '{';
    out_ += labels;
    if (!le.empty()) {
      if (!labels.empty()) out_ += ',';
      out_ += "le=\"";
      out_ += le;
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  append_value(out_, value);
  out_ += '\n';
}

}  // namespace exporter
