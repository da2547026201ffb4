#!/bin/bash
# Everything `make test` runs, stage by stage; each stage prints one summary line and the
# script fails when any stage fails (later stages still run, so one report shows all).
# What each stage proves that no other does:
#   default  RelWithDebInfo (-O2, the shipped optimisation) build of every target + every test but
#            label slow ($BUILD_DIR): the behaviour as shipped, and the only run of the checks that
#            execute none of our code (label noexec: systemd-analyze, promtool, the README
#            tables), of the bench smokes (bench/ scripts) and of the .deb contents. The slow tests
#            download from the Debian mirror: `make test-slow`, .ci/run.
#   asan     ASan+UBSan build (-O1) of every target but bench/ + every test but labels bench and
#            noexec (build-asan): memory errors, leaks and undefined behaviour in the product, the
#            sim and the tests, child processes included (e2e, hostile servers, poll path, parsers).
#   tsan     TSan build of the threaded code's tests: scheduler, cache, poller, net parser/server,
#            transport I/O thread, and the exporter's reload (build-tsan): data races, lock order.
#   fuzz     clang-16 libFuzzer targets, a short run each from fuzz/corpus (build-fuzz): inputs
#            no test wrote.
# Overlap: the first stage builds in the foreground; the later stages' builds then run one after
# another in the background at nice 19 (build-logs/<stage>.build.log, copied into the stage's
# log), soaking up the CPU that the mostly waiting tests leave idle. A stage waits for its own
# build, so its result and log are the same as when run alone.
# Usage: scripts/test-all.sh [STAGE...]          (default: all four, in this order)
# Env:   BUILD_DIR (default build), JOBS (default nproc), FUZZ_SECONDS (default 10 per target),
#        CTEST_JOBS (default 4: parallel tests in the default and asan stages),
#        FUZZ_JOBS (default 2: fuzz targets run at once, one core each)
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-10}
ctest_jobs=${CTEST_JOBS:-4}
fuzz_jobs=${FUZZ_JOBS:-2}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(default asan tsan fuzz)

summary=()
failed=0
failed_logs=()
logs=$src/build-logs
mkdir -p "$logs"
record() {  # stage, status, seconds, detail
  local line
  line=$(printf '== %-8s %-4s %4ds  %s' "$1" "$2" "$3" "$4")
  echo "$line"
  summary+=("$line")
  [ "$2" = PASS ] || failed=1
}

