#!/usr/bin/env bash
# What `--blocklist` adds to a full scan (issue 14: at most 20 %): PAIRS (default 7) pairs of
# runs, each a plain full scan then the same scan with the blocklists, taken in turn so that a
# change in the machine's load hits both alike. Prints each pair's wall and CPU (user + sys)
# seconds and the increase, then the median increase of each.
#
#   BENCH_DRIVERS=/tmp/bt bash benches/blocklist_pairs.sh
#   BLOCKLISTS="DIR_OR_FILE ..."  (default: the LOLDrivers YAML folder and Microsoft's
#                                  SiPolicy XML under ../shared/reference/data)
#   BIN=/path/to/other/drvaudit   (time another build)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-7}
dirs=${BENCH_DRIVERS:-../shared/corpus/drivers ../shared/corpus/vulnerable}
data=../shared/reference/data
lists=${BLOCKLISTS:-$data/loldrivers/yaml $data/microsoft/SiPolicy_DriverBlockRules.xml}
bin=${BIN:-target/release/drvaudit}
[ -n "${BIN:-}" ] || cargo build --release --locked --quiet
bl=()
for l in $lists; do
  [ -e "$l" ] || { echo "blocklist $l is missing (../shared absent?)" >&2; exit 2; }
  bl+=(--blocklist "$l")
done
echo "drivers under $dirs; $(nproc) cores; binary $bin; blocklists: $lists"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
find $dirs -iname '*.sys' -exec cat {} + > /dev/null   # warm the page cache
cat $(find $lists -type f) > /dev/null
# Wall and CPU seconds of one scan, as "wall cpu".
times=$(mktemp)
trap 'rm -f "$times"' EXIT
timed() {
  # shellcheck disable=SC2086
  /usr/bin/time -o "$times" -f '%e %U %S' "$bin" scan $dirs --format sarif --fail-on never \
    --allow-incomplete --no-progress -o /dev/null "$@" > /dev/null 2>&1 || true
  read -r wall user sys < "$times"
  echo "$wall $(echo "$user + $sys" | bc -l)"
}
walls=(); cpus=()
for i in $(seq "$pairs"); do
  read -r pw pc <<< "$(timed)"
  read -r bw bc_ <<< "$(timed "${bl[@]}")"
  w=$(echo "100 * ($bw - $pw) / $pw" | bc -l)
  c=$(echo "100 * ($bc_ - $pc) / $pc" | bc -l)
  printf 'pair %d: wall %.2f / %.2f s (%+.0f %%), CPU %.2f / %.2f s (%+.0f %%)\n' \
    "$i" "$pw" "$bw" "$w" "$pc" "$bc_" "$c"
  walls+=("$w"); cpus+=("$c")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf 'median increase: wall %+.1f %%, CPU %+.1f %%\n' "$(median "${walls[@]}")" "$(median "${cpus[@]}")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
