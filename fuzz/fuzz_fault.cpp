// libFuzzer: a SOAP fault body from the network. Any bytes must give a Fault or an error,
// and a parsed fault must classify.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "winrm/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto fault = winrm::parse_fault(body);
  if (!fault) return 0;
  volatile std::size_t sink = fault->code.size() + fault->subcode.size() + fault->machine.size() +
                              fault->message.size() + fault->fault_detail.size() +
                              static_cast<std::size_t>(fault->wsman_code) +
                              static_cast<std::size_t>(winrm::classify(*fault));
  (void)sink;
  return 0;
}
