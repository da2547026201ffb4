// A WMI instance as returned by a WQL Enumerate, whichever rendering the server
// chose (SELECT * -> p:<Class> elements; projections -> w:XmlFragment).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace winrm {

// Append-only text storage shared by the rows of one page: every value and property name is a
// view into a chunk here, so a parsed page costs a few chunk allocations instead of one
// malloc per value. Chunks never move, so views stay valid while the arena lives (rows hold it
// through a shared_ptr). Not thread-safe while written; rows are read-only once parsed.
class TextArena {
 public:
  TextArena() = default;
  TextArena(const TextArena&) = delete;
  TextArena& operator=(const TextArena&) = delete;

  std::string_view copy(std::string_view text);
  // Uninitialised, suitably aligned room for `count` objects of trivially copyable T.
  template <typename T>
  T* allocate(std::size_t count) {
    return static_cast<T*>(allocate_bytes(count * sizeof(T), alignof(T)));
  }
  // Heap bytes held by the chunks (what the arena costs, not what is used).
  std::size_t allocated_bytes() const { return allocated_; }
  std::size_t chunk_count() const { return chunks_.size(); }

 private:
  void* allocate_bytes(std::size_t size, std::size_t alignment);

  std::vector<std::unique_ptr<char[]>> chunks_;
  char* next_ = nullptr;
  std::size_t left_ = 0;
  std::size_t allocated_ = 0;
};

// The values of one property: the first inline, arrays in an arena block. Views into the
// row's TextArena; iterable like a container of std::string_view.
class PropertyValues {
 public:
  using value_type = std::string_view;
  using const_iterator = const std::string_view*;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::string_view* begin() const { return size_ <= 1 ? &first_ : items_; }
  const std::string_view* end() const { return begin() + size_; }
  const std::string_view& front() const { return *begin(); }
  const std::string_view& back() const { return begin()[size_ - 1]; }
  const std::string_view& operator[](std::size_t i) const { return begin()[i]; }
  bool operator==(const PropertyValues& other) const;
  // Against any container of strings, e.g. std::vector<std::string>{"a", "b"} in tests.
  template <typename Range>
  requires(!std::same_as<Range, PropertyValues>) bool operator==(const Range& other) const {
    return std::equal(begin(), end(), std::begin(other), std::end(other));
  }

 private:
  friend class Row;
  // Precedes an array's items in the arena. Copies of a row share the block, so an append
  // writes in place only when no copy has claimed that slot yet; otherwise it moves.
  struct Block {
    std::uint32_t capacity = 0;
    std::uint32_t claimed = 0;
  };
  static_assert(sizeof(Block) <= sizeof(std::string_view));
  void push_back(std::string_view value, TextArena& arena);

  std::string_view first_;
  std::string_view* items_ = nullptr;  // arrays (size_ > 1): the slot before holds the Block
  std::uint32_t size_ = 0;
};

struct Property {
  enum class Type {
    kPlain,     // numbers, booleans and strings all arrive as text
    kDatetime,  // <cim:Datetime> / <Datetime>: xs:dateTime text in values
    kInterval,  // <cim:Interval>: xs:duration text in values
    kObject,    // embedded instance or reference (EPR): the element's text content
  };
  std::string_view name;  // into the row's TextArena
  Type type = Type::kPlain;
  bool is_null = false;   // xsi:nil="true" (values is empty)
  PropertyValues values;  // repeated elements = array; one value = scalar or one-element
                          // array (indistinguishable on the wire)
};

class Row {
 public:
  Row() = default;
  explicit Row(std::string_view class_name) : Row(nullptr, class_name) {}
  // A row whose text goes into `arena` (shared with the other rows of a page); a fresh arena
  // is made when null.
  Row(std::shared_ptr<TextArena> arena, std::string_view class_name);

  // Empty for projected (XmlFragment) rows: Windows omits the class name there.
  std::string_view class_name() const { return class_name_; }
  const std::vector<Property>& properties() const { return properties_; }

  // Appends a value (copied into the row's arena); a property seen twice becomes an array.
  // Returns the property the value went to. Amortised O(1): repeats (arrays) are adjacent,
  // and rows with many properties keep a case-insensitive hash index.
  const Property& add(std::string_view name, std::string_view value,
                      Property::Type type = Property::Type::kPlain);
  void add_null(std::string_view name);
  void reserve(std::size_t properties) { properties_.reserve(properties); }

  // For the parser: like add()/add_null(), but `name` and `value` already live in arena() (no
  // copy), e.g. names shared by the rows of one page.
  const Property& add_stored(std::string_view name, std::string_view value, Property::Type type);
  void add_null_stored(std::string_view name);
  TextArena& arena();

  // WMI property names are case-insensitive. O(1) on average.
  const Property* find(std::string_view name) const;

  // The name index's cost, for tests that hold row building linear without timing it: table
  // slots (0 while the row is small enough for a linear scan) and the slots that looking up
  // every property's name visits in total (one per property when nothing collides).
  // Computed by a walk when called; nothing is counted while rows are built.
  struct IndexStats {
    std::size_t slots = 0;
    std::size_t probes = 0;
  };
  IndexStats index_stats() const;

  // Typed accessors: nullopt when the property is missing, nil, or not convertible.
  std::optional<std::string> string(std::string_view name) const;  // first value
  // The first value as a view into the row (valid while the row lives), without a copy.
  std::optional<std::string_view> text(std::string_view name) const;
  std::optional<double> number(std::string_view name) const;
  std::optional<std::uint64_t> uint64(std::string_view name) const;  // exact, no double rounding
  std::optional<std::int64_t> int64(std::string_view name) const;
  std::optional<bool> boolean(std::string_view name) const;
  // Datetime (xs:dateTime or 25-char DMTF CIM_DATETIME) as Unix seconds.
  std::optional<double> unix_time(std::string_view name) const;
  // Interval (xs:duration or DMTF interval) in seconds.
  std::optional<double> seconds(std::string_view name) const;

 private:
  static constexpr std::size_t kNotFound = static_cast<std::size_t>(-1);
  std::size_t position_of(std::string_view name) const;
  // Position of `name`, appending an empty property (and indexing it) when absent; a new
  // property's name is copied into the arena unless `name_stored`.
  std::size_t find_or_append(std::string_view name, bool name_stored, bool& appended);
  const Property& add_value(std::string_view name, bool name_stored, std::string_view value,
                            Property::Type type);

  std::shared_ptr<TextArena> arena_;
  std::string_view class_name_;
  std::vector<Property> properties_;
  // Open-addressing table of property positions + 1 (0 = empty slot), keyed by the lower-case
  // name; empty while the row is small enough for a linear scan.
  std::vector<std::uint32_t> index_;
};

// The typed accessors' conversions for a property already found (Row::find), so that a caller
// reading one property several ways looks it up once: nullopt when nil, empty or not convertible.
std::optional<std::string_view> text_value(const Property& property);
std::optional<double> number_value(const Property& property);
std::optional<std::uint64_t> uint64_value(const Property& property);
std::optional<bool> boolean_value(const Property& property);
std::optional<double> unix_time_value(const Property& property);

// Helpers exposed for reuse and tests.
std::optional<double> parse_xs_datetime(std::string_view text);   // Unix seconds
std::optional<double> parse_xs_duration(std::string_view text);   // seconds
std::optional<double> parse_cim_datetime(std::string_view text);  // "20130309025732.000000+000"
std::optional<double> parse_cim_interval(std::string_view text);  // "00000001020304.000000:000"

}  // namespace winrm