# Configure once per directory: a second configure reorders pkg-config's -isystem flags
# and rebuilds everything.
configure() {  # dir, cmake args...
  local dir=$1
  shift
  [ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" "$@"
}

# -g1 (line tables, enough for backtraces) instead of RelWithDebInfo's -g: a third less
# compile CPU (daemon/app.cpp 16.0 s -> 10.7 s, a test file 6.2 s -> 3.8 s, measured with
# /usr/bin/time), and compilation is most of this stage on a fresh 2-core machine.
DEFAULT_FLAGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
# Unity builds in every stage: each target's sources compile up to 8 at a time as one unit,
# so the headers they share (std, spdlog/fmt, yaml-cpp, nlohmann json, doctest) are parsed and
# their inline code generated once per batch. daemon_base (13 files) at -O2 -g1: 67.2 -> 45.5
# CPU-s (-32%); ten daemon test files as one unit: 45.7 -> 29.1 CPU-s (-36%). Compilation is
# most of make test's CPU (bench/RESULTS.md). A build dir configured earlier keeps its setting.
UNITY=(-DCMAKE_UNITY_BUILD=ON)
# Test bundles in the default and asan stages: one test executable per tests/<dir>/, unity-built
# like the rest, each ctest entry running its own file's test cases (tests/CMakeLists.txt). The
# tsan stage builds six tests, not whole directories, so it keeps one executable per test.
BUNDLES=(-DWINRM_EXPORTER_TEST_BUNDLES=ON)
# Test sources at -O0 in every stage (the libraries, the exporter and the simulator they run
# keep the stage's -O2 or -O1): the ASan stage's test bundles built in 93 s instead of 162 s
# (-43%) with all 67 of its tests passing (bench/RESULTS.md "make test: test sources at -O0").
# The optimiser only ever mattered for the code under test, which is not compiled here.
TEST_O0=(-DWINRM_EXPORTER_TEST_OPTIMIZE=-O0)
build_default() {
  configure "$build_dir" "${DEFAULT_FLAGS[@]}" "${UNITY[@]}" "${BUNDLES[@]}" "${TEST_O0[@]}" &&
    cmake --build "$build_dir" -j "$jobs"
}
# ctest -j4 on 2 cores: most tests wait on sockets, timers and child processes (the clean-clone
# run of 7079eaa: 440 s of test time in 220 s of wall at -j2); COST starts the long ones first.
stage_default() {
  (cd "$build_dir" && ctest --output-on-failure --timeout 300 -j "$ctest_jobs" -LE '^slow$')
}

# ASan+UBSan: the whole suite but the bench smoke runs (label bench: load runs whose code is
# the same exporter and sim the e2e tests already run under ASan); bench/ is not even built
# there (WINRM_EXPORTER_BENCH=OFF: its helpers would be compiled for nothing). No
# strict_string_checks: it flags strndup() on buffers that
# are legitimately not NUL-terminated (gss-ntlmssp does that with GSS name buffers).
# ASan's leak checker stays on; UBSan aborts on a finding
# (-fno-sanitize-recover=all in CMakeLists.txt) and prints the stack.
# Sanitizer builds use -O1 -g1 (line tables): with ASan+UBSan a heavy translation unit
# takes 17 s of CPU at -O1 -g1 against 37 s at RelWithDebInfo's -O2 -g (daemon/app.cpp,
# measured), and -O1 is what the sanitizer documentation recommends. Asserts stay on.
# ASan at -O0 compiles 41% faster again (three units paired, bench/RESULTS.md "make test:
# ASan at -O0 measured"), but not adopted: in a clean-clone make test (ci13, 2026-12-02) the
# -O0 ASan exporter and sim were too slow for collectors_test_e2e_sim (1.5 s poll timeouts, its
# 30 s wait ran out) while the TSan build ran beside it.
SANITIZER_FLAGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1")

# Reports go to files (log_path), which the stage prints: a finding in a child process
# (the exporter or winrm-sim started by an e2e test) then fails the stage even when the
# test does not look at that child's exit status.
reports_ok() {  # dir
  local files
  files=$(find "$1" -type f 2>/dev/null)
  [ -z "$files" ] && return 0
  echo "sanitizer reports in $1:"
  for f in $files; do
    echo "---- $f"
    head -n 80 "$f"
  done
  return 1
}

build_asan() {
  configure build-asan "${SANITIZER_FLAGS[@]}" "${UNITY[@]}" "${BUNDLES[@]}" "${TEST_O0[@]}" \
    -DWINRM_EXPORTER_SANITIZE=address,undefined -DWINRM_EXPORTER_BENCH=OFF &&
    cmake --build build-asan -j "$jobs"
}
stage_asan() {
  local reports=$src/build-asan/sanitizer-reports rc=0
  rm -rf "$reports" && mkdir -p "$reports"
  (cd build-asan &&
    ASAN_OPTIONS=detect_leaks=1:log_path=$reports/asan \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan \
    LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0 \
      ctest --output-on-failure --timeout 300 -j "$ctest_jobs" -LE '^(bench|noexec)$') || rc=1
  reports_ok "$reports" || rc=1
  return $rc
}

# GCC 12's TSan cannot map its shadow memory under the high mmap randomisation of newer
# kernels (vm.mmap_rnd_bits > 28). Prefer running without ASLR (setarch -R); where a seccomp
# policy forbids that personality flag, lower the randomisation instead (root only, as CI is).
no_aslr_prefix() {
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    echo "setarch $(uname -m) -R"
    return
  fi
  local bits
  bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
  if [ "$bits" -gt 28 ] && [ "$(id -u)" = 0 ]; then
    echo "tsan: setarch -R refused; lowering vm.mmap_rnd_bits from $bits to 28" >&2
    sysctl -q -w vm.mmap_rnd_bits=28 >&2 || echo "tsan: could not lower vm.mmap_rnd_bits" >&2
  else
    echo "tsan: setarch -R refused; running with ASLR (vm.mmap_rnd_bits=$bits)" >&2
  fi
  echo env
}

# TSan: only the tests whose code is multi-threaded by design. The reload test is one
# case of the exporter end-to-end test; its exporter binary is TSan-built too, and an
# exporter that reports a race exits non-zero (exitcode=66), which fails the test.
# net_test_*: the HTTP server's loops, workers and Responders completed from other threads.
# Every name here is a real test: a renamed or missing one fails the build instead of
# shrinking the stage.
# winrm_test_transport: the transport's I/O thread, its queue and the hand-off of each
# Connection and result between it and its owner (docs/transport.md).
TSAN_TESTS=(daemon_test_scheduler daemon_test_cache daemon_test_poller net_test_parser net_test_server
  winrm_test_transport)
TSAN_TARGETS=("${TSAN_TESTS[@]}" e2e_test_exporter_sim winrm_exporter winrm-sim)
build_tsan() {
  configure build-tsan "${SANITIZER_FLAGS[@]}" "${UNITY[@]}" "${TEST_O0[@]}" \
    -DWINRM_EXPORTER_SANITIZE=thread ||
    return 1
  cmake --build build-tsan -j "$jobs" --target "${TSAN_TARGETS[@]}"
}
stage_tsan() {
  # setarch -R: GCC 12's TSan cannot map its shadow memory under the high mmap
  # randomisation of newer kernels (vm.mmap_rnd_bits > 28); no ASLR avoids that.
  local reports=$src/build-tsan/sanitizer-reports rc=0
  rm -rf "$reports" && mkdir -p "$reports"
  export TSAN_OPTIONS="suppressions=$src/tests/tsan.supp halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$reports/tsan"
  local -a no_aslr
  read -r -a no_aslr <<< "$(no_aslr_prefix)"
  (cd build-tsan &&
    "${no_aslr[@]}" ctest --output-on-failure --timeout 300 -j 2 -R "^($(IFS='|'; echo "${TSAN_TESTS[*]}"))\$" &&
    "${no_aslr[@]}" tests/e2e/e2e_test_exporter_sim --test-case='reload*') || rc=1
  reports_ok "$reports" || rc=1
  return $rc
}

# libFuzzer needs clang; clang-16 is the newest in Debian 12. New inputs go to a scratch
# directory; fuzz/corpus/<target> (the seeds) is only read. A crash leaves its input in
# build-fuzz/artifacts/.
# -g1 (clang: line tables only) like the other stages: the same code, 17% less compile CPU
# (winrm/src/envelope.cpp with the fuzz flags: 8.8 s -> 7.3 s, /usr/bin/time).
build_fuzz() {
  configure build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo "${DEFAULT_FLAGS[1]}" "${UNITY[@]}" \
    -DCMAKE_CXX_COMPILER=clang++-16 -DWINRM_EXPORTER_FUZZ=ON &&
    cmake --build build-fuzz -j "$jobs"
}
# FUZZ_JOBS targets at a time (each one process on one core): the same run per target, in
# half the wall time on 2 cores.
fuzz_one() {  # target
  local target=$1
  mkdir -p "$scratch/$target"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-fuzz/fuzz/"$target" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/"$target"- \
    "$scratch/$target" fuzz/corpus/"$target" > "build-fuzz/$target.log" 2>&1
}
stage_fuzz() {
  local scratch rc=0 target targets
  scratch=$(mktemp -d)
  mkdir -p build-fuzz/artifacts
  read -r -a targets <<< "$(tr ';' ' ' < build-fuzz/fuzz/targets.txt)"
  local -A pids=()
  for target in "${targets[@]}"; do
    # Bounded: at most one wait per target already started.
    while [ "$(jobs -rp | wc -l)" -ge "$fuzz_jobs" ]; do wait -n; done
    echo "-- $target: ${fuzz_seconds}s from fuzz/corpus/$target"
    fuzz_one "$target" &
    pids[$target]=$!
  done
  for target in "${targets[@]}"; do
    echo "-- $target:"
    if ! wait "${pids[$target]}"; then
      tail -n 60 "build-fuzz/$target.log"
      rc=1
    fi
    grep -E '^stat::number_of_executed_units|^Done ' "build-fuzz/$target.log" | tr '\n' ' '
    echo
  done
  rm -rf "$scratch"
  return $rc
}

# --prebuild STAGE...: the background half of the overlap (started below, in its own process
# group so that one kill stops it with its compilers). It waits until the first stage's build is
# done (a stage's build.rc file), then builds the others in order, each into its log.
if [ "${1:-}" = --prebuild ]; then
  shift
  # Bounded by the parent: gives up when the parent script is gone.
  while [ ! -f "$logs/$1.build.rc" ]; do
    kill -0 "$PPID" 2>/dev/null || exit 1
    sleep 2
  done
  shift
  for stage in "$@"; do
    t0=$SECONDS
    "build_$stage" > "$logs/$stage.build.log" 2>&1
    rc=$?
    echo "== $stage: background build (nice 19) rc $rc in $((SECONDS - t0)) s" >> "$logs/$stage.build.log"
    echo $rc > "$logs/$stage.build.rc.tmp" && mv "$logs/$stage.build.rc.tmp" "$logs/$stage.build.rc"
  done
  exit 0
fi

for stage in "${stages[@]}"; do
  case $stage in
    default | asan | tsan | fuzz) ;;
    *) echo "unknown stage $stage (default, asan, tsan, fuzz)" >&2; exit 2 ;;
  esac
