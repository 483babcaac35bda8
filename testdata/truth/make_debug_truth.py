#!/usr/bin/env python3
"""make_debug_truth.py - source locations of pool call sites, derived without drvaudit.

Writes two tables (or, with --check, re-derives them and compares):

  truth/debug_sites.tsv         every pool-API call instruction of every image under
                                testdata/debug/ (built by build.sh: debug/build_debug.sh);
  truth/systeminformer_lines.tsv  the call sites drvaudit reports on the real System Informer
                                drivers (../shared/corpus/drivers/systeminformer-{amd64,arm64}.sys),
                                mapped with their PDBs (../shared/corpus/pdb/).

Columns of both: binary, rva, [api,] file, line, column, function, inlined
  file      the source file as the debug information records it (PDB: the module's file
            checksum name; DWARF: the line program's directory joined with the file name);
  line      the line of the innermost frame (where the call is written);
  column    the column where recorded (DWARF), "-" otherwise (these PDBs record none);
  function  the function that owns the code in the image (PDB procedure, DWARF subprogram),
            i.e. the outermost frame; the name that replaces sub_<rva>;
  inlined   "-" or the inlining chain innermost first, one entry per inlined function:
            NAME@FILE:LINE[:COLUMN], where FILE:LINE is the call that was inlined (the call site
            in the next outer function). Entries are separated by " ; ".

How the call sites are found: for the fixtures, by make_truth.py's own scanners (import table
with pefile, thunks, disassembly with capstone over the function ranges of the debug
information); for pooltest and untagged the set found must equal testdata/truth/sites.tsv (the
same builds). For System Informer, the RVAs are those drvaudit's SARIF reports
(result.locations[].physicalLocation.address.relativeAddress): the first run takes them from
`--sarif-amd64 FILE --sarif-arm64 FILE`; later runs (and --check) reuse the RVAs already in
the table. Only the file:line and function come from the debug information, never from drvaudit.

How the source locations are derived, two independent ways that must agree:
  PDB:   (a) llvm-pdbutil dump -l (line tables, section:offset -> line), -symbols (S_GPROC32 /
             S_LPROC32 ranges and names; S_INLINESITE records with their binary annotations as
             llvm-pdbutil prints them) and -il (each inlinee's first line and file), section:offset
             -> RVA through the image's section headers;
         (b) llvm-symbolizer --inlining (the PDB found beside the image).
  DWARF: (a) llvm-symbolizer --inlining, (b) x86_64-w64-mingw32-addr2line -i -f (same file:line
         and names; addr2line prints no columns, so the column is from llvm-symbolizer).

Usage: python3 testdata/truth/make_debug_truth.py [--check] [--sarif-amd64 F --sarif-arm64 F]
Needs: pefile, capstone (make_truth.py's), llvm-pdbutil, llvm-symbolizer, binutils-mingw-w64.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pefile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_truth as mt  # noqa: E402  (its scanners; importing it runs nothing)

TD = mt.TD
DEBUG = os.path.join(TD, "debug")
SHARED = os.path.normpath(os.path.join(TD, "..", "..", "shared", "corpus"))
FIXTURE_TSV = os.path.join(TD, "truth", "debug_sites.tsv")
CORPUS_TSV = os.path.join(TD, "truth", "systeminformer_lines.tsv")

problems = []


def problem(msg):
    problems.append(msg)


def run(args, inp=None, cwd=None):
    return subprocess.run(args, input=inp, capture_output=True, text=True, check=True, cwd=cwd).stdout


# ------------------------------------------------------------------------------------------------
# Frames: a list of (function, file, line, column) innermost first; the last is the function that
# owns the code. chain() turns it into the table's representation.


def row_of(frames):
    fn0, file0, line0, col0 = frames[0]
    chain = []
    for k in range(len(frames) - 1):
        name = frames[k][0]
        _, f, ln, col = frames[k + 1]
        chain.append("%s@%s:%d%s" % (name, f, ln, ":%d" % col if col else ""))
    return (file0, str(line0), str(col0) if col0 else "-", frames[-1][0], " ; ".join(chain) or "-")


def symbolizer_frames(obj, addrs, relative, cwd=None):
    """llvm-symbolizer --inlining: {addr: [(function, file, line, column)]}."""
    args = ["llvm-symbolizer", "--obj=" + obj, "--inlining", "--functions=linkage"]
    if relative:
        args.append("--relative-address")
    out = run(args, "".join("0x%x\n" % a for a in addrs), cwd=cwd)
    blocks = out.strip("\n").split("\n\n")
    res = {}
    for a, blk in zip(addrs, blocks):
        lines = blk.splitlines()
        frames = []
        for k in range(0, len(lines), 2):
            m = re.match(r"(.*):(\d+):(\d+)$", lines[k + 1])
            frames.append((lines[k], m.group(1), int(m.group(2)), int(m.group(3))))
        res[a] = frames
    return res


def addr2line_frames(obj, vas, machine):
    tool = "x86_64-w64-mingw32-addr2line" if machine == 0x8664 else "i686-w64-mingw32-addr2line"
    res = {}
    for va in vas:
        out = run([tool, "-i", "-f", "-e", obj, "0x%x" % va]).splitlines()
        frames = []
        for k in range(0, len(out), 2):
            m = re.match(r"(.*):(\d+)(?: \(discriminator \d+\))?$", out[k + 1])
            frames.append((out[k], m.group(1), int(m.group(2)), None))
        res[va] = frames
    return res


# ------------------------------------------------------------------------------------------------
# PDB through llvm-pdbutil


class PdbUtil:
    """section:offset -> frames from llvm-pdbutil's dumps of one PDB."""

    def __init__(self, pdb, image):
        pe = pefile.PE(image, fast_load=True)
        self.sections = [(s.VirtualAddress, max(s.Misc_VirtualSize, s.SizeOfRawData)) for s in pe.sections]
        self._lines(run(["llvm-pdbutil", "dump", "-l", pdb]))
        self._inlinee_lines(run(["llvm-pdbutil", "dump", "-il", pdb]))
        self._symbols(run(["llvm-pdbutil", "dump", "-symbols", pdb]))

    def _lines(self, text):
        self.blocks = []  # (section, start, end, file, [(offset, line)])
        file = None
        cur = None
        for ln in text.splitlines():
            if re.match(r"\s*Mod \d{4} \|", ln):
                file = None
                continue
            m = re.match(r"^(\S.*?) \((?:MD5|SHA-256|SHA1|None)(?:: [0-9A-F]+)?\)$", ln)
            if m:
                file = m.group(1)
                continue
            m = re.match(r"^\s+([0-9A-F]{4}):([0-9A-F]{8})-([0-9A-F]{8}), line/addr entries = \d+", ln)
            if m:
                cur = (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16), file, [])
                self.blocks.append(cur)
                continue
            if cur is not None and re.match(r"^\s+\d+ [0-9A-F]{8}", ln):
                for lm in re.finditer(r"(\d+) ([0-9A-F]{8})", ln):
                    cur[4].append((int(lm.group(2), 16), int(lm.group(1))))

    def _inlinee_lines(self, text):
        self.inlinees = {}  # (module, inlinee id) -> (first line, file)
        mod = None
        for ln in text.splitlines():
            m = re.match(r"\s*Mod (\d{4}) \|", ln)
            if m:
                mod = int(m.group(1))
                continue
            m = re.match(r"\s*(0x[0-9A-F]+) \|\s+(\d+) \| (.*?) \((?:MD5|SHA-256|SHA1|None)", ln)
            if m:
                self.inlinees[(mod, int(m.group(1), 16))] = (int(m.group(2)), m.group(3))

    def _symbols(self, text):
        self.procs = []   # (section, offset, size, name, module, record offset)
        self.sites = {}   # (module, record offset) -> dict(inlinee, name, parent, ranges)
        mod = None
        lines = text.splitlines()
        k = 0
        while k < len(lines):
            ln = lines[k]
            m = re.match(r"\s*Mod (\d{4}) \|", ln)
            if m:
                mod = int(m.group(1))
                k += 1
                continue
            m = re.match(r"\s+(\d+) \| S_[GL]PROC32(?:_ID)? \[size = \d+\] `(.*)`$", ln)
            if m:
                d = re.search(r"addr = ([0-9A-F]{4}):(\d+), code size = (\d+)", lines[k + 1])
                self.procs.append((int(d.group(1), 16), int(d.group(2)), int(d.group(3)), m.group(2), mod,
                                   int(m.group(1))))
                k += 2
                continue
            m = re.match(r"\s+(\d+) \| S_INLINESITE \[size = \d+\]$", ln)
            if m:
                # A cross-module inlinee (bit 31 set) has no name in llvm-pdbutil's output: None.
                d = re.match(r"\s+inlinee = (0x[0-9A-F]+)(?: \((.*)\))?, parent = (\d+), end = \d+$", lines[k + 1])
                site = {"inlinee": int(d.group(1), 16), "name": d.group(2), "parent": int(d.group(3)),
                        "ranges": []}
                k += 2
                line = 0
                ranges = site["ranges"]
                while k < len(lines) and re.match(r"^\s+[0-9A-F]+(\s|$)", lines[k]) and \
                        not re.match(r"^\s+\d+ \| ", lines[k]):
                    body = re.sub(r"^\s+[0-9A-F]+\s*", "", lines[k])
                    k += 1
                    if not body:
                        continue
                    toks = [(t.group(1), int(t.group(2), 0)) for t in
                            re.finditer(r"(code end|code|line) (0x[0-9A-F]+|\d+) \([+-]?(?:0x)?[0-9A-F]+\)", body)]
                    # ChangeCodeOffsetAndLineOffset prints "code X line N": the new line belongs
                    # to the range that starts at X, so a line change is applied first.
                    toks.sort(key=lambda t: t[0] != "line")
                    for kind, val in toks:
                        if kind == "line":
                            line = val
                        elif kind == "code":
                            if ranges and ranges[-1][1] is None:
                                ranges[-1][1] = val
                            ranges.append([val, None, line])
                        else:
                            ranges[-1][1] = val
                    rest = re.sub(r"(code end|code|line) (0x[0-9A-F]+|\d+) \([+-]?(?:0x)?[0-9A-F]+\)", "", body)
                    if rest.strip():
                        raise SystemExit("unknown inline-site annotation %r" % body)
                # The last range's line is the line in force when it started; a "line" after the
                # last "code" would change nothing. Ranges are offsets from the procedure start.
                self.sites[(mod, int(m.group(1)))] = site
                continue
            k += 1

    def frames(self, rva):
        sec = next((i + 1 for i, (va, size) in enumerate(self.sections) if va <= rva < va + size), None)
        if sec is None:
            return None
        off = rva - self.sections[sec - 1][0]
        proc = next((p for p in self.procs if p[0] == sec and p[1] <= off < p[1] + p[2]), None)
        if proc is None:
            return None
        blk = next((b for b in self.blocks if b[0] == sec and b[1] <= off < b[2]), None)
        if blk is None:
            return None
        line = max((e for e in blk[4] if e[0] <= off), default=None)
        outer = (proc[3], blk[3], line[1] if line else 0, None)
        # Inline sites of this procedure containing the address, outermost first: start from the
        # procedure's record and descend through the sites whose parent is the current one.
        rel = off - proc[1]
        mod = proc[4]
        chain = []
        parent = proc[5]
        while True:
            hit = None
            for (m, recoff), s in self.sites.items():
                if m != mod or s["parent"] != parent:
                    continue
                for start, end, ln in s["ranges"]:
                    if start <= rel < (end if end is not None else proc[2]):
                        hit = (recoff, s, ln)
                        break
                if hit:
                    break
            if hit is None:
                break
            recoff, s, ln = hit
            first, f = self.inlinees[(mod, s["inlinee"])]
            chain.append((s["name"], f, first + ln, None))
            parent = recoff
        return list(reversed(chain)) + [outer]


