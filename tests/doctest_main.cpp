// doctest's main, plus one rule: a run in which no test case passed the filters fails. A
// ctest entry of a test bundle (WINRM_EXPORTER_TEST_BUNDLES, tests/CMakeLists.txt) selects its
// file with --source-file; after a file is renamed or moved that filter would match nothing and
// the entry would pass having run nothing. The same holds for a --test-case filter gone stale.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

// Set by the listener at the end of a test run (never called for --help, --list-*, ...).
bool g_run_ended = false;
unsigned g_cases_selected = 0;

struct SelectedCases : doctest::IReporter {
  explicit SelectedCases(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    g_run_ended = true;
    g_cases_selected = stats.numTestCasesPassingFilters;
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("selected_cases", 1, SelectedCases);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (rc == 0 && g_run_ended && g_cases_selected == 0) {
    std::fprintf(stderr, "doctest_main: no test case matched the filters: nothing was tested\n");
    return 1;
  }
  return rc;
}
