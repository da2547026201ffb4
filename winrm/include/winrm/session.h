// A WinRM session with one target: runs WQL queries with Enumerate/Pull/Release over
// one authenticated keep-alive connection. Not thread-safe; the daemon keeps one
// Session per target and serialises queries on it (or pools several).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/auth.h"
#include "winrm/envelope.h"
#include "winrm/error.h"
#include "winrm/row.h"
#include "winrm/transport.h"

namespace winrm {

struct SessionOptions {
  EndpointOptions endpoint;
  std::uint32_t max_envelope_size = 512000;
  std::uint32_t max_elements = 32000;
  std::chrono::milliseconds operation_timeout{20000};  // clamped below the deadline
  int pull_timeout_retries = 2;                        // re-send a timed-out Pull with its context
  std::string locale = "en-US";
  // Reject pages whose a:RelatesTo differs from the request's MessageID. Only replay
  // servers that serve captured bodies verbatim need this off.
  bool verify_relates_to = true;
};

class Session {
 public:
  Session(SessionOptions options, std::shared_ptr<Auth> auth,
          std::shared_ptr<TransportCounters> counters);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // All rows of a WQL query in wmi_namespace ("root/cimv2"). Enumerate with
  // OptimizeEnumeration + MaxElements, Pull with the newest context until the end,
  // Release on early exit. A timed-out Pull is retried; an expired context restarts
  // the enumeration once. Never runs past deadline.
  Result<std::vector<Row>> enumerate(std::string_view wmi_namespace, std::string_view wql,
                                     Deadline deadline);

  const SessionOptions& options() const { return options_; }

 private:
  Result<std::vector<Row>> enumerate_once(std::string_view wmi_namespace, std::string_view wql,
                                          Deadline deadline);
  // One request/response: auth, HTTP status to error, parse, RelatesTo check.
  Result<EnumerationPage> exchange(const std::string& body, const std::string& message_id,
                                   Deadline deadline);
  // Best-effort Release of a live context on early exit (own short deadline).
  void release(const RequestOptions& request, const std::string& context);

  SessionOptions options_;
  std::shared_ptr<Auth> auth_;
  std::shared_ptr<TransportCounters> counters_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace winrm
