// A WMI instance as returned by a WQL Enumerate, whichever rendering the server
// chose (SELECT * -> p:<Class> elements; projections -> w:XmlFragment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace winrm {

struct Property {
  enum class Type {
    kPlain,     // numbers, booleans and strings all arrive as text
    kDatetime,  // <cim:Datetime> / <Datetime>: xs:dateTime text in values
    kInterval,  // <cim:Interval>: xs:duration text in values
    kObject,    // embedded instance or reference (EPR): the element's text content
  };
  std::string name;
  Type type = Type::kPlain;
  bool is_null = false;             // xsi:nil="true" (values is empty)
  std::vector<std::string> values;  // repeated elements = array; one value = scalar or
                                    // one-element array (indistinguishable on the wire)
};

class Row {
 public:
  Row() = default;
  explicit Row(std::string class_name) : class_name_(std::move(class_name)) {}

  // Empty for projected (XmlFragment) rows: Windows omits the class name there.
  const std::string& class_name() const { return class_name_; }
  const std::vector<Property>& properties() const { return properties_; }

  // Appends a value; a property seen twice becomes an array. Returns the property the value
  // went to. Amortised O(1): repeats (arrays) are adjacent, and rows with many properties
  // keep a case-insensitive hash index.
  const Property& add(std::string_view name, std::string value,
                      Property::Type type = Property::Type::kPlain);
  void add_null(std::string_view name);
  void reserve(std::size_t properties) { properties_.reserve(properties); }

  // WMI property names are case-insensitive. O(1) on average.
  const Property* find(std::string_view name) const;

  // Typed accessors: nullopt when the property is missing, nil, or not convertible.
  std::optional<std::string> string(std::string_view name) const;  // first value
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
  // Position of `name`, appending an empty property (and indexing it) when absent.
  std::size_t find_or_append(std::string_view name, bool& appended);

  std::string class_name_;
  std::vector<Property> properties_;
  // Open-addressing table of property positions + 1 (0 = empty slot), keyed by the lower-case
  // name; empty while the row is small enough for a linear scan.
  std::vector<std::uint32_t> index_;
};

// Helpers exposed for reuse and tests.
std::optional<double> parse_xs_datetime(std::string_view text);   // Unix seconds
std::optional<double> parse_xs_duration(std::string_view text);   // seconds
std::optional<double> parse_cim_datetime(std::string_view text);  // "20130309025732.000000+000"
std::optional<double> parse_cim_interval(std::string_view text);  // "00000001020304.000000:000"

}  // namespace winrm
