// A WinRM session with one target: runs WQL queries with Enumerate/Pull/Release over
// one authenticated keep-alive connection. Not thread-safe; the daemon keeps one
// Session per target and serialises queries on it (or pools several).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/auth.h"
#include "winrm/envelope.h"
#include "winrm/error.h"
#include "winrm/row.h"
#include "winrm/task.h"
#include "winrm/transport.h"

namespace winrm {

// Bounds on one enumerate() call, so a host that keeps sending pages until the deadline
// cannot grow the process without limit. A poll that hits one fails with an error naming
// the limit and its config key (limits.<name>), after a Release of the enumeration.
struct SessionLimits {
  // Largest single HTTP response body. 0 = auto:
  //   2 x max_envelope_size + 64 KiB
  // (a UTF-16 response carries two bytes per character; the 64 KiB cover Kerberos/NTLM
  // message-encryption framing and HTTP chunking slack). Never above
  // EndpointOptions::max_response_bytes, the transport's own ceiling.
  std::size_t max_response_bytes = 0;
  // Bounds both the response bytes one poll receives and the memory of the rows it
  // holds (parsed rows take about twice their UTF-8 XML: per-value strings and vectors).
  std::size_t max_poll_bytes = 64 * 1024 * 1024;
  std::size_t max_rows_per_poll = 100000;  // instances of one poll
  std::size_t max_properties_per_instance = 10000;
  std::size_t max_values_per_property = 100000;  // array elements (parser bound, no config key)
};

inline constexpr std::size_t kResponseBytesHeadroom = 64 * 1024;
inline constexpr std::uint32_t kMinMaxEnvelopeSize = 8192;

struct SessionOptions {
  EndpointOptions endpoint;
  std::uint32_t max_envelope_size = 512000;            // w:MaxEnvelopeSize (2008 R2 hosts: 153600)
  std::uint32_t max_elements = 32000;                  // w:MaxElements / n:MaxElements per page
  std::chrono::milliseconds operation_timeout{20000};  // clamped below the deadline
  int pull_timeout_retries = 2;                        // re-send a timed-out Pull with its context
  std::string locale = "en-US";                        // w:Locale (language of fault texts)
  SessionLimits limits;
  // Reject pages whose a:RelatesTo differs from the request's MessageID. Only replay
  // servers that serve captured bodies verbatim need this off.
  bool verify_relates_to = true;
};

// The response size cap a Session applies (see SessionLimits::max_response_bytes).
std::size_t effective_max_response_bytes(const SessionOptions& options);

class Session {
 public:
  Session(SessionOptions options, std::shared_ptr<Auth> auth,
          std::shared_ptr<TransportCounters> counters);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // All rows of a WQL query in wmi_namespace ("root/cimv2"). Enumerate with
  // OptimizeEnumeration + MaxElements, Pull with the newest context until the end,
  // Release on early exit (limit, deadline, fault, bad page) while the connection is
  // still open. A timed-out Pull is retried; an expired or invalidated context restarts
  // the enumeration once; "MaxEnvelopeSize too large" retries with half the size (down
  // to kMinMaxEnvelopeSize). Bounded by options().limits. Never runs past deadline.
  // Runs enumerate_async to completion on the calling thread.
  Result<std::vector<Row>> enumerate(std::string_view wmi_namespace, std::string_view wql,
                                     Deadline deadline);
  // The same as a coroutine: no thread is held while a request is in flight; the pages are
  // parsed on the awaiting chain's executor (winrm/task.h).
  Task<Result<std::vector<Row>>> enumerate_async(std::string wmi_namespace, std::string wql,
                                                 Deadline deadline);

  const SessionOptions& options() const { return options_; }
  // The connection's id (Connection::connection_id): it changes with every connection the
  // transport opens, so a caller can count the connections its session opened.
  std::uint64_t connection_id() const;

 private:
  Task<Result<std::vector<Row>>> enumerate_once(const std::string& wmi_namespace,
                                                const std::string& wql, Deadline deadline);
  struct PollBudget {
    std::size_t bytes = 0;     // response bytes so far
    std::size_t rows = 0;      // rows held
    std::size_t row_heap = 0;  // estimated memory of the rows held
  };
  // One request/response: auth, HTTP status to error, byte budget, parse, RelatesTo.
  Task<Result<EnumerationPage>> exchange(std::string body, const std::string& message_id,
                                         Deadline deadline, PollBudget& budget);
  // Best-effort Release of a live context on early exit: skipped when the connection is
  // gone (never reconnects for it); deadline min(poll deadline, now + 500 ms).
  Task<void> release(const RequestOptions& request, const std::string& context, Deadline deadline);

  SessionOptions options_;
  bool response_cap_from_limits_ = true;  // else the caller's EndpointOptions ceiling
  std::shared_ptr<Auth> auth_;
  std::shared_ptr<TransportCounters> counters_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace winrm
