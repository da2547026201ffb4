// SOAP fault parsing, classification and Error::describe against tests/fixtures/faults.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "test_envelope_fixtures.h"
#include "winrm/envelope.h"
#include "winrm/error.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_fault {

using winrm::Fault;
using winrm::FaultClass;
using winrm_test::read_fixture;

namespace {

struct FaultExpectation {
  std::string file;
  std::string code;
  std::string subcode;
  std::uint64_t wsman_code;
  std::string machine;
  std::string message;
  std::string fault_detail;
  FaultClass fault_class;
};

const std::vector<FaultExpectation>& fault_expectations() {
  static const std::vector<FaultExpectation> kFaults = {
      {"faults/opennms_invalid_resource_uri_2150858752.xml", "s:Sender", "DestinationUnreachable",
       2150858752, "172.23.1.106",
       "The WS-Management service cannot process the request. The service cannot find the "
       "resource identified by the resource URI and selectors.",
       "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI",
       FaultClass::kInvalidResourceUri},
      {"faults/pypsrp_invalid_header_timeout_2150858767.xml", "s:Sender",
       "InvalidMessageInformationHeader", 2150858767, "127.0.0.1",
       "The WS-Management service cannot process the request. The XML contains an invalid "
       "timeout field in the SOAP header: PT-1S.",
       "", FaultClass::kOther},
      {"faults/pypsrp_invalid_selectors_2150858843.xml", "s:Sender", "InvalidSelectors", 2150858843,
       "127.0.0.1",
       "The WS-Management service cannot process the request because the request contained "
       "invalid selectors for the resource.",
       "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
       FaultClass::kOther},
      {"faults/pypsrp_timedout_2150858793.xml", "s:Receiver", "TimedOut", 2150858793,
       "192.168.56.11",
       "The WS-Management service cannot complete the operation within the time specified in "
       "OperationTimeout.",
       "", FaultClass::kTimedOut},
      {"faults/pywinrm_timedout_server2022.xml", "s:Receiver", "TimedOut", 2150858793,
       "server2022.domain.test",
       "The WS-Management service cannot complete the operation within the time specified in "
       "OperationTimeout.",
       "", FaultClass::kTimedOut},
      {"faults/txw_quota_max_concurrent_operations.xml", "s:Receiver", "InternalError", 2150859174,
       "103040106",
       "The WS-Management service cannot process the request. This user is allowed a maximum "
       "number of 15 concurrent operations, which has been exceeded. Close existing operations "
       "for this user, or raise the quota for this user.",
       "", FaultClass::kQuotaExceeded},
      {"faults/winrb2008r2_cannot_process_filter_invalid_class.xml", "s:Sender",
       "CannotProcessFilter", 2150858778, "localhost",
       "The specified class does not exist in the given namespace.", "", FaultClass::kInvalidClass},
      {"faults/winrb_quota_max_shells_msft_wmierror.xml", "s:Sender", "QuotaLimit", 2150859173, "",
       "The WS-Management service cannot process the request. This user is allowed a maximum "
       "number of 30 concurrent shells, which has been exceeded. Close existing shells or raise "
       "the quota for this user.",
       "", FaultClass::kQuotaExceeded},
      {"faults/winrb_v1_cannot_process_filter_invalid_class.xml", "s:Sender", "CannotProcessFilter",
       2150858778, "", "The specified class does not exist in the given namespace.", "",
       FaultClass::kInvalidClass},
  };
  return kFaults;
}

}  // namespace

TEST_CASE("every fault fixture has an expectation") {
  std::set<std::string> expected;
  for (const auto& fault : fault_expectations()) expected.insert(fault.file);
  std::set<std::string> on_disk;
  for (const auto& entry :
       std::filesystem::directory_iterator(winrm_test::fixture_path("faults"))) {
    on_disk.insert("faults/" + entry.path().filename().string());
  }
  CHECK(on_disk.size() == 9);
  CHECK(on_disk == expected);
}

TEST_CASE("fault fixtures parse into code, subcode, WSManFault code, machine and message") {
  for (const auto& expected : fault_expectations()) {
    CAPTURE(expected.file);
    std::string body = read_fixture(expected.file);
    auto fault = winrm::parse_fault(body);
    REQUIRE(fault.has_value());
    CHECK(fault->code == expected.code);
    CHECK(fault->subcode == expected.subcode);
    CHECK(fault->wsman_code == expected.wsman_code);
    CHECK(fault->machine == expected.machine);
    CHECK(fault->message == expected.message);
    CHECK(fault->fault_detail == expected.fault_detail);
    CHECK(winrm::classify(*fault) == expected.fault_class);

    // The same body handed to the enumeration parser is a typed wsman_fault error.
    auto page = winrm::parse_enumeration_response(body);
    REQUIRE_FALSE(page.has_value());
    const winrm::Error& error = page.error();
    CHECK(error.kind == winrm::ErrorKind::kWsmanFault);
    REQUIRE(error.fault.has_value());
    CHECK(error.fault->wsman_code == expected.wsman_code);
    CHECK(error.fault->message == expected.message);
    CHECK(error.message == expected.message);
    std::string described = error.describe();
    CHECK(described.starts_with("wsman_fault " + std::to_string(expected.wsman_code) + " (" +
                                expected.subcode + ", " +
                                std::string(winrm::to_string(expected.fault_class)) + "): "));
    CHECK(described.find('\n') == std::string::npos);
  }
}

