#!/usr/bin/env bash
# Benchmark: full analysis (imports, call sites, every rule, SARIF) of a DriverStore-like tree
# of N drivers, next to the floor of reading the same bytes with cat, and peak memory at N/2
# and N drivers.
#
#   bash benches/scan_tree.sh [N]          (default N = 2400)
#   BENCH_DRIVERS="dir ..." bash benches/scan_tree.sh [N]   (other drivers as the sources)
#   BENCH_TREE=DIR bash benches/scan_tree.sh [N]   (only build the tree in DIR, to time by hand)
#
# The tree imitates System32\DriverStore\FileRepository: one folder per package
# (`name.inf_amd64_<hash>`) holding the .sys with its .inf and .cat beside it, the packages
# grouped 100 to a parent folder. Each INF is a complete one naming its catalog, and each
# catalog a real (test-signed) one that does not list the driver: the package checks parse
# both and look the driver up, as on a real DriverStore. The drivers are the fixtures and, when present,
# ../shared/corpus/drivers, each copy made unique by rewriting its PE TimeDateStamp.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2400}
cargo build --release --locked --quiet
bin=target/release/drvaudit
base=$(mktemp -d)
tree="$base/tree"
trap 'rm -rf "$base"' EXIT
[ -n "${BENCH_TREE:-}" ] && tree="$BENCH_TREE"

# BENCH_DRIVERS="dir ..." replaces the default sources with every .sys under those folders.
if [ -n "${BENCH_DRIVERS:-}" ]; then
  mapfile -t sources < <(find $BENCH_DRIVERS -iname '*.sys' -size +1k | sort)
else
  sources=(testdata/bin/*.sys)
  [ -d ../shared/corpus/drivers ] && sources+=(../shared/corpus/drivers/*.sys)
fi
python3 - "$tree" "$n" testdata/packages/signed/signed.cat "${sources[@]}" <<'PY'
import os, struct, sys
tree, n, cat, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
blobs = [open(p, "rb").read() for p in sources]
catalog = open(cat, "rb").read()
for i in range(n):
    data = bytearray(blobs[i % len(blobs)])
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    struct.pack_into("<I", data, pe + 8, 0x5F000000 + i)   # TimeDateStamp: unique bytes
    d = os.path.join(tree, f"repo{i // 100:03d}", f"drv{i:05d}.inf_amd64_{i * 2654435761 % 2**32:08x}")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f"drv{i:05d}.sys"), "wb").write(data)
    open(os.path.join(d, f"drv{i:05d}.inf"), "w").write(
        f"[Version]\nSignature=\"$WINDOWS NT$\"\nClass=System\n"
        f"ClassGuid={{4d36e97d-e325-11ce-bfc1-08002be10318}}\nProvider=%Mfg%\n"
        f"DriverVer=01/01/2024,1.0.0.{i}\nCatalogFile=drv{i:05d}.cat\n"
        f"[DestinationDirs]\nDefaultDestDir=12\n[SourceDisksNames]\n1=%Disk%\n"
        f"[SourceDisksFiles]\ndrv{i:05d}.sys=1\n[Manufacturer]\n%Mfg%=Models,NTamd64\n"
        f"[Models.NTamd64]\n%Dev%=Install,ROOT\\DRV{i:05d}\n[Install.NTamd64]\nCopyFiles=Copy\n"
        f"[Copy]\ndrv{i:05d}.sys\n[Strings]\nMfg=\"Bench\"\nDisk=\"Disk\"\nDev=\"Device\"\n")
    open(os.path.join(d, f"drv{i:05d}.cat"), "wb").write(catalog)
PY
if [ -n "${BENCH_TREE:-}" ]; then
  echo "tree: $n drivers in $tree"
  trap - EXIT; rm -rf "$base"; exit 0
fi
bytes=$(find "$tree" -name '*.sys' -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
echo "tree: $n drivers ($bytes bytes of .sys, with .inf and .cat beside each), $(nproc) cores"

# Warm the cache, then time the read floor (every driver byte read once: cat to /dev/null) and
# both scans, interleaved, five times each; the best of each is reported, since a shared
# machine only ever adds time.
sync   # the tree was just written: let writeback finish before anything is timed
find "$tree" -name '*.sys' -print0 | xargs -0 cat > /dev/null
best() { # best (smallest) of the numbers on stdin
  sort -g | head -1
}
elapsed() { # seconds taken by the command
  local t0 t1
  t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
read_floor() { find "$tree" -name '*.sys' -print0 | xargs -0 cat; }
reads=(); fulls=(); imports=()
for run in 1 2 3 4 5; do
  reads+=("$(elapsed read_floor)")
  fulls+=("$(elapsed "$bin" scan "$tree" --format sarif --fail-on never --no-progress -o /dev/null)")
  imports+=("$(elapsed "$bin" scan "$tree" --imports-only --format sarif --fail-on never --no-progress -o /dev/null)")
done
read_s=$(printf '%s\n' "${reads[@]}" | best)
best=$(printf '%s\n' "${fulls[@]}" | best)
best_imports=$(printf '%s\n' "${imports[@]}" | best)

half="$base/half"; mkdir -p "$half"
i=0; for d in "$tree"/repo*; do [ $((i++ % 2)) = 0 ] && cp -r "$d" "$half/"; done
rss_full=$( { /usr/bin/time -f '%M' "$bin" scan "$tree" --format sarif --fail-on never --no-progress -o /dev/null; } 2>&1 | tail -1)
rss_half=$( { /usr/bin/time -f '%M' "$bin" scan "$half" --format sarif --fail-on never --no-progress -o /dev/null; } 2>&1 | tail -1)
half_n=$(find "$half" -name '*.sys' | wc -l)
double="$base/double"; mkdir -p "$double"
for d in "$tree"/repo*; do cp -r "$d" "$double/a-$(basename "$d")"; cp -r "$d" "$double/b-$(basename "$d")"; done
rss_double=$( { /usr/bin/time -f '%M' "$bin" scan "$double" --format sarif --fail-on never --no-progress -o /dev/null; } 2>&1 | tail -1)

printf 'read floor:   %.3f s  (%.1f us/file)\n' "$read_s" "$(echo "$read_s * 1000000 / $n" | bc -l)"
printf 'full scan:    %.3f s  (%.1f us/file, %.2fx the read floor)\n' "$best" "$(echo "$best * 1000000 / $n" | bc -l)" "$(echo "$best / $read_s" | bc -l)"
printf 'imports only: %.3f s  (%.1f us/file, %.2fx the read floor)\n' "$best_imports" "$(echo "$best_imports * 1000000 / $n" | bc -l)" "$(echo "$best_imports / $read_s" | bc -l)"
printf 'peak RSS:     %s KiB at %s drivers, %s KiB at %s, %s KiB at %s\n' "$rss_half" "$half_n" "$rss_full" "$n" "$rss_double" "$((2 * n))"
