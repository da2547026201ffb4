// common/: the primitives every module shares. RFC 4648 section 10 test vectors for base64.
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "common/base64.h"
#include "common/duration.h"
#include "common/strings.h"
#include "common/thread_priority.h"
#include "common/utf8.h"
#include "common/yaml.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_primitives {

TEST_CASE("ASCII helpers ignore case in ASCII only and trim what they say") {
  CHECK(common::iequals("Content-Length", "content-LENGTH"));
  CHECK_FALSE(common::iequals("Content-Length", "Content-Lengt"));
  CHECK_FALSE(common::iequals("\xC3\x89", "\xC3\xA9"));  // É vs é: not ASCII, not folded
  CHECK(common::istarts_with("Negotiate abc", "negotiate "));
  CHECK_FALSE(common::istarts_with("Nego", "negotiate"));
  CHECK(common::to_lower("WIN32_Service \xC3\x89") == "win32_service \xC3\x89");
  CHECK(common::trim(" \t\r\nabc d\r\n") == "abc d");
  CHECK(common::trim(" \t\r\n") == "");
  CHECK(common::trim_ows(" \tabc\r") == "abc\r");  // CR is not optional whitespace
}

TEST_CASE("XML escaping: the five entities, tab/LF/CR kept, other C0 controls dropped") {
  std::string out = "kept:";
  common::append_xml_escaped(out, "a<b>&\"c\" 'd'\t\r\n\x01\x1F\x7F\xC3\xA9");
  CHECK(out == "kept:a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;\t\r\n\x7F\xC3\xA9");
}

TEST_CASE("base64 encodes and strictly decodes the RFC 4648 vectors") {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    CAPTURE(plain);
    CHECK(common::base64_encode(plain) == encoded);
    auto decoded = common::base64_decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == plain);
  }
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  CHECK(common::base64_decode(common::base64_encode(binary)) == binary);

  for (const char* bad :
       {"abc", "Zg=", "Z===", "====", "Zm9v\n", " Zm9v", "Zm=v", "Zg=a", "Zm9v-_==", "Zm9\x80"}) {
    CAPTURE(bad);
    CHECK_FALSE(common::base64_decode(bad).has_value());
  }
}

TEST_CASE("UTF-8 validation and repair follow the maximal-subpart rule") {
  CHECK(common::is_valid_utf8("plain ASCII and \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK_FALSE(common::is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(common::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(common::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK(common::sanitize_utf8("a\xFF"
                              "b") ==
        "a\xEF\xBF\xBD"
        "b");
  // A truncated 3-byte sequence is one maximal subpart: one replacement, not two.
  CHECK(common::sanitize_utf8("\xE2\x82"
                              "x") ==
        "\xEF\xBF\xBD"
        "x");
  std::string text = "valid";
  const char* before = text.data();
  common::sanitize_utf8_in_place(text);
  CHECK(text.data() == before);  // valid text is left alone
  text = "\x80\x80";
  common::sanitize_utf8_in_place(text);
  CHECK(text == "\xEF\xBF\xBD\xEF\xBF\xBD");
  // kEachByte (label values): the truncated sequence is two replacements, valid text the same.
  CHECK(common::sanitize_utf8("\xE2\x82"
                              "x",
                              common::Utf8Repair::kEachByte) ==
        "\xEF\xBF\xBD\xEF\xBF\xBD"
        "x");
  CHECK(common::sanitize_utf8("\xC3\xA9\xE2\x82\xAC", common::Utf8Repair::kEachByte) ==
        "\xC3\xA9\xE2\x82\xAC");
  std::string out;
  common::append_utf8(out, U'\u20AC');
  common::append_utf8(out, U'\U0001F600');
  CHECK(out == "\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST_CASE("Go durations: fractions, any order, a bare zero; Prometheus ones stay strict") {
  using namespace std::chrono_literals;
  using common::DurationSyntax;
  const std::pair<const char*, std::chrono::milliseconds> valid[] = {
      {"0", 0ms},     {"500ms", 500ms}, {"1.5s", 1500ms}, {"1m30s", 90s},
      {".5s", 500ms}, {"30s1m", 90s},   {"2h", 2h},       {"1.0005s", 1000ms}};
  for (const auto& [text, expected] : valid) {
    CAPTURE(text);
    const auto parsed = common::parse_duration(text, DurationSyntax::kGo);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == expected);
  }
  for (const char* text : {"", "30", "1d", "-1s", "1.5", "s", "1e3ms", "inf", "1 s", "5mss"}) {
    CAPTURE(text);
    CHECK_FALSE(common::parse_duration(text, DurationSyntax::kGo).has_value());
  }
  // The same texts under the default (Prometheus) grammar: no fractions, no bare zero,
  // descending units only (the full table is in tests/config/test_units.cpp).
  for (const char* text : {"0", "1.5s", "30s1m"}) {
    CAPTURE(text);
    CHECK_FALSE(common::parse_duration(text).has_value());
  }
  CHECK(common::parse_duration("1d") == std::chrono::milliseconds(24h));
}

