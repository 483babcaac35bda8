#!/usr/bin/env bash
# Runs one fuzz target for SECONDS seconds, one process, at low priority, and prints its
# figures: executions, executions per second, coverage and what was found.
#
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer arguments...]
#
# Inputs: the committed seeds (fuzz/seeds/TARGET, links into testdata/), the regression files
# (testdata/regress/TARGET), and the working corpus fuzz/corpus/TARGET (git-ignored; new inputs
# go there; fuzz/tools/seeds.py fills it with derived seeds, fuzz/add-shared-seeds.sh with
# ../shared/corpus). A dictionary fuzz/dicts/<format>.dict is used when one fits the target.
# Crashes, timeouts and out-of-memory inputs land in fuzz/artifacts/TARGET; the script then
# exits 1.
#
# Limits (issue 18): an input that runs over 10 s (-timeout=10) or takes more than 2 GB
# resident (-rss_limit_mb=2048) is a bug like a crash.
#
# Toolchain: cargo-fuzz passes nightly flags (-Zsanitizer, sancov passes). On a stable toolchain
# they are accepted with RUSTC_BOOTSTRAP=1, which this script sets. FUZZ_SANITIZER selects the
# sanitizer (default: none — the crate forbids unsafe code, so AddressSanitizer mostly watches
# the dependencies, at a third of the speed; use FUZZ_SANITIZER=address for that).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer args...]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer args...]}
shift 2
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}

dict=""
case $target in
  pe_*) dict=dicts/pe.dict ;;
  zip) dict=dicts/zip.dict ;;
  cab) dict=dicts/cab.dict ;;
  pool_*|pooltag) dict=dicts/pool.dict ;;
  rule_toml) dict=dicts/rule_toml.dict ;;
  authenticode_pe|pkcs7|catalog) dict=dicts/der.dict ;;
esac
[ -f "dicts/$target.dict" ] && dict="dicts/$target.dict"

mkdir -p "corpus/$target" "artifacts/$target"
if [ -z "$(ls -A "corpus/$target")" ]; then
  python3 tools/seeds.py > /dev/null
fi
dirs=("corpus/$target")
[ -d "seeds/$target" ] && dirs+=("seeds/$target")
[ -d "../testdata/regress/$target" ] && dirs+=("../testdata/regress/$target")

# Debug assertions on (-a), except for pdb: pdb2 0.10.2 debug-asserts on line records a damaged
# PDB breaks, where its release code reads on (see [profile.dev.package.pdb2] in ../Cargo.toml;
# -a sets the flag for every crate, so no profile can turn it off for pdb2 alone).
assertions=(-a)
[ "$target" = pdb ] && assertions=()
nice -n 10 cargo fuzz build -O "${assertions[@]}" -s "$sanitizer" "$target" 2>&1 | grep -v '^\s*Compiling' >&2 || true
before=$(ls "artifacts/$target" | wc -l)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
[ -n "$dict" ] && args+=(-dict="$dict")
set +e
nice -n 10 cargo fuzz run -O "${assertions[@]}" -s "$sanitizer" "$target" "${dirs[@]}" -- "${args[@]}" "$@" > "$log" 2>&1
status=$?
set -e
after=$(ls "artifacts/$target" | wc -l)
# The last status line carries the coverage; the final stats the executions and rate.
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<< "$last")
ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<< "$last")
corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")
found=$((after - before))
echo "$target: ${seconds}s, ${execs:-0} executions, ${rate:-0} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, peak RSS ${peak:-?} MB, new artifacts $found (libFuzzer exit $status)"
if [ "$found" -gt 0 ] || { [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; }; then
  grep -E 'ERROR|panicked|SUMMARY|Test unit written|timeout|out-of-memory' "$log" | head -20 >&2 || true
  exit 1
fi
