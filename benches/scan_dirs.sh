#!/usr/bin/env bash
# Benchmark on folders of real drivers as they are (no tree is built, nothing is written):
# the read floor (every .sys byte read once by cat), `--imports-only` and the full scan, each
# RUNS times (default 10), interleaved, every time printed lowest to highest, with the load
# average before and after (the machine may be shared: a busy machine only adds time).
#
#   BENCH_DRIVERS="../shared/corpus/drivers ../shared/corpus/vulnerable" bash benches/scan_dirs.sh
#   BIN=/path/to/other/drvaudit ...   (time another build on the same folders)
#   SCAN_ARGS="--blocklist DIR" ...   (extra arguments for both scans, e.g. block lists)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
dirs=${BENCH_DRIVERS:-../shared/corpus/drivers ../shared/corpus/vulnerable}
bin=${BIN:-target/release/drvaudit}
read -r -a extra <<< "${SCAN_ARGS:-}"
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet
mapfile -t files < <(find $dirs -iname '*.sys' | sort)
bytes=$(cat "${files[@]}" | wc -c)
echo "drivers: ${#files[@]} .sys ($bytes bytes) under $dirs; $(nproc) cores; binary $bin ${SCAN_ARGS:-}"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "${files[@]}" > /dev/null   # warm the page cache
elapsed() { # seconds the command takes, its output dropped
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
read_floor() { cat "${files[@]}"; }
# shellcheck disable=SC2086
full() { "$bin" scan $dirs --format sarif --fail-on never --allow-incomplete --no-progress -o /dev/null "${extra[@]}"; }
# shellcheck disable=SC2086
imports() { "$bin" scan $dirs --imports-only --format sarif --fail-on never --allow-incomplete --no-progress -o /dev/null "${extra[@]}"; }
reads=(); fulls=(); imps=()
for _ in $(seq "$runs"); do
  reads+=("$(elapsed read_floor)")
  imps+=("$(elapsed imports)")
  fulls+=("$(elapsed full)")
done
sorted() { printf '%s\n' "$@" | sort -g | xargs printf '%.3f ' ; }
echo "read floor   (s): $(sorted "${reads[@]}")"
echo "imports-only (s): $(sorted "${imps[@]}")"
echo "full scan    (s): $(sorted "${fulls[@]}")"
lo() { printf '%s\n' "$@" | sort -g | head -1; }
printf 'lowest: full %.2fx the read floor, imports-only %.2fx\n' \
  "$(echo "$(lo "${fulls[@]}") / $(lo "${reads[@]}")" | bc -l)" \
  "$(echo "$(lo "${imps[@]}") / $(lo "${reads[@]}")" | bc -l)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