TEST_CASE("describe() of the invalid class fault") {
  auto page = winrm::parse_enumeration_response(
      read_fixture("faults/winrb2008r2_cannot_process_filter_invalid_class.xml"));
  REQUIRE_FALSE(page.has_value());
  winrm::Error error = page.error();
  CHECK(error.describe() ==
        "wsman_fault 2150858778 (CannotProcessFilter, invalid_class): The specified class does "
        "not exist in the given namespace.");
  error.http_status = 500;
  CHECK(error.describe().ends_with(" [HTTP 500]"));
}

TEST_CASE("parse_fault rejects bodies that are not faults") {
  auto not_fault = winrm::parse_fault(read_fixture("enum/txw2012_os_star_single.xml"));
  REQUIRE_FALSE(not_fault.has_value());
  CHECK(not_fault.error().kind == winrm::ErrorKind::kParse);
  auto malformed = winrm::parse_fault("<s:Envelope><s:Body><s:Fault>");
  REQUIRE_FALSE(malformed.has_value());
  CHECK(malformed.error().kind == winrm::ErrorKind::kParse);
  CHECK(winrm::parse_fault("").error().kind == winrm::ErrorKind::kParse);
}

TEST_CASE("a fault without detail falls back to the reason text and the subcode") {
  const std::string body =
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:en='http://schemas.xmlsoap.org/ws/2004/09/enumeration'><s:Body><s:Fault>"
      "<s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>en:InvalidEnumerationContext"
      "</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang='en-US'>  The enumeration\n"
      "   context is not valid.  </s:Text></s:Reason></s:Fault></s:Body></s:Envelope>";
  auto fault = winrm::parse_fault(body);
  REQUIRE(fault.has_value());
  CHECK(fault->subcode == "InvalidEnumerationContext");
  CHECK(fault->wsman_code == 0);
  CHECK(fault->message == "The enumeration context is not valid.");
  CHECK(winrm::classify(*fault) == FaultClass::kContextExpired);
}

TEST_CASE("classify: WSManFault code first, then subcode") {
  auto classify = [](std::uint64_t code, std::string subcode, std::string detail = "") {
    Fault fault;
    fault.wsman_code = code;
    fault.subcode = std::move(subcode);
    fault.fault_detail = std::move(detail);
    return winrm::classify(fault);
  };
  CHECK(classify(5, "InternalError") == FaultClass::kAccessDenied);
  CHECK(classify(2147942405, "InternalError") == FaultClass::kAccessDenied);
  CHECK(classify(0, "AccessDenied") == FaultClass::kAccessDenied);
  CHECK(classify(2150858778, "") == FaultClass::kInvalidClass);
  CHECK(classify(0, "CannotProcessFilter") == FaultClass::kInvalidClass);
  CHECK(classify(2150858752, "") == FaultClass::kInvalidResourceUri);
  CHECK(classify(0, "DestinationUnreachable",
                 "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI") ==
        FaultClass::kInvalidResourceUri);
  CHECK(classify(0, "DestinationUnreachable") == FaultClass::kOther);
  CHECK(classify(2150858793, "") == FaultClass::kTimedOut);
  CHECK(classify(2150858780, "") == FaultClass::kTimedOut);
  CHECK(classify(0, "TimedOut") == FaultClass::kTimedOut);
  CHECK(classify(2150859174, "InternalError") == FaultClass::kQuotaExceeded);
  CHECK(classify(2150859173, "") == FaultClass::kQuotaExceeded);
  CHECK(classify(0, "QuotaLimit") == FaultClass::kQuotaExceeded);
  CHECK(classify(2150858779, "") == FaultClass::kContextExpired);
  CHECK(classify(2150858815, "") == FaultClass::kQuotaExceeded);         // 0x8033803F
  CHECK(classify(2150859240, "") == FaultClass::kQuotaExceeded);         // 0x803381E8 plugin
  CHECK(classify(2150858884, "") == FaultClass::kContextExpired);        // 0x80338084
  CHECK(classify(2150858823, "") == FaultClass::kEnvelopeSizeTooLarge);  // 0x80338047
  CHECK(classify(2150858824, "") == FaultClass::kMaxEnvelopeExceeded);
  CHECK(classify(2150858825, "") == FaultClass::kMaxEnvelopeExceeded);
  CHECK(classify(0, "EncodingLimit",
                 "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/MaxEnvelopeSize") ==
        FaultClass::kMaxEnvelopeExceeded);
  CHECK(classify(0, "EncodingLimit") == FaultClass::kOther);
  // The code wins over a contradicting subcode; an unknown code defers to the subcode.
  CHECK(classify(2150858793, "CannotProcessFilter") == FaultClass::kTimedOut);
  CHECK(classify(2150858767, "TimedOut") == FaultClass::kTimedOut);
  CHECK(classify(0, "w:TimedOut") == FaultClass::kTimedOut);
  CHECK(classify(0, "") == FaultClass::kOther);
}

