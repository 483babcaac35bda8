#!/usr/bin/env bash
# build.sh - rebuild every drvaudit test fixture under testdata/ from source, byte for byte.
#
# Needs (Debian 12 bookworm, x86-64):
#   apt-get install -y mingw-w64 binutils-mingw-w64 clang lld llvm gcab python3 coreutils
#     mingw-w64 10.0.0 / gcc 12.2 (x86_64-w64-mingw32-gcc, i686-w64-mingw32-gcc, their dlltool);
#     clang, lld (lld-link), llvm (llvm-dlltool) 14.0.6; gcab 1.5; python3 (stdlib only).
#   testdata/truth/make_truth.py additionally needs: python3 -m pip install pefile capstone
#   sign/build_signed.sh (signed fixtures) needs: apt-get install -y osslsigncode; python3 -m pip install cryptography (48 here)
#
# Usage: testdata/build.sh          build everything, then check bin/SHA256SUMS
#        testdata/build.sh --update build everything and rewrite SHA256SUMS (after a source change)
#
# Outputs (committed): bin/*.sys, bin/ntoskrnl_stub_*.exe, bin/SHA256SUMS, packages/pkg.zip,
# packages/pkg.cab, malformed/*.sys, signed/*.sys, packages/signed/*, the hostile archives of
# regress/ (regress/make_hostile.py), and the debug fixtures under debug/ (debug/build_debug.sh,
# listed in debug/SHA256SUMS). Intermediates (not committed): .build/ - import libraries,
# objects, the PDBs of the clang builds and DWARF twins of the gcc builds, which
# truth/make_truth.py uses to map call instructions to source lines.
set -euo pipefail

cd "$(dirname "$0")"
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1577836800

UPDATE=0
[ "${1:-}" = "--update" ] && UPDATE=1

B=.build
rm -rf "$B"
mkdir -p "$B/lib" "$B/obj" "$B/pdb" "$B/dbg" "$B/stub" bin packages malformed

# ---------------------------------------------------------------------------------------------
# Import libraries, from our own .def files (src/*.def).
# gcc: mingw's libntoskrnl.a/libndis.a come first and resolve what they have; ours add the rest
# (ExAllocatePool2/3, ExFreePool2, fltmgr.sys). That gives gcc images two import descriptors for
# ntoskrnl.exe, as real mingw-built drivers have.
for d in ntoskrnl ndis fltmgr; do
    x86_64-w64-mingw32-dlltool -d "src/$d.def" -l "$B/lib/gcc_x64_$d.a"
    i686-w64-mingw32-dlltool -k -d "src/${d}_x86.def" -l "$B/lib/gcc_x86_$d.a"
    llvm-dlltool -m i386:x86-64 -d "src/$d.def" -l "$B/lib/clang_x64_$d.lib"
    llvm-dlltool -m arm64 -d "src/$d.def" -l "$B/lib/clang_arm64_$d.lib"
    llvm-dlltool -m i386 -k -d "src/${d}_x86.def" -l "$B/lib/clang_x86_$d.lib"
done

GCC_CFLAGS="-std=gnu11 -Wall -Wno-multichar -ffreestanding -fno-stack-protector -mno-stack-arg-probe -Isrc"
GCC_LDFLAGS="-nostdlib -nostartfiles -Wl,--subsystem,native -Wl,--dynamicbase -Wl,--nxcompat \
 -Wl,--no-insert-timestamp -Wl,--file-alignment,0x200 -Wl,--wdmdriver"
CLANG_CFLAGS="-std=gnu11 -Wall -Wno-multichar -ffreestanding -fno-stack-protector -fno-builtin -Isrc"
CLANG_LDFLAGS="/Brepro /driver:wdm /tsaware:no /subsystem:native /nodefaultlib /dynamicbase /nxcompat"

