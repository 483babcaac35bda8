# shellcheck shell=bash
# build_debug.sh - the debug fixtures under testdata/debug/, byte for byte. Sourced by
# testdata/build.sh after the release builds (it uses that script's $B, compiler flags and
# import libraries, and runs in testdata/). Do not run it on its own.
#
# Outputs (committed, listed with their SHA-256 in debug/SHA256SUMS):
#   <drv>_clang_<x86|x64|arm64>_O2.{sys,pdb}  clang + lld-link /DEBUG: the image and the PDB its
#       CodeView record names (file name only, /pdbaltpath:%_PDB%). pooltest and untagged are the
#       release images of bin/ (they are linked with /DEBUG already) and their PDBs; inlined is
#       built here only.
#   <drv>_gcc_<x86|x64>_O2.sys  mingw-w64 gcc -g: DWARF inside the image (.debug_* sections with
#       long names from the COFF string table). Same commands as bin/ plus -g, so the code is
#       identical to the release image (make_debug_truth.py checks the code sections).
#   debuglink/inlined_gcc_x64_O2.sys + .debug  the -g image split by objcopy: the image without
#       DWARF and with a .gnu_debuglink section naming inlined_gcc_x64_O2.debug (CRC-32).
#   other/pooltest_clang_x64_O2.pdb  "a PDB of another build": same file name as the PDB of
#       pooltest_clang_x64_O2.sys, but from an -O0 build, so its GUID differs.
#   age2/pooltest_clang_x64_O2.pdb  the genuine PDB with its age rewritten to 2 (as a PDB
#       updated by a later incremental link would have): same GUID, age differs.
# Path independence: clang uses -ffile-compilation-dir=. and /pdbsourcepath:/fixtures, gcc
# -fdebug-prefix-map=$PWD=/fixtures, so no output records the checkout's path.

D=debug
rm -rf "$D/other" "$D/age2" "$D/debuglink"
rm -f "$D"/*.sys "$D"/*.pdb
mkdir -p "$D/other" "$D/age2" "$D/debuglink" "$B/dobj"

# debug_clang DRIVER ARCH OPT OUTDIR NAME PDBNAME: clang_build's commands, output in OUTDIR.
debug_clang() {
    local drv=$1 arch=$2 opt=$3 out=$4 name=$5 pdb=$6
    local target entry base extra=""
    case $arch in
        x64) target=x86_64-pc-windows-msvc entry=DriverEntry base=0x140000000 ;;
        arm64) target=aarch64-pc-windows-msvc entry=DriverEntry base=0x140000000 ;;
        x86) target=i686-pc-windows-msvc entry=DriverEntry@8 base=0x10000 extra=/safeseh:no ;;
    esac
    # shellcheck disable=SC2086
    clang --target=$target -$opt $CLANG_CFLAGS -gcodeview -g -ffile-compilation-dir=. \
        -c "src/$drv.c" -o "$B/dobj/$name.obj"
    # shellcheck disable=SC2086
    lld-link $CLANG_LDFLAGS /debug /pdbaltpath:%_PDB% /pdbsourcepath:/fixtures /pdb:"$pdb" /machine:$arch \
        /entry:$entry /base:$base $extra /out:"$out/$name.sys" "$B/dobj/$name.obj" \
        "$B/lib/clang_${arch}_ntoskrnl.lib" "$B/lib/clang_${arch}_ndis.lib" "$B/lib/clang_${arch}_fltmgr.lib"
    python3 tools/pefix.py "$out/$name.sys"
}

# debug_gcc DRIVER ARCH OPT NAME: gcc_build's commands plus -g and a debug prefix map.
debug_gcc() {
    local drv=$1 arch=$2 opt=$3 name=$4
    local cc entry base
    case $arch in
        x64) cc=x86_64-w64-mingw32-gcc entry=DriverEntry base=0x140000000 ;;
        x86) cc="i686-w64-mingw32-gcc -fno-asynchronous-unwind-tables" entry=_DriverEntry@8 base=0x10000 ;;
    esac
    local libs="-lntoskrnl -lndis $B/lib/gcc_${arch}_ntoskrnl.a $B/lib/gcc_${arch}_ndis.a $B/lib/gcc_${arch}_fltmgr.a -lgcc"
    # shellcheck disable=SC2086
    $cc -$opt -g -fdebug-prefix-map="$PWD"=/fixtures $GCC_CFLAGS $GCC_LDFLAGS -Wl,--section-alignment,0x1000 \
        -Wl,--entry,$entry -Wl,--image-base,$base -o "$D/$name.sys" "src/$drv.c" $libs
}

for arch in x86 x64 arm64; do
    for drv in pooltest untagged; do
        cp "bin/${drv}_clang_${arch}_O2.sys" "$D/"
        cp "$B/pdb/${drv}_clang_${arch}_O2.pdb" "$D/"
    done
    debug_clang inlined $arch O2 "$D" "inlined_clang_${arch}_O2" "$D/inlined_clang_${arch}_O2.pdb"
done
for arch in x86 x64; do
    for drv in pooltest untagged inlined; do
        debug_gcc $drv $arch O2 "${drv}_gcc_${arch}_O2"
    done
    python3 tools/pefix.py "$D/untagged_gcc_${arch}_O2.sys" --discardable INIT
done

# The split DWARF pair.
x86_64-w64-mingw32-objcopy --only-keep-debug "$D/inlined_gcc_x64_O2.sys" "$D/debuglink/inlined_gcc_x64_O2.debug"
x86_64-w64-mingw32-objcopy --strip-debug --add-gnu-debuglink="$D/debuglink/inlined_gcc_x64_O2.debug" \
    "$D/inlined_gcc_x64_O2.sys" "$D/debuglink/inlined_gcc_x64_O2.sys"

# A PDB of another build, under the same file name; and the genuine PDB with another age.
debug_clang pooltest x64 O0 "$B/dobj" other_pooltest_clang_x64 "$D/other/pooltest_clang_x64_O2.pdb"
python3 tools/pdbage.py "$D/pooltest_clang_x64_O2.pdb" "$D/age2/pooltest_clang_x64_O2.pdb" 2