done

rm -f "$logs"/*.build.rc "$logs"/*.build.log "$logs/digest.txt"
prebuild_pid=
if [ ${#stages[@]} -gt 1 ]; then
  # Its own process group (set -m), not its own session: with the kernel's autogroup
  # scheduling (sched_autogroup_enabled=1, Debian's default) each session is weighted
  # equally, so a new session would make nice 19 meaningless against the tests.
  set -m
  nice -n 19 "$src/scripts/test-all.sh" --prebuild "${stages[@]}" < /dev/null > /dev/null 2>&1 &
  prebuild_pid=$!
  set +m
  trap '[ -z "$prebuild_pid" ] || kill -- -"$prebuild_pid" 2>/dev/null' EXIT
  trap 'exit 130' INT TERM
fi

# A stage's build: the background one when there is one (its log goes into the stage's log),
# else here. The first stage's build result releases the background builds.
build_stage() {  # stage
  local stage=$1 rcfile=$logs/$1.build.rc rc
  if [ -n "$prebuild_pid" ] && [ "$stage" != "${stages[0]}" ]; then
    echo "== $stage: waiting for its background build ($logs/$stage.build.log) $(date -u +%T)"
    while [ ! -f "$rcfile" ] && kill -0 "$prebuild_pid" 2>/dev/null; do sleep 2; done
    if [ -f "$rcfile" ]; then
      cat "$logs/$stage.build.log"
      return "$(cat "$rcfile")"
    fi
    echo "== $stage: the background build is gone; building here"
  fi
  "build_$stage"
  rc=$?
  if [ "$stage" = "${stages[0]}" ]; then
    echo $rc > "$rcfile.tmp" && mv "$rcfile.tmp" "$rcfile"
  fi
  echo "== $stage: build rc $rc $(date -u +%T)"
  return $rc
}

for stage in "${stages[@]}"; do
  echo "== $stage: start $(date -u +%T)"
  t0=$SECONDS
  log=$logs/$stage.log
  { build_stage "$stage" && "stage_$stage"; } 2>&1 | tee "$log"
  if [ "${PIPESTATUS[0]}" = 0 ]; then
    record "$stage" PASS $((SECONDS - t0)) ""
  else
    record "$stage" FAIL $((SECONDS - t0)) "(digest below; whole log: $log)"
    failed_logs+=("$log")
  fi
done

# CI shows only the start and the end of the output: repeat what failed, briefly, right above
# the summary, and keep it in build-logs/digest.txt, which .ci/run prints again at its very end
# (after make test-slow). Each failing stage gets a share of 30 lines: with the summary and
# .ci/run's last lines that is about what the end of a CI report shows (~45 lines).
# A failed ctest test's block is its status line up to the next status line (--output-on-failure
# prints a test's whole output there, even at -j); from it come doctest's failure lines with the
# lines right after them (the values and the start of the message), sanitizer summaries, and the
# block's last lines (doctest's counts, a script's last words).
test_block() {  # log, test name: that test's output in a ctest log
  awk -v name="$2" '
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / { on = index($0, " " name " ") > 0 && /\*\*\*|Failed|Timeout|Exception|SEGFAULT|aborted/; if (on) print; next }
    /^ *Start +[0-9]+: / || /^[0-9]+% tests passed/ { on = 0 }
    on' "$1"
}
stage_digest() {  # log, line budget
  local log=$1 budget=$2 tests t block per
  tests=$(awk '/^The following tests FAILED:/ { on = 1; next } on && /^\t/ { print $3 } on && !/^\t/ { on = 0 }' "$log")
  if [ -n "$tests" ]; then
    echo "failed tests: $(echo $tests)"
    per=$(( (budget - 1) / $(echo "$tests" | wc -l) ))
    [ "$per" -ge 6 ] || per=6
    for t in $tests; do
      block=$(test_block "$log" "$t")
      {
        echo "$block" | head -n 1
        echo "$block" | grep -a -A 2 -E ': ERROR: |: FATAL ERROR: |SUMMARY: |runtime error|WARNING: ThreadSanitizer|Traceback|Error: ' |
          grep -a -v -E '^--$' | cut -c 1-240 | head -n $((per - 3))
        echo "$block" | tail -n 2 | cut -c 1-240
      } | head -n "$per"
    done
    grep -a -E '^sanitizer reports in|SUMMARY: [A-Z][a-zA-Z]*Sanitizer' "$log" | sort -u | head -n 3
  else
    grep -a -E 'tests FAILED|\((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)\)|ERROR:|is NOT correct|error:|SUMMARY: |WARNING: ThreadSanitizer|FATAL|runtime error|setarch|tsan:|No such file|Error [0-9]' "$log" |
        grep -a -v -E '^-- |^\[|^(/usr/bin/)?(c\+\+|g\+\+|clang)' | cut -c 1-240 | tail -n "$budget"
  fi
}
digest=$logs/digest.txt
{
  if [ ${#failed_logs[@]} -gt 0 ]; then
    budget=$((30 / ${#failed_logs[@]}))
    [ "$budget" -ge 10 ] || budget=10
    for log in "${failed_logs[@]}"; do
      echo "== digest of $log"
      stage_digest "$log" "$budget"
    done
  fi
  echo "== summary"
  printf '%s\n' "${summary[@]}"
} > "$digest"
cat "$digest"
exit $failed
