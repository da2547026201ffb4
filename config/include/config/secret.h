// A secret value (password) that cannot be printed by accident: no operator<<, no
// fmt formatter, and str() shows a fixed mask. Use reveal() only where it is sent.
// Copies share one buffer (a reload, every target of a profile), and the bytes are
// overwritten when the last copy goes, so a released password does not linger in freed
// heap memory.
#pragma once

#include <memory>
#include <string>

namespace config {

class Secret {
 public:
  Secret() = default;
  // Takes value's bytes and overwrites what is left of them in value.
  explicit Secret(std::string value);
  const std::string& reveal() const;
  bool empty() const { return !value_ || value_->value.empty(); }
  std::string str() const { return empty() ? "" : "<secret>"; }
  // Same bytes (the shared buffer is compared first).
  bool operator==(const Secret& other) const;
  // Copies alive of this secret's bytes (tests: proves sharing).
  long use_count() const { return value_.use_count(); }

 private:
  struct Wiped {
    std::string value;
    ~Wiped();
  };
  std::shared_ptr<const Wiped> value_;
};

// Overwrites every byte of text's buffer (its capacity) in a way the compiler keeps.
void wipe(std::string& text);

}  // namespace config
