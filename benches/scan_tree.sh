#!/usr/bin/env bash
# Benchmark: full analysis (imports, call sites, every rule, SARIF) of a tree of N drivers,
# next to the floor of reading the same bytes, and peak memory at N/2 and N files.
#
#   bash benches/scan_tree.sh [N]          (default N = 2400)
#
# The tree is built from the fixture drivers and, when present, ../shared/corpus/drivers, each
# copy made unique by rewriting its PE TimeDateStamp, in nested folders of 100 files.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2400}
cargo build --release --locked --quiet
bin=target/release/drvaudit
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT

sources=(testdata/bin/*.sys)
[ -d ../shared/corpus/drivers ] && sources+=(../shared/corpus/drivers/*.sys)
python3 - "$tree" "$n" "${sources[@]}" <<'PY'
import os, struct, sys
tree, n, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
blobs = [open(p, "rb").read() for p in sources]
for i in range(n):
    data = bytearray(blobs[i % len(blobs)])
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    struct.pack_into("<I", data, pe + 8, 0x5F000000 + i)   # TimeDateStamp: unique bytes
    d = os.path.join(tree, f"pkg{i // 100:03d}", "x64")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f"drv{i:05d}.sys"), "wb").write(data)
PY
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $n drivers, $bytes bytes ($(nproc) cores)"

# Warm the cache, then time the read floor: every byte read once (cat to /dev/null).
find "$tree" -name '*.sys' -print0 | xargs -0 cat > /dev/null
t0=$(date +%s.%N); find "$tree" -name '*.sys' -print0 | xargs -0 cat > /dev/null; t1=$(date +%s.%N)
read_s=$(echo "$t1 - $t0" | bc -l)

best=""
for run in 1 2 3; do
  t0=$(date +%s.%N)
  "$bin" scan "$tree" --format sarif --fail-on never --no-progress -o /dev/null
  t1=$(date +%s.%N)
  s=$(echo "$t1 - $t0" | bc -l)
  if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
done

half="$tree/half"; mkdir -p "$half"
i=0; for d in "$tree"/pkg*; do [ $((i++ % 2)) = 0 ] && cp -r "$d" "$half/"; done
rss_full=$( { /usr/bin/time -f '%M' "$bin" scan "$tree" --format sarif --fail-on never --no-progress -o /dev/null; } 2>&1 | tail -1)
rss_half=$( { /usr/bin/time -f '%M' "$bin" scan "$half" --format sarif --fail-on never --no-progress -o /dev/null; } 2>&1 | tail -1)
half_n=$(find "$half" -name '*.sys' | wc -l)

printf 'read floor:   %.3f s  (%.1f us/file)\n' "$read_s" "$(echo "$read_s * 1000000 / $n" | bc -l)"
printf 'full scan:    %.3f s  (%.1f us/file, %.2fx the read floor)\n' "$best" "$(echo "$best * 1000000 / $n" | bc -l)" "$(echo "$best / $read_s" | bc -l)"
printf 'peak RSS:     %s KiB at %s files, %s KiB at %s files\n' "$rss_half" "$half_n" "$rss_full" "$n"