# ------------------------------------------------------------------------------------------------
# Fixtures


def fixture_images():
    out = []
    for name in sorted(os.listdir(DEBUG)):
        if name.endswith(".sys"):
            out.append(name)
    out += ["debuglink/" + n for n in sorted(os.listdir(os.path.join(DEBUG, "debuglink"))) if n.endswith(".sys")]
    return out


def dwarf_subprogram_names(path):
    names = set()
    text = run(["llvm-dwarfdump", "--debug-info", path])
    for m in re.finditer(r"DW_TAG_subprogram\n((?:\s+DW_AT_.*\n)+)", text):
        n = re.search(r'DW_AT_name\s+\("([^"]+)"\)', m.group(1))
        if n:
            names.add(n.group(1))
    return names


def pdb_functions(pe, pdb):
    text = run(["llvm-pdbutil", "dump", "--symbols", pdb])
    out = []
    for m in re.finditer(r"S_[GL]PROC32 \[size = \d+\] `([^`]+)`\s+parent = \d+, end = \d+, "
                         r"addr = (\d+):(\d+), code size = (\d+)", text):
        sec = pe.sections[int(m.group(2)) - 1]
        start = sec.VirtualAddress + int(m.group(3))
        out.append((start, start + int(m.group(4)), m.group(1)))
    return sorted(out)