TEST_CASE("YAML: file:line locations, strict keys, did-you-mean") {
  const common::yaml::Source source("conf/a.yml");
  const YAML::Node root = source.load("alpha: 1\nbeta:\n  c: 2\n  c: 3\ndelta: {x: 1, y: [1]}\n");
  CHECK(source.where(root["beta"]) == "conf/a.yml:3");
  CHECK(source.where(YAML::Node()) == "conf/a.yml:1");  // no mark: line 1
  try {
    source.load("a: [1,\n");
    FAIL("accepted an unterminated list");
  } catch (const common::yaml::Error& e) {
    CHECK(std::string(e.what()).starts_with("conf/a.yml:"));
    CHECK(std::string(e.what()).find(": yaml: ") != std::string::npos);
  }
  CHECK_THROWS_AS(common::yaml::Source("/nonexistent/x.yml").load_file(), common::yaml::Error);

  using Kind = common::yaml::KeyProblem::Kind;
  CHECK_FALSE(common::yaml::check_keys(root, {"alpha", "beta", "delta"}).has_value());
  const auto unknown = common::yaml::check_keys(root, {"alpha", "betta", "delta"});
  REQUIRE(unknown.has_value());
  CHECK(unknown->kind == Kind::kUnknown);
  CHECK(unknown->name == "beta");
  CHECK(unknown->suggestion == " (did you mean 'betta'?)");
  CHECK(source.where(unknown->key.Mark()) == "conf/a.yml:2");
  const auto repeated = common::yaml::check_keys(root["beta"], {"c"});
  REQUIRE(repeated.has_value());
  CHECK(repeated->kind == Kind::kRepeated);
  CHECK(source.where(repeated->key.Mark()) == "conf/a.yml:4");
  CHECK(source.where(repeated->first.Mark()) == "conf/a.yml:3");
  const auto not_scalar = common::yaml::check_keys(source.load("? [k]\n: 1\n"), {"k"});
  REQUIRE(not_scalar.has_value());
  CHECK(not_scalar->kind == Kind::kNotScalar);
  CHECK(common::yaml::did_you_mean("intervall", std::vector<std::string>{"interval", "timeout"}) ==
        " (did you mean 'interval'?)");
  CHECK(common::yaml::did_you_mean("zzz", std::vector<std::string>{"interval"}).empty());
}

// What a new thread ends up with after calling `apply` first: its result, policy and nice.
struct NewThreadSched {
  bool applied = false;
  int policy = -1;
  int nice = -100;
};
template <typename Apply>
NewThreadSched sched_of_new_thread(Apply&& apply) {
  NewThreadSched seen;
  std::thread([&] {
    seen.applied = apply();
    errno = 0;
    seen.policy = sched_getscheduler(0);
    seen.nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
    CHECK(errno == 0);
  }).join();
  return seen;
}

TEST_CASE("polling threads run below the web threads by the nice offset, never above") {
  // apply_serving_priority's slice request may be refused (a seccomp filter): only the nice
  // values are checked.
  auto nice_of_new_thread = [](auto&& apply) { return sched_of_new_thread(apply).nice; };
  errno = 0;
  const int base = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  REQUIRE(errno == 0);
  common::set_polling_nice_offset(0);  // off: nobody changes
  CHECK(nice_of_new_thread(common::apply_polling_priority) == base);
  CHECK(nice_of_new_thread([] { return common::apply_serving_priority(true); }) == base);
  common::set_polling_nice_offset(3);
  CHECK(common::polling_nice_offset() == 3);
  CHECK(nice_of_new_thread(common::apply_polling_priority) == std::min(19, base + 3));
  // The web threads keep the process's nice (the slice request does not change it).
  CHECK(nice_of_new_thread([] { return common::apply_serving_priority(true); }) == base);
  CHECK(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())) == base);  // caller untouched
  common::set_polling_nice_offset(40);                                    // capped
  CHECK(common::polling_nice_offset() == 19);
  CHECK(nice_of_new_thread(common::apply_polling_priority) == 19);
  common::set_polling_nice_offset(0);
}

TEST_CASE("polling threads move to SCHED_BATCH, keeping their nice value; web threads do not") {
  // SCHED_BATCH: the same CPU share, but a polling thread's wake-up never preempts a web thread
  // answering /probe. Moving to it needs no privilege.
  auto policy_and_nice_of_new_thread = [](auto&& apply) {
    const NewThreadSched seen = sched_of_new_thread(apply);
    CHECK(seen.applied);
    return std::pair{seen.policy, seen.nice};
  };
  errno = 0;
  const int base = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  REQUIRE(errno == 0);
  REQUIRE(sched_getscheduler(0) == SCHED_OTHER);
  common::set_polling_nice_offset(0);
  CHECK(policy_and_nice_of_new_thread(common::apply_polling_priority) ==
        std::pair{SCHED_BATCH, base});
  common::set_polling_nice_offset(2);
  CHECK(policy_and_nice_of_new_thread(common::apply_polling_priority) ==
        std::pair{SCHED_BATCH, std::min(19, base + 2)});
  common::set_polling_nice_offset(0);
  CHECK(policy_and_nice_of_new_thread([] { return common::apply_serving_priority(false); }).first ==
        SCHED_OTHER);
  CHECK(sched_getscheduler(0) == SCHED_OTHER);  // the caller untouched
}

}  // namespace test_primitives
