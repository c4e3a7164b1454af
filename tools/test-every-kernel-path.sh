#!/usr/bin/env bash
# The README's test command (with --no-fail-fast) once per CPU kernel path this machine can run, each forced with
# COGVIEW_CPU_KERNELS (crates/cogview-candle/src/cpu_kernels.rs): amx where the CPU has AMX-BF16,
# avx512bf16 where it has AVX512-BF16, avx512 where it has AVX-512F, avx2 where it has AVX2, FMA
# and F16C, and portable everywhere.
# The paths are read from /proc/cpuinfo as the backend reads them (amx also needs the kernel's
# permission for the tile state; where it is refused, the backend warns and uses avx512bf16, and
# this script says so). Each run's log goes to target/kernel-paths/<path>.log; the script prints
# each path's test summary and exits non-zero if any run failed.
#
#   bash tools/test-every-kernel-path.sh              # every path this CPU has
#   bash tools/test-every-kernel-path.sh portable     # only the paths named
#
# CI (.ci/run) runs the test command once, on the best path; this is the longer check of
# docs/benchmarks.md, about one full test run per path.
set -uo pipefail
cd "$(dirname "$0")/.."
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }
if [ $# -gt 0 ]; then
  paths=("$@")
else
  paths=()
  has amx_bf16 && has amx_tile && has avx512f && paths+=(amx)
  has avx512_bf16 && has avx512f && paths+=(avx512bf16)
  has avx512f && paths+=(avx512)
  has avx2 && has fma && has f16c && paths+=(avx2)
  paths+=(portable)
fi
for p in "${paths[@]}"; do
  case "$p" in
    amx | avx512bf16 | avx512 | avx2 | portable) ;;
    *) echo "error: $p is not a kernel path (amx, avx512bf16, avx512, avx2, portable)" >&2; exit 2 ;;
  esac
done
mkdir -p target/kernel-paths
failed=()
for p in "${paths[@]}"; do
  log=target/kernel-paths/$p.log
  echo "== COGVIEW_CPU_KERNELS=$p cargo test --workspace --no-fail-fast -- --include-ignored (log: $log)"
  start=$(date +%s)
  # --no-fail-fast: every test target runs, so one failure does not hide the others' results.
  COGVIEW_CPU_KERNELS=$p cargo test --workspace --no-fail-fast -- --include-ignored >"$log" 2>&1
  rc=$?
  passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s + 0}')
  failed_n=$(grep -o '[0-9]* failed' "$log" | awk '{s += $1} END {print s + 0}')
  echo "   exit $rc: $passed passed, $failed_n failed, $(( $(date +%s) - start )) s"
  if grep -q "COGVIEW_CPU_KERNELS: .*; using .* instead" "$log"; then
    echo "   note: the backend reported that $p is not available here and used another path:"
    grep -m1 "COGVIEW_CPU_KERNELS: .*; using .* instead" "$log" | sed 's/^/   /'
  fi
  (( rc == 0 )) || failed+=("$p")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed on: ${failed[*]}" >&2
  exit 1
fi
echo "passed on every path: ${paths[*]}"
