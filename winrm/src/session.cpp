// Enumerate/Pull/Release loop of one WQL query.
#include "winrm/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

namespace winrm {
namespace {

using std::chrono::milliseconds;

constexpr int kMaxPages = 100000;
constexpr int kMaxEnvelopeHalvings = 8;
constexpr int kMaxEnvelopeSizeRetries = 4;
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
Error status_error(const HttpResponse& response, std::string_view content_type) {
  if (response.status == 401) {
    return Error{ErrorKind::kAuth, "HTTP 401: credentials rejected", 401, std::nullopt};
  }
  if ((response.status == 500 || response.status == 400) && !response.body.empty()) {
    if (auto fault = parse_fault(response.body, content_type))
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

std::string with_count(std::size_t value, std::string_view unit) {
  return std::to_string(value) + " " + std::string(unit);
}

}  // namespace

std::size_t effective_max_response_bytes(const SessionOptions& options) {
  std::size_t limit = options.limits.max_response_bytes;
  if (limit == 0) limit = 2 * std::size_t{options.max_envelope_size} + kResponseBytesHeadroom;
  return std::min(limit, options.endpoint.max_response_bytes);
}

Session::Session(SessionOptions options, std::shared_ptr<Auth> auth,
                 std::shared_ptr<TransportCounters> counters)
    : options_(std::move(options)), auth_(std::move(auth)), counters_(std::move(counters)) {
  if (!counters_) counters_ = std::make_shared<TransportCounters>();
  const std::size_t cap = effective_max_response_bytes(options_);
  response_cap_from_limits_ =
      cap < options_.endpoint.max_response_bytes || cap == options_.limits.max_response_bytes;
  options_.endpoint.max_response_bytes = cap;
  connection_ = make_http_connection(options_.endpoint, counters_);
}

Session::~Session() = default;

std::uint64_t Session::connection_id() const { return connection_->connection_id(); }

Task<Result<EnumerationPage>> Session::exchange(std::string body, const std::string& message_id,
                                                Deadline deadline, PollBudget& budget) {
  if (Clock::now() >= deadline) co_return make_error(ErrorKind::kTimeout, "deadline exceeded");
  auto response = co_await auth_->send_async(*connection_, std::move(body), deadline);
  if (!response) {
    Error& error = response.error();
    // The transport says "response exceeds N bytes"; say which setting N came from.
    if (error.limit == Limit::kResponseBytes && response_cap_from_limits_) {
      error.message += options_.limits.max_response_bytes == 0
                           ? " (limits.max_response_bytes: auto = 2 x winrm.max_envelope_size "
                             "+ 64 KiB; raise it or set it explicitly)"
                           : " (limits.max_response_bytes)";
    }
    co_return std::unexpected(std::move(error));
  }
  budget.bytes += response->body.size();
  const std::string content_type = response->header("Content-Type").value_or("");
  if (response->status != 200) co_return std::unexpected(status_error(*response, content_type));
  const SessionLimits& limits = options_.limits;
  ParseLimits parse_limits;
  parse_limits.max_rows =
      limits.max_rows_per_poll - std::min(budget.rows, limits.max_rows_per_poll);
  parse_limits.max_properties_per_instance = limits.max_properties_per_instance;
  parse_limits.max_values_per_property = limits.max_values_per_property;
  auto page = parse_enumeration_response(response->body, content_type, parse_limits);
  if (!page) {
    Error& error = page.error();
    error.http_status = response->status;
    // The parser names its own bound; add the config key an operator can raise.
    if (error.limit == Limit::kProperties) {
      error.message += " (limits.max_properties_per_instance = " +
                       std::to_string(limits.max_properties_per_instance) + ")";
    } else if (error.limit == Limit::kRows) {
      error.message += " (limits.max_rows_per_poll = " + std::to_string(limits.max_rows_per_poll) +
                       " per poll, " + with_count(budget.rows, "rows before this page)");
    }
    co_return std::move(page);
  }
  if (options_.verify_relates_to && page->relates_to != message_id) {
    co_return make_error(
        ErrorKind::kParse,
        "RelatesTo '" + page->relates_to + "' does not match MessageID " + message_id,
        response->status);
  }
  co_return std::move(page);
}

Task<void> Session::release(const RequestOptions& request, const std::string& context,
                            Deadline deadline) {
  // A Release on a new connection would cost a TCP (+TLS, +Kerberos) handshake for a
  // context the server garbage-collects anyway; and it must not outlive the poll.
  const Deadline release_deadline = std::min(deadline, Clock::now() + kReleaseBudget);
  if (context.empty() || !connection_->is_connected() || Clock::now() >= release_deadline) {
    spdlog::debug("winrm: release on {} skipped (connection closed or no time left)",
                  options_.endpoint.host);
    co_return;
  }
  RequestOptions release_options = request;
  release_options.message_id = new_message_id();
  release_options.operation_timeout = std::chrono::duration_cast<milliseconds>(
      std::max(kMinOperationTimeout,
               std::chrono::duration_cast<milliseconds>(release_deadline - Clock::now())));
  // At shutdown too: the connection is idle and the Release is short.
  connection_->set_cancellable(false);
  std::string release_body = build_release(release_options, context);
  auto response =
      co_await auth_->send_async(*connection_, std::move(release_body), release_deadline);
  connection_->set_cancellable(true);
  if (!response) {
    spdlog::debug("winrm: release on {} failed: {}", options_.endpoint.host,
                  response.error().describe());
  }
}

Result<std::vector<Row>> Session::enumerate(std::string_view wmi_namespace, std::string_view wql,
                                            Deadline deadline) {
  return run_sync(enumerate_async(std::string(wmi_namespace), std::string(wql), deadline));
}

Task<Result<std::vector<Row>>> Session::enumerate_async(std::string wmi_namespace, std::string wql,
                                                        Deadline deadline) {
  auto result = co_await enumerate_once(wmi_namespace, wql, deadline);
  if (!result) counters_->count_error(result.error().kind);
  co_return std::move(result);
}

Task<Result<std::vector<Row>>> Session::enumerate_once(const std::string& wmi_namespace,
                                                       const std::string& wql, Deadline deadline) {
  const SessionLimits& limits = options_.limits;
  RequestOptions request;
  request.endpoint_url = options_.endpoint.url();
  request.wmi_namespace = std::string(wmi_namespace);
  request.max_envelope_size = options_.max_envelope_size;
  request.max_elements = std::max<std::uint32_t>(1, options_.max_elements);
  request.locale = options_.locale;

  PollBudget budget;
  int restarts_left = 1;
  int halvings_left = kMaxEnvelopeHalvings;
  int envelope_retries_left = kMaxEnvelopeSizeRetries;
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
  // The host refuses the MaxEnvelopeSize we asked for (over its MaxEnvelopeSizekb):
  // ask for half, down to kMinMaxEnvelopeSize.
  auto shrink_envelope = [&](const Error& error) {
    if (!is_fault(error, FaultClass::kEnvelopeSizeTooLarge) || envelope_retries_left == 0 ||
        request.max_envelope_size <= kMinMaxEnvelopeSize) {
      return false;
    }
    --envelope_retries_left;
    request.max_envelope_size = std::max(kMinMaxEnvelopeSize, request.max_envelope_size / 2);
    spdlog::debug("winrm: {} refused MaxEnvelopeSize, retrying with {}", options_.endpoint.host,
                  request.max_envelope_size);
    return true;
  };
  // Byte and row budgets, checked after a page is parsed so that its newest context can
  // be released.
  auto over_budget = [&](std::size_t pages, const std::vector<Row>& rows) -> std::optional<Error> {
    if (budget.bytes > limits.max_poll_bytes ||
        budget.row_heap + rows.capacity() * sizeof(Row) > limits.max_poll_bytes) {
      return Error{
          ErrorKind::kTransport,
          "poll exceeded limits.max_poll_bytes = " + std::to_string(limits.max_poll_bytes) +
              " after " + with_count(pages, "pages, ") + with_count(budget.rows, "rows (") +
              with_count(budget.bytes, "response bytes, ") +
              with_count(budget.row_heap + rows.capacity() * sizeof(Row), "bytes of rows held)"),
          0, std::nullopt, Limit::kPollBytes};
    }
    if (budget.rows > limits.max_rows_per_poll) {
      return Error{
          ErrorKind::kParse,
          "poll exceeded limits.max_rows_per_poll = " + std::to_string(limits.max_rows_per_poll) +
              " rows after " + with_count(pages, "pages"),
          0, std::nullopt, Limit::kRows};
    }
    return std::nullopt;
  };

  // Rows are moved, never copied; the parser already summed their memory.
  auto take_rows = [&](EnumerationPage& page, std::vector<Row>& rows) {
    budget.rows += page.rows.size();
    budget.row_heap += page.stored_bytes;
    rows.insert(rows.end(), std::make_move_iterator(page.rows.begin()),
                std::make_move_iterator(page.rows.end()));
  };

  for (;;) {
    std::vector<Row> rows;
    budget.rows = 0;
    budget.row_heap = 0;
    request.message_id = new_message_id();
    request.operation_timeout = operation_timeout_for(options_.operation_timeout, deadline);
    std::string enumerate_body = build_enumerate(request, wql);
    auto page = co_await exchange(std::move(enumerate_body), request.message_id, deadline, budget);
    if (!page) {
      if (shrink_page(page.error()) || shrink_envelope(page.error())) continue;
      co_return std::unexpected(std::move(page.error()));
    }
    std::string context = page->context;
    bool done = page->done();
    take_rows(*page, rows);
    if (auto error = over_budget(1, rows)) {
      if (!done) co_await release(request, context, deadline);
      co_return std::unexpected(std::move(*error));
    }

    int pulls = 0;
    int timeouts_left = options_.pull_timeout_retries;
    bool restart = false;
    while (!done) {
      if (++pulls > kMaxPages) {
        co_await release(request, context, deadline);
        co_return make_limit_error(ErrorKind::kParse, Limit::kPages,
                                   "enumeration exceeded " + std::to_string(kMaxPages) + " pages");
      }
      if (Clock::now() >= deadline) {
        co_await release(request, context, deadline);
        co_return make_error(ErrorKind::kTimeout,
                             "deadline exceeded after " + std::to_string(rows.size()) + " rows");
      }
      if (const auto& cancel = options_.endpoint.cancel;
          cancel && cancel->load(std::memory_order_relaxed)) {
        co_await release(request, context, deadline);
        Error error{ErrorKind::kCancelled,
                    "cancelled (shutting down) after " + std::to_string(rows.size()) + " rows"};
        error.cancelled = true;
        co_return std::unexpected(std::move(error));
      }
      request.message_id = new_message_id();
      request.operation_timeout = operation_timeout_for(options_.operation_timeout, deadline);
      std::string pull_body = build_pull(request, context);
      page = co_await exchange(std::move(pull_body), request.message_id, deadline, budget);
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
        if (shrink_envelope(error)) {
          co_await release(request, context, deadline);
          restart = true;
          break;
        }
        if (!is_fault(error, FaultClass::kContextExpired))
          co_await release(request, context, deadline);
        co_return std::unexpected(std::move(error));
      }
      timeouts_left = options_.pull_timeout_retries;
      if (!page->context.empty()) context = page->context;
      done = page->done();
      take_rows(*page, rows);
      if (auto error = over_budget(static_cast<std::size_t>(pulls) + 1, rows)) {
        if (!done) co_await release(request, context, deadline);
        co_return std::unexpected(std::move(*error));
      }
    }
    if (restart) {
      spdlog::debug("winrm: enumeration context invalid on {}, restarting", options_.endpoint.host);
      continue;
    }
    co_return std::move(rows);
  }
}

}  // namespace winrm