TEST_CASE("labels") {
  using winrm::ErrorKind;
  CHECK(winrm::to_string(ErrorKind::kTransport) == "transport");
  CHECK(winrm::to_string(ErrorKind::kTls) == "tls");
  CHECK(winrm::to_string(ErrorKind::kAuth) == "auth");
  CHECK(winrm::to_string(ErrorKind::kHttp) == "http");
  CHECK(winrm::to_string(ErrorKind::kWsmanFault) == "wsman_fault");
  CHECK(winrm::to_string(ErrorKind::kParse) == "parse");
  CHECK(winrm::to_string(ErrorKind::kTimeout) == "timeout");
  CHECK(winrm::to_string(ErrorKind::kCancelled) == "cancelled");
  CHECK(winrm::to_string(FaultClass::kAccessDenied) == "access_denied");
  CHECK(winrm::to_string(FaultClass::kInvalidClass) == "invalid_class");
  CHECK(winrm::to_string(FaultClass::kInvalidResourceUri) == "invalid_resource_uri");
  CHECK(winrm::to_string(FaultClass::kTimedOut) == "timed_out");
  CHECK(winrm::to_string(FaultClass::kQuotaExceeded) == "quota_exceeded");
  CHECK(winrm::to_string(FaultClass::kContextExpired) == "context_expired");
  CHECK(winrm::to_string(FaultClass::kMaxEnvelopeExceeded) == "max_envelope_exceeded");
  CHECK(winrm::to_string(FaultClass::kEnvelopeSizeTooLarge) == "envelope_size_too_large");
  CHECK(winrm::to_string(FaultClass::kOther) == "other");
}

TEST_CASE("describe() is one bounded line") {
  winrm::Error plain{winrm::ErrorKind::kHttp, "unexpected status", 503, std::nullopt};
  CHECK(plain.describe() == "http (HTTP 503): unexpected status");
  winrm::Error bare{winrm::ErrorKind::kTimeout, "deadline exceeded", 0, std::nullopt};
  CHECK(bare.describe() == "timeout: deadline exceeded");

  // A hostile server sends a huge multi-line message with control characters.
  std::string flood;
  for (int i = 0; i < 5000; ++i) flood += "line\r\n\x1b[31m\t";
  Fault fault;
  fault.wsman_code = 1;
  fault.subcode = "X";
  fault.message = flood;
  winrm::Error error{winrm::ErrorKind::kWsmanFault, flood, 500, fault};
  std::string described = error.describe();
  CHECK(described.size() < 700);
  CHECK(described.find('\n') == std::string::npos);
  CHECK(described.find('\r') == std::string::npos);
  CHECK(described.find('\x1b') == std::string::npos);
  CHECK(described.find("...") != std::string::npos);

  // Truncation never splits a UTF-8 character.
  std::string umlauts;
  for (int i = 0; i < 1000; ++i) umlauts += "\xC3\xA4";
  winrm::Error utf8{winrm::ErrorKind::kParse, "x" + umlauts, 0, std::nullopt};
  std::string text = utf8.describe();
  REQUIRE(text.ends_with("..."));
  std::string body = text.substr(std::string("parse: x").size());
  body.resize(body.size() - 3);
  CHECK(body.size() % 2 == 0);
  CHECK(body.substr(body.size() - 2) == "\xC3\xA4");
}

TEST_CASE("remedy: quota and envelope faults say what to change, others nothing") {
  auto remedy = [](std::uint64_t code) {
    Fault fault;
    fault.wsman_code = code;
    return std::string(winrm::remedy(fault));
  };
  CHECK(remedy(2150859174).find("MaxConcurrentOperationsPerUser") != std::string::npos);
  CHECK(remedy(2150859173).find("MaxShellsPerUser") != std::string::npos);
  CHECK(remedy(2150858824).find("winrm.max_envelope_size") != std::string::npos);
  CHECK(remedy(2150858823).find("lower winrm.max_envelope_size") != std::string::npos);
  CHECK(remedy(2150858778).empty());
  auto page = winrm::parse_enumeration_response(
      read_fixture("faults/txw_quota_max_concurrent_operations.xml"));
  REQUIRE_FALSE(page.has_value());
  CHECK(page.error().describe().find("(raise the quota on the host: winrm set "
                                     "winrm/config/Service @{MaxConcurrentOperationsPerUser=") !=
        std::string::npos);
}

}  // namespace test_fault