# gcc_build DRIVER ARCH OPT OUTNAME [extra cflags/ldflags...]
# Writes bin/OUTNAME.sys and a DWARF twin .build/dbg/OUTNAME.sys (same command plus -g; the
# code is identical, make_truth.py checks that).
gcc_build() {
    local drv=$1 arch=$2 opt=$3 name=$4
    shift 4
    local cc entry base
    case $arch in
        x64) cc=x86_64-w64-mingw32-gcc entry=DriverEntry base=0x140000000 ;;
        x86) cc="i686-w64-mingw32-gcc -fno-asynchronous-unwind-tables" entry=_DriverEntry@8 base=0x10000 ;;
    esac
    local libs="-lntoskrnl -lndis $B/lib/gcc_${arch}_ntoskrnl.a $B/lib/gcc_${arch}_ndis.a $B/lib/gcc_${arch}_fltmgr.a -lgcc"
    local align="-Wl,--section-alignment,0x1000"
    case " $* " in *section-alignment*) align="" ;; esac
    # shellcheck disable=SC2086
    $cc -$opt $GCC_CFLAGS $GCC_LDFLAGS $align -Wl,--entry,$entry -Wl,--image-base,$base "$@" \
        -o "bin/$name.sys" "src/$drv.c" $libs
    # shellcheck disable=SC2086
    $cc -$opt -g $GCC_CFLAGS $GCC_LDFLAGS $align -Wl,--entry,$entry -Wl,--image-base,$base "$@" \
        -o "$B/dbg/$name.sys" "src/$drv.c" $libs
}

# clang_build DRIVER ARCH OPT OUTNAME [cflags...] -- [lld-link flags...]
# Writes bin/OUTNAME.sys (CodeView debug directory naming OUTNAME.pdb) and .build/pdb/OUTNAME.pdb.
clang_build() {
    local drv=$1 arch=$2 opt=$3 name=$4
    shift 4
    local cflags=() lflags=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do cflags+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    lflags=("$@")
    local target entry base extra=""
    case $arch in
        x64) target=x86_64-pc-windows-msvc entry=DriverEntry base=0x140000000 ;;
        arm64) target=aarch64-pc-windows-msvc entry=DriverEntry base=0x140000000 ;;
        x86) target=i686-pc-windows-msvc entry=DriverEntry@8 base=0x10000 extra=/safeseh:no ;;
    esac
    # shellcheck disable=SC2086
    clang --target=$target -$opt $CLANG_CFLAGS -gcodeview -g -ffile-compilation-dir=. "${cflags[@]}" \
        -c "src/$drv.c" -o "$B/obj/$name.obj"
    # shellcheck disable=SC2086
    lld-link $CLANG_LDFLAGS /debug /pdbaltpath:%_PDB% /pdbsourcepath:/fixtures /pdb:"$B/pdb/$name.pdb" /machine:$arch \
        /entry:$entry /base:$base $extra "${lflags[@]}" /out:"bin/$name.sys" "$B/obj/$name.obj" \
        "$B/lib/clang_${arch}_ntoskrnl.lib" "$B/lib/clang_${arch}_ndis.lib" "$B/lib/clang_${arch}_fltmgr.lib"
    python3 tools/pefix.py "bin/$name.sys"
}

# ---------------------------------------------------------------------------------------------
# pooltest: gcc x86/x64, clang x86/x64/arm64, each -O0 and -O2.
for opt in O0 O2; do
    for arch in x86 x64; do
        gcc_build pooltest $arch $opt "pooltest_gcc_${arch}_$opt"
    done
    for arch in x86 x64 arm64; do
        clang_build pooltest $arch $opt "pooltest_clang_${arch}_$opt"
    done
done

# untagged (INIT is made discardable) and clean: -O2 with every toolchain.
for arch in x86 x64; do
    gcc_build untagged $arch O2 "untagged_gcc_${arch}_O2"
    python3 tools/pefix.py "bin/untagged_gcc_${arch}_O2.sys" --discardable INIT
    python3 tools/pefix.py "$B/dbg/untagged_gcc_${arch}_O2.sys" --discardable INIT
    gcc_build clean $arch O2 "clean_gcc_${arch}_O2"
done
for arch in x86 x64 arm64; do
    clang_build untagged $arch O2 "untagged_clang_${arch}_O2" -- /section:INIT,ERD
    clang_build clean $arch O2 "clean_clang_${arch}_O2"
done