def coff_functions(pe, path):
    nm = "x86_64-w64-mingw32-nm" if pe.FILE_HEADER.Machine == 0x8664 else "i686-w64-mingw32-nm"
    base = pe.OPTIONAL_HEADER.ImageBase
    syms = []
    for line in run([nm, "-n", path]).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "Tt" and not parts[2].startswith((".", "___crt_")):
            syms.append((int(parts[0], 16) - base, parts[2]))
    ends = [(s.VirtualAddress, s.VirtualAddress + s.Misc_VirtualSize) for s in mt.exec_sections(pe)]
    syms.sort()
    out = []
    for k, (start, name) in enumerate(syms):
        sec_end = max(e for st, e in ends if st <= start)
        nxt = [a for a, _ in syms[k + 1:] if a > start]
        end = min([sec_end] + nxt[:1])
        if not out or out[-1][0] != start:
            out.append((start, end, name))
    return out


def call_sites(path, funcs):
    """(rva, api) of every pool-API transfer, by make_truth.py's scanners."""
    pe = pefile.PE(path)
    cs, arch = mt.make_cs(pe)
    slots = mt.image_imports(pe)
    thunks = mt.find_thunks(pe, cs, arch, slots)
    sites = []
    for start, end, _ in funcs:
        if start in thunks:
            continue
        insns = mt.disasm_function(pe, cs, start, end)
        if arch == "arm64":
            found, _ = mt.scan_a64(pe, cs, insns, slots, thunks)
        else:
            found, _ = mt.scan_x86(pe, cs, arch, insns, slots, thunks)
        sites += [(s.rva, s.api) for s in found if s.api in mt.POOL_APIS]
    return sorted(set(sites))


