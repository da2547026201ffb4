#include "config/secret.h"

#include <openssl/crypto.h>

namespace config {

void wipe(std::string& text) {
  // The whole capacity: a shortened or moved-from string keeps old bytes past its size.
  text.resize(text.capacity());
  OPENSSL_cleanse(text.data(), text.size());
  text.clear();
}

Secret::Wiped::~Wiped() { wipe(value); }

Secret::Secret(std::string value) {
  auto wiped = std::make_shared<Wiped>();
  wiped->value = value;  // a copy: a moved short string would leave its bytes behind
  wipe(value);
  value_ = std::move(wiped);
}

const std::string& Secret::reveal() const {
  static const std::string kEmpty;
  return value_ ? value_->value : kEmpty;
}

bool Secret::operator==(const Secret& other) const {
  if (value_ == other.value_) return true;
  return reveal() == other.reveal();
}

}  // namespace config
