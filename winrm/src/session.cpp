// Enumerate/Pull/Release loop of one WQL query.
#include "winrm/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace winrm {
namespace {

using std::chrono::milliseconds;

constexpr int kMaxPages = 100000;
constexpr int kMaxEnvelopeHalvings = 8;
constexpr milliseconds kReleaseBudget{500};
constexpr milliseconds kMinOperationTimeout{100};

// OperationTimeout the server sees: early enough that its answer (or its TimedOut
// fault) arrives before our own deadline.
milliseconds operation_timeout_for(milliseconds configured, Deadline deadline) {
  const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  const auto margin = std::clamp(remaining / 10, milliseconds{200}, milliseconds{2000});
  return std::max(kMinOperationTimeout, std::min(configured, remaining - margin));
}

Error fault_error(Fault fault, int status) {
  Error error{ErrorKind::kWsmanFault, fault.message, status, std::move(fault)};
  return error;
}

// Maps a non-200 answer to an error. 500 (and 400) carry SOAP faults on Windows.
Error status_error(const HttpResponse& response) {
  if (response.status == 401) {
    return Error{ErrorKind::kAuth, "HTTP 401: credentials rejected", 401, std::nullopt};
  }
  if ((response.status == 500 || response.status == 400) && !response.body.empty()) {
    if (auto fault = parse_fault(response.body))
      return fault_error(std::move(*fault), response.status);
  }
  return Error{ErrorKind::kHttp,
               "unexpected HTTP status " + std::to_string(response.status) +
                   (response.body.empty() ? " with empty body" : ""),
               response.status, std::nullopt};
}

bool is_fault(const Error& error, FaultClass fault_class) {
  return error.kind == ErrorKind::kWsmanFault && error.fault &&
         classify(*error.fault) == fault_class;
}

}  // namespace

Session::Session(SessionOptions options, std::shared_ptr<Auth> auth,
                 std::shared_ptr<TransportCounters> counters)
    : options_(std::move(options)), auth_(std::move(auth)), counters_(std::move(counters)) {
  if (!counters_) counters_ = std::make_shared<TransportCounters>();
  connection_ = make_http_connection(options_.endpoint, counters_);
}

Session::~Session() = default;

Result<EnumerationPage> Session::exchange(const std::string& body, const std::string& message_id,
                                          Deadline deadline) {
  if (Clock::now() >= deadline) return make_error(ErrorKind::kTimeout, "deadline exceeded");
  auto response = auth_->send(*connection_, body, deadline);
  if (!response) return std::unexpected(std::move(response.error()));
  if (response->status != 200) return std::unexpected(status_error(*response));
  auto page = parse_enumeration_response(response->body);
  if (!page) {
    page.error().http_status = response->status;
    return page;
  }
  if (options_.verify_relates_to && page->relates_to != message_id) {
    return make_error(ErrorKind::kParse,
                      "RelatesTo '" + page->relates_to + "' does not match MessageID " + message_id,
                      response->status);
  }
  return page;
}

void Session::release(const RequestOptions& request, const std::string& context) {
  RequestOptions release_options = request;
  release_options.message_id = new_message_id();
  release_options.operation_timeout = kReleaseBudget;
  auto response = auth_->send(*connection_, build_release(release_options, context),
                              Clock::now() + kReleaseBudget);
  if (!response) {
    spdlog::debug("winrm: release on {} failed: {}", options_.endpoint.host,
                  response.error().describe());
  }
}

Result<std::vector<Row>> Session::enumerate(std::string_view wmi_namespace, std::string_view wql,
                                            Deadline deadline) {
  auto result = enumerate_once(wmi_namespace, wql, deadline);
  if (!result) counters_->count_error(result.error().kind);
  return result;
}

Result<std::vector<Row>> Session::enumerate_once(std::string_view wmi_namespace,
                                                 std::string_view wql, Deadline deadline) {
  RequestOptions request;
  request.endpoint_url = options_.endpoint.url();
  request.wmi_namespace = std::string(wmi_namespace);
  request.max_envelope_size = options_.max_envelope_size;
  request.max_elements = std::max<std::uint32_t>(1, options_.max_elements);
  request.locale = options_.locale;

  int restarts_left = 1;
  int halvings_left = kMaxEnvelopeHalvings;
  // A page over MaxEnvelopeSize is a fault, not a truncation: ask for fewer items.
  auto shrink_page = [&](const Error& error) {
    if (!is_fault(error, FaultClass::kMaxEnvelopeExceeded) || halvings_left == 0 ||
        request.max_elements <= 1) {
      return false;
    }
    --halvings_left;
    request.max_elements /= 2;
    return true;
  };

  for (;;) {
    std::vector<Row> rows;
    request.message_id = new_message_id();
    request.operation_timeout = operation_timeout_for(options_.operation_timeout, deadline);
    auto page = exchange(build_enumerate(request, wql), request.message_id, deadline);
    if (!page) {
      if (shrink_page(page.error())) continue;
      return std::unexpected(std::move(page.error()));
    }
    std::string context = page->context;
    bool done = page->done();
    std::move(page->rows.begin(), page->rows.end(), std::back_inserter(rows));

    int pulls = 0;
    int timeouts_left = options_.pull_timeout_retries;
    bool restart = false;
    while (!done) {
      if (++pulls > kMaxPages) {
        release(request, context);
        return make_error(ErrorKind::kParse,
                          "enumeration exceeded " + std::to_string(kMaxPages) + " pages");
      }
      if (Clock::now() >= deadline) {
        release(request, context);
        return make_error(ErrorKind::kTimeout,
                          "deadline exceeded after " + std::to_string(rows.size()) + " rows");
      }
      request.message_id = new_message_id();
      request.operation_timeout = operation_timeout_for(options_.operation_timeout, deadline);
      page = exchange(build_pull(request, context), request.message_id, deadline);
      if (!page) {
        Error& error = page.error();
        if (is_fault(error, FaultClass::kTimedOut) && timeouts_left > 0) {
          --timeouts_left;  // the context is still valid: pull again
          continue;
        }
        if (is_fault(error, FaultClass::kContextExpired) && restarts_left > 0) {
          --restarts_left;
          restart = true;
          break;
        }
        if (shrink_page(error)) continue;
        if (!is_fault(error, FaultClass::kContextExpired)) release(request, context);
        return std::unexpected(std::move(error));
      }
      timeouts_left = options_.pull_timeout_retries;
      if (!page->context.empty()) context = page->context;
      done = page->done();
      std::move(page->rows.begin(), page->rows.end(), std::back_inserter(rows));
    }
    if (restart) {
      spdlog::debug("winrm: enumeration context expired on {}, restarting", options_.endpoint.host);
      continue;
    }
    return rows;
  }
}

}  // namespace winrm