def code_equal(a, b):
    pa, pb = pefile.PE(a), pefile.PE(b)
    ca = {s.Name: s.get_data()[: s.Misc_VirtualSize] for s in mt.exec_sections(pa)}
    cb = {s.Name: s.get_data()[: s.Misc_VirtualSize] for s in mt.exec_sections(pb)}
    return ca == cb


def release_sites(binary):
    rows = set()
    for line in open(os.path.join(TD, "truth", "sites.tsv")).read().splitlines()[1:]:
        f = line.split("\t")
        if f[0] == binary and f[6] == "-":
            rows.add((int(f[1], 16), f[2]))
    return sorted(rows)


def fixtures():
    out = ["binary\trva\tapi\tfile\tline\tcolumn\tfunction\tinlined"]
    for rel in fixture_images():
        path = os.path.join(DEBUG, rel)
        name = os.path.basename(rel)
        pe = pefile.PE(path)
        base = pe.OPTIONAL_HEADER.ImageBase
        drv = name.split("_")[0]
        if "_clang_" in name:
            pdb = os.path.join(DEBUG, name[:-4] + ".pdb")
            funcs = pdb_functions(pe, pdb)
            sites = call_sites(path, funcs)
            a = symbolizer_frames(path, [r for r, _ in sites], True, cwd=DEBUG)
            util = PdbUtil(pdb, path)
            b = {r: util.frames(r) for r, _ in sites}
            second = "llvm-pdbutil"
        else:
            dwarf = path if not rel.startswith("debuglink/") else os.path.join(DEBUG, "debuglink", name[:-4] + ".debug")
            if rel.startswith("debuglink/") and not code_equal(path, os.path.join(DEBUG, name)):
                problem("%s: code differs from %s" % (rel, name))
            funcs = coff_functions(pe, dwarf)
            sites = call_sites(path, funcs)
            # The split pair: llvm-symbolizer reads the unsplit -g image (it names functions of
            # the .debug file from its COFF symbols), addr2line the .debug file.
            first = os.path.join(DEBUG, name) if rel.startswith("debuglink/") else dwarf
            va = symbolizer_frames(first, [base + r for r, _ in sites], False)
            a = {r: va[base + r] for r, _ in sites}
            vb = addr2line_frames(dwarf, [base + r for r, _ in sites], pe.FILE_HEADER.Machine)
            subprograms = dwarf_subprogram_names(dwarf)
            # addr2line has no columns: take llvm-symbolizer's where the rest agrees. Names: the
            # subprogram's DW_AT_name. addr2line prints the linkage name, which gcc decorates for
            # x86 stdcall (InlinedUnload@4); llvm-symbolizer sometimes prints a COFF symbol at the
            # same address instead (___crt_xt_end__ at the start of .text). Where the two differ,
            # the one that is a DW_AT_name of a DW_TAG_subprogram (llvm-dwarfdump) is kept.
            b = {}
            for r, _ in sites:
                fa, fb = a[r], vb[base + r]
                frames = []
                for k, (n, f, ln, _) in enumerate(fb):
                    n = re.sub(r"@\d+$", "", n) if pe.FILE_HEADER.Machine == 0x14C else n
                    if k < len(fa) and fa[k][0] != n and n in subprograms and fa[k][0] not in subprograms:
                        fa[k] = (n,) + fa[k][1:]
                    frames.append((n, f, ln, fa[k][3] if k < len(fa) else None))
                b[r] = frames
            second = "addr2line"
        if drv in ("pooltest", "untagged"):
            want = release_sites(name)
            if sites != want:
                problem("%s: call sites %s differ from sites.tsv %s" % (rel, sites, want))
            if "_gcc_" in name and not code_equal(path, os.path.join(TD, "bin", name)):
                problem("%s: code differs from bin/%s" % (rel, name))
        if not sites:
            problem("%s: no pool call sites found" % rel)
        for rva, api in sites:
            fa, fb = a[rva], b[rva]
            if fb is None or [f[:3] for f in fa] != [f[:3] for f in fb] or \
                    [f[3] or None for f in fa] != [f[3] or None for f in fb]:
                problem("%s 0x%x: llvm-symbolizer %s but %s %s" % (rel, rva, fa, second, fb))
                continue
            if fa[0][1] == "??" or not fa[0][2]:
                problem("%s 0x%x: no source location" % (rel, rva))
            out.append("\t".join((rel, "0x%x" % rva, api) + row_of(fa)))
        print("%-36s %2d call sites" % (rel, len(sites)))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# System Informer