# Tags kept in writable globals: gcc and clang x64, clang arm64, -O2.
gcc_build runtimetag x64 O2 runtimetag_gcc_x64_O2
clang_build runtimetag x64 O2 runtimetag_clang_x64_O2
clang_build runtimetag arm64 O2 runtimetag_clang_arm64_O2

# Values kept in callee-saved registers across calls, and a tag chosen by a switch in a
# wrapper (issue 17): gcc x86/x64, clang x86/x64/arm64, -O2.
for arch in x86 x64; do
    gcc_build dataflow $arch O2 "dataflow_gcc_${arch}_O2"
done
for arch in x86 x64 arm64; do
    clang_build dataflow $arch O2 "dataflow_clang_${arch}_O2"
done
# x86 stack shapes written as assembly (rep movs between pushes, an extra push first, a
# relocated immediate as tag): i686 gcc.
gcc_build x86asm x86 O2 x86asm_gcc_x86_O2
# x64 switches through jump tables (MSVC's image-base-relative form, gcc's and clang's
# table-relative one), written as assembly: x86_64 gcc.
gcc_build x64asm x64 O2 x64asm_gcc_x64_O2
# ARM64 switches through jump tables (MSVC's word and byte forms, clang's, gcc's, and two that
# must stay unread), written as assembly: clang for aarch64-pc-windows-msvc, with unwind tables
# (-ffreestanding turns them off) so that DriverEntry has .pdata, as MSVC gives it.
clang_build arm64asm arm64 O2 arm64asm_clang_arm64_O2 -funwind-tables

# The clean driver again, with Control Flow Guard (the negative case of the no-CFG rule).
clang_build clean x64 O2 cfguard_clang_x64_O2 -DWITH_CFG -Xclang -cfguard -- /guard:cf

# Image-level HVCI hazards, one toolchain each.
clang_build hazards x64 O2 wxsection_clang_x64_O2 -DWX_SECTION -- /section:.rwx,ERW
gcc_build hazards x64 O2 misaligned_gcc_x64_O2 -Wl,--section-alignment,0x200
clang_build hazards x64 O2 iatexec_clang_x64_O2 -- /merge:.rdata=.text

# The fake kernel for the crash-dump writer. Linked as .build/stub/ARCH/ntoskrnl.exe so its
# export directory names "ntoskrnl.exe"; no ICF, so every export keeps its own address.
for arch in x86 x64 arm64; do
    case $arch in
        x64) target=x86_64-pc-windows-msvc extra="" ;;
        arm64) target=aarch64-pc-windows-msvc extra="" ;;
        x86) target=i686-pc-windows-msvc extra=/safeseh:no ;;
    esac
    mkdir -p "$B/stub/$arch"
    clang --target=$target -O2 $CLANG_CFLAGS -c src/ntoskrnl_stub.c -o "$B/obj/ntoskrnl_stub_$arch.obj"
    # shellcheck disable=SC2086
    lld-link /Brepro /dll /noentry /subsystem:native /nodefaultlib /opt:ref /opt:noicf /dynamicbase /nxcompat \
        /machine:$arch $extra /def:src/ntoskrnl_stub.def /implib:"$B/stub/$arch/ntoskrnl.lib" \
        /out:"$B/stub/$arch/ntoskrnl.exe" "$B/obj/ntoskrnl_stub_$arch.obj"
    cp "$B/stub/$arch/ntoskrnl.exe" "bin/ntoskrnl_stub_$arch.exe"
    python3 tools/pefix.py "bin/ntoskrnl_stub_$arch.exe"
done

# ---------------------------------------------------------------------------------------------
# Driver packages: a zip and a cab with the x64 gcc builds of untagged and clean plus an INF.
PKG="$B/pkg"
mkdir -p "$PKG/drivers/amd64"
cp bin/untagged_gcc_x64_O2.sys "$PKG/drivers/amd64/untagged.sys"
cp bin/clean_gcc_x64_O2.sys "$PKG/drivers/amd64/clean.sys"
cp src/fixture.inf "$PKG/fixture.inf"
python3 - "$PKG" packages/pkg.zip <<'PY'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
names = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
               for d, _, fs in os.walk(root) for f in fs)
