#!/usr/bin/env python3
"""readme_table.py - rewrite the fixture table in testdata/README.md from bin/SHA256SUMS.

Run after `build.sh --update`. The table sits between the lines `<!-- fixture-table -->` and
`<!-- /fixture-table -->`; descriptions come from DESCRIBE below (first matching prefix wins).
"""
import os
import re

TD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GCC = "mingw-w64 gcc 12.2 + GNU ld (build.sh `gcc_build`)"
CLANG = "clang 14 + lld-link 14, /Brepro (build.sh `clang_build`)"

# (file prefix, how produced, what it exercises)
DESCRIBE = [
    ("bin/pooltest_gcc", GCC + ", src/pooltest.c",
     "Every pool API; expected findings: see *pooltest* above (DRV1001-1008, DRV2001, DRV2005, DRV3007). "
     "Two import descriptors for ntoskrnl.exe"),
    ("bin/pooltest_clang", CLANG + ", src/pooltest.c",
     "Same as pooltest_gcc; -O2 unrolls the 4-call loop (pooltest.c:74) into 4 sites"),
    ("bin/runtimetag_gcc", GCC + ", src/runtimetag.c",
     "Tags kept in writable globals: `Fixd` is never written, `Init` is overwritten with `SRun` by DriverEntry; "
     "the four sites read their tag at run time. DRV1002, DRV3007"),
    ("bin/runtimetag_clang", CLANG + ", src/runtimetag.c", "As runtimetag_gcc"),
    ("bin/untagged_gcc", GCC + ", src/untagged.c, then tools/pefix.py sets DISCARDABLE on INIT",
     "Incident shape: DRV1001 + DRV2001 (ExAllocatePool(NonPagedPool, 0x90) in a loop, untagged.c:29), DRV3007. "
     "Free with tag 0 (:45) is not a finding. DriverEntry in section INIT (0x62000020: discardable). "
     "Imports without dllimport: every call goes `call rel32` -> thunk `jmp [IAT]`. "
     "Imports ExAllocatePool, ExFreePoolWithTag, KeInitializeEvent, _wcsnicmp"),
    ("bin/untagged_clang", CLANG + ", src/untagged.c, /section:INIT,ERD",
     "As untagged_gcc (calls through lld thunks; ARM64 `bl` -> `adrp/ldr/br x16`)"),
    ("bin/clean_gcc", GCC + ", src/clean.c",
     "Well-behaved driver: ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x100, `cCln`) + ExFreePoolWithTag same tag. "
     "No pool findings; only DRV3007 (no CFG)"),
    ("bin/clean_clang", CLANG + ", src/clean.c",
     "Well-behaved driver: ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x100, `cCln`) + ExFreePoolWithTag same tag. "
     "No pool findings; only DRV3007 (no CFG)"),
    ("bin/cfguard_clang_x64", CLANG + ", src/clean.c -DWITH_CFG -Xclang -cfguard, /guard:cf",
     "clean.c with Control Flow Guard (DllCharacteristics 0x6160, load config GuardFlags 0x500): no findings at all; "
     "negative case for DRV3007"),
    ("bin/wxsection", CLANG + ", src/hazards.c -DWX_SECTION, /section:.rwx,ERW",
     "DRV3001: section `.rwx` is readable, writable and executable (0xE0000020). Also DRV3007. No pool findings"),
    ("bin/misaligned", GCC + ", src/hazards.c, --section-alignment 0x200",
     "DRV3002: SectionAlignment 0x200 < page size. Also DRV3007. No pool findings"),
    ("bin/iatexec", CLANG + ", src/hazards.c, /merge:.rdata=.text",
     "DRV3003: the IAT (and all read-only data) is inside the executable .text. Also DRV3007. No pool findings"),
    ("bin/ntoskrnl_stub", "clang 14 + lld-link /dll /noentry /opt:noicf, src/ntoskrnl_stub.c + ntoskrnl_stub.def",
     "Not a driver: fake kernel image for the crash-dump writer. Export directory named ntoskrnl.exe; exports every "
     "ntoskrnl.exe routine any fixture imports (18), each at its own address"),
    ("bin/SHA256SUMS", "build.sh --update", "sha256 of every committed output; build.sh checks it"),
    ("packages/pkg.zip", "python3 zipfile, fixed 2020-01-01 timestamps, sorted entries",
     "Driver package: drivers/amd64/untagged.sys and drivers/amd64/clean.sys (= the gcc x64 builds) + fixture.inf; "
     "findings as for those two files"),
    ("packages/pkg.cab", "gcab -c -z, files touched to 2020-01-01 00:00 UTC",
     "Same three files as pkg.zip in a cabinet (MSZIP)"),
    ("malformed/truncated", "first 700 bytes of bin/clean_gcc_x64_O2.sys",
     "Headers present, section data cut off: a notice, no panic"),
    ("malformed/notpe", "printf", "Text, not a PE: a notice, no panic"),
    ("malformed/empty", ": >", "Zero bytes: a notice, no panic"),
]


def main():
    sums = {}
    for line in open(os.path.join(TD, "bin", "SHA256SUMS")):
        h, path = line.split()
        sums[path[len("testdata/"):]] = h
    sums["bin/SHA256SUMS"] = None
    rows = ["| file | sha256 (prefix) | how produced | what it exercises |", "|---|---|---|---|"]
    for path in sorted(sums, key=lambda p: (p.split("/")[0] != "bin", p)):
        for prefix, how, what in DESCRIBE:
            if path.startswith(prefix):
                break
        else:
            raise SystemExit("no description for " + path)
        h = sums[path]
        rows.append("| `%s` | %s | %s | %s |" % (path, "`%s`" % h[:12] if h else "-", how, what))
    readme = os.path.join(TD, "README.md")
    text = open(readme).read()
    new = re.sub(r"(<!-- fixture-table -->\n).*?(<!-- /fixture-table -->)",
                 lambda m: m.group(1) + "\n".join(rows) + "\n" + m.group(2), text, flags=re.S)
    open(readme, "w").write(new)


if __name__ == "__main__":
    main()