def sarif_rvas(path):
    log = json.load(open(path))
    rvas = set()
    for run_ in log["runs"]:
        for res in run_["results"]:
            for loc in res.get("locations", []):
                addr = loc.get("physicalLocation", {}).get("address", {})
                if "relativeAddress" in addr:
                    rvas.add(addr["relativeAddress"])
    return sorted(rvas)


def corpus(args):
    old = {}
    if os.path.exists(CORPUS_TSV):
        for line in open(CORPUS_TSV).read().splitlines()[1:]:
            f = line.split("\t")
            old.setdefault(f[0], []).append(int(f[1], 16))
    out = ["binary\trva\tfile\tline\tcolumn\tfunction\tinlined"]
    for arch in ("amd64", "arm64"):
        binary = "systeminformer-%s.sys" % arch
        image = os.path.join(SHARED, "drivers", binary)
        pdb = os.path.join(SHARED, "pdb", "systeminformer-%s.pdb" % arch)
        sarif = args.get("--sarif-" + arch)
        rvas = sarif_rvas(sarif) if sarif else sorted(old.get(binary, []))
        if not rvas:
            problem("%s: no RVAs (give --sarif-%s on the first run)" % (binary, arch))
            continue
        util = PdbUtil(pdb, image)
        dropped = 0
        # llvm-symbolizer finds the PDB by the CodeView record's file name beside the image.
        tmp = tempfile.mkdtemp()
        try:
            rec = pefile.PE(image, fast_load=True)
            rec.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DEBUG"]])
            pdbname = next(d.entry.PdbFileName for d in rec.DIRECTORY_ENTRY_DEBUG if d.struct.Type == 2)
            pdbname = pdbname.rstrip(b"\0").decode().replace("\\", "/").split("/")[-1]
            shutil.copy(image, os.path.join(tmp, binary))
            shutil.copy(pdb, os.path.join(tmp, pdbname))
            sym = symbolizer_frames(os.path.join(tmp, binary), rvas, True, cwd=tmp)
        finally:
            shutil.rmtree(tmp)
        for rva in rvas:
            fa = util.frames(rva)
            fb = sym[rva]
            # llvm-symbolizer 14 drops some inline frames of MSVC PDBs (it agrees on every frame
            # it does report, and always on the procedure and its line): its frames must be the
            # outer part of llvm-pdbutil's. The table is llvm-pdbutil's.
            if fa is None or [f[:3] for f in fa[len(fa) - len(fb):]] != [f[:3] for f in fb]:
                problem("%s 0x%x: llvm-pdbutil %s but llvm-symbolizer %s" % (binary, rva, fa, fb))
                continue
            if any(f[0] is None for f in fa):
                problem("%s 0x%x: an inlined function without a name (cross-module id) %s" % (binary, rva, fa))
            if len(fa) != len(fb):
                dropped += 1
            out.append("\t".join((binary, "0x%x" % rva) + row_of(fa)))
        print("%-36s %2d call sites (llvm-symbolizer misses inline frames at %d)" % (binary, len(rvas), dropped))
    return "\n".join(out) + "\n"


def main():
    argv = sys.argv[1:]
    check = "--check" in argv
    args = {}
    for k, a in enumerate(argv):
        if a.startswith("--sarif-"):
            args[a] = argv[k + 1]
    outs = {FIXTURE_TSV: fixtures()}
    if os.path.isdir(SHARED):
        outs[CORPUS_TSV] = corpus(args)
    else:
        print("SKIPPED: %s is absent; %s not re-derived" % (SHARED, os.path.relpath(CORPUS_TSV, TD)))
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    for path, text in outs.items():
        if check:
            if open(path).read() != text:
                print("differs: " + path)
                sys.exit(1)
        else:
            open(path, "w").write(text)
    print("%s %s" % ("checked" if check else "wrote", ", ".join(os.path.relpath(p, TD) for p in outs)))


if __name__ == "__main__":
    main()