with zipfile.ZipFile(out, "w") as z:
    for n in names:
        info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        info.create_system = 3
        z.writestr(info, open(os.path.join(root, n), "rb").read())
PY
find "$PKG" -exec touch -h -d "2020-01-01 00:00:00 UTC" {} +
rm -f packages/pkg.cab
(cd "$PKG" && gcab -c -z "$OLDPWD/packages/pkg.cab" fixture.inf drivers/amd64/clean.sys drivers/amd64/untagged.sys)

# Malformed inputs.
head -c 700 bin/clean_gcc_x64_O2.sys > malformed/truncated.sys
printf 'This is not a PE image. drvaudit must report a notice for it and go on.\n' > malformed/notpe.sys
: > malformed/empty.sys

# Baseline fixtures: rebuild.c built twice by clang for x64 at -O2, the second with an unrelated
# exported function before all the others (every function after it moves). Both record the same
# PDB name, rebuild.pdb, as two builds of one project do.
clang_build rebuild x64 O2 rebuild_a -- /pdbaltpath:rebuild.pdb
clang_build rebuild x64 O2 rebuild_b -DUNRELATED_FUNCTION -- /pdbaltpath:rebuild.pdb
mkdir -p rebuild/a rebuild/b
mv bin/rebuild_a.sys rebuild/a/rebuild.sys
mv bin/rebuild_b.sys rebuild/b/rebuild.sys
rm -f bin/rebuild_a.lib bin/rebuild_b.lib  # import libraries lld-link writes for the exports

# Debug fixtures (PDBs, DWARF inside, a split DWARF pair, PDBs that must be refused).
# shellcheck source=debug/build_debug.sh
. debug/build_debug.sh

# ---------------------------------------------------------------------------------------------
# Signed fixtures (Authenticode, nested, tampered, timestamped, catalog package): sign/build_signed.sh.
bash sign/build_signed.sh

# Blocklist fixtures (a LOLDrivers folder and a SiPolicy naming three builds by their hashes).
python3 blocklist/make.py

# ---------------------------------------------------------------------------------------------
# Hostile archives from the structures issues 18 and 19 describe (the fuzz targets' regression
# files; see regress/README.md).
python3 regress/make_hostile.py

# ---------------------------------------------------------------------------------------------
FILES=$(ls bin/*.sys bin/*.exe packages/pkg.zip packages/pkg.cab malformed/*.sys signed/*.sys rebuild/*/*.sys \
    packages/signed/* blocklist/policy.xml blocklist/loldrivers/*.yaml \
    regress/cab/*.cab regress/zip/*.zip regress/pe_file/*.sys regress/pdb/*.pdb | sort)
DEBUG_FILES=$(find debug -type f \( -name '*.sys' -o -name '*.pdb' -o -name '*.debug' \) | sort)
cd ..
if [ "$UPDATE" = 1 ]; then
    # shellcheck disable=SC2086
    sha256sum $(echo "$FILES" | sed 's|^|testdata/|') > testdata/bin/SHA256SUMS
    # shellcheck disable=SC2086
    sha256sum $(echo "$DEBUG_FILES" | sed 's|^|testdata/|') > testdata/debug/SHA256SUMS
    echo "build.sh: wrote testdata/bin/SHA256SUMS and testdata/debug/SHA256SUMS"
fi
for sums in testdata/bin/SHA256SUMS testdata/debug/SHA256SUMS; do
    if sha256sum -c --quiet "$sums"; then
        echo "build.sh: OK - sha256sum -c $sums passed: every output was rebuilt byte for byte"
    else
        echo "build.sh: MISMATCH - sha256sum -c $sums failed" >&2
        exit 1
    fi
done
# Every debug output is listed (a new one without --update would otherwise go unchecked).
if [ "$(echo "$DEBUG_FILES" | sed 's|^|testdata/|')" != "$(awk '{print $2}' testdata/debug/SHA256SUMS)" ]; then
    echo "build.sh: MISMATCH - testdata/debug/SHA256SUMS does not list exactly the files under testdata/debug" >&2
    exit 1
fi
