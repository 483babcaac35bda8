#!/usr/bin/env python3
"""make_truth.py - derive testdata/truth/sites.tsv and imports.tsv without drvaudit.

Run testdata/build.sh first: it leaves the debug information this script needs in
testdata/.build/ (DWARF twins of the gcc builds, PDBs of the clang builds).

For every fixture driver in testdata/bin/ it
  1. reads the import table with pefile (IAT slot -> dll!name);
  2. finds the import thunks (x86/x64 `jmp [IAT]`, ARM64 `adrp x16; ldr x16,[x16,#o]; br x16`);
  3. gets the function ranges from the debug information (gcc: COFF symbols of the twin;
     clang: S_GPROC32/S_LPROC32 records of the PDB, via llvm-pdbutil);
  4. disassembles each function with capstone and finds every instruction that transfers to a
     pool API: call/jmp through the IAT slot, call/jmp of a thunk, call/jmp of a register (or
     ARM64 blr/br) whose value was loaded from the IAT slot, directly or through a stack spill;
  5. maps each call to file:line with llvm-symbolizer (first, innermost frame) and joins it with
     the marker comment on that source line (/* SITE ... */, see src/pooltest.c);
  6. for a wrapper (marker wrapper=NAME), adds one row per direct call of NAME, with the tag from
     the /* WRAPCALL ... */ marker on the caller's line;
  7. checks: every found call has a SITE marker with the same API; every SITE/WRAPCALL marker of
     the source is found at least once in every binary built from it; every imported pool API
     has a marker; the gcc twin's sections equal the shipped image's; each marker's tag equals
     the multi-character literal on its line.
It also prints, for review, where a simple per-basic-block reading of the x64/ARM64 argument
registers disagrees with the markers (this reading is a cross-check only; the truth values are
the markers, which state what the source passes).

Usage: python3 testdata/truth/make_truth.py [--check]   (--check: compare with the files, write nothing)
"""
import os
import re
import subprocess
import sys

import capstone
import pefile
from capstone import arm64 as A64
from capstone import x86 as X86

TD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TD, ".build")

# API -> 1-based argument positions of (pool type or flags, size, tag); None = no such argument.
POOL_APIS = {
    "ExAllocatePool": (1, 2, None),
    "ExAllocatePoolWithQuota": (1, 2, None),
    "ExAllocatePoolWithTag": (1, 2, 3),
    "ExAllocatePoolWithQuotaTag": (1, 2, 3),
    "ExAllocatePoolWithTagPriority": (1, 2, 3),
    "ExAllocatePool2": (1, 2, 3),
    "ExAllocatePool3": (1, 2, 3),
    "ExFreePool": (None, None, None),
    "ExFreePoolWithTag": (None, None, 2),
    "ExFreePool2": (None, None, 2),
    "ExInitializeNPagedLookasideList": (4, 5, 6),
    "ExInitializePagedLookasideList": (4, 5, 6),
    "ExInitializeLookasideListEx": (4, 6, 7),
    "NdisAllocateMemoryWithTag": (None, 2, 3),
    "NdisAllocateMemoryWithTagPriority": (None, 2, 3),
    "NdisAllocateMemory": (None, 2, None),
    "FltAllocatePoolAlignedWithTag": (2, 3, 4),
    "MmAllocateContiguousMemory": (None, 1, None),
    "MmAllocateContiguousMemorySpecifyCache": (None, 1, None),
    "MmAllocateContiguousMemorySpecifyCacheNode": (None, 1, None),
}

SOURCE_OF = {"wxsection": "hazards", "misaligned": "hazards", "iatexec": "hazards", "cfguard": "clean"}

problems = []
review = []


def problem(msg):
    problems.append(msg)


# ------------------------------------------------------------------------------------------------
# Markers

MARK_RE = re.compile(r"/\*\s*(SITE|WRAPCALL)\s+([^*]*)\*/")


def parse_markers(src):
    marks = {}
    for n, text in enumerate(open(os.path.join(TD, "src", src + ".c")), 1):
        m = MARK_RE.search(text)
        if not m:
            continue
        kv = dict(item.split("=", 1) for item in m.group(2).split())
        kv["kind"] = m.group(1)
        marks[n] = kv
        # The tag in the marker must equal the multi-character literal the code passes.
        code = text[: m.start()]
        lits = re.findall(r"'((?:[^'\\]|\\.){4})'", code)
        if lits and kv.get("tag", "").startswith("0x"):
            v = int.from_bytes(lits[-1].encode("latin-1"), "big")
            if v != int(kv["tag"], 16):
                problem("%s.c:%d: marker tag %s but literal '%s' is 0x%08X" % (src, n, kv["tag"], lits[-1], v))
    return marks


# ------------------------------------------------------------------------------------------------
# Image facts


def image_imports(pe):
    slots = {}
    for d in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        for imp in d.imports:
            name = imp.name.decode() if imp.name else "#%d" % imp.ordinal
            slots[imp.address - pe.OPTIONAL_HEADER.ImageBase] = (d.dll.decode(), name)
    return slots


def exec_sections(pe):
    return [s for s in pe.sections if s.Characteristics & 0x20000000]


def section_bytes(pe, rva, size):
    return pe.get_data(rva, size)


def read_u32(pe, rva):
    """(value, writable) of the 32-bit value at rva, or None. Uninitialised data reads as 0."""
    for s in pe.sections:
        if s.VirtualAddress <= rva < s.VirtualAddress + max(s.Misc_VirtualSize, s.SizeOfRawData):
            off = rva - s.VirtualAddress
            raw = s.get_data()
            val = int.from_bytes(raw[off:off + 4].ljust(4, b"\0"), "little") if off < len(raw) else 0
            return val, bool(s.Characteristics & 0x80000000)
    return None


def make_cs(pe):
    m = pe.FILE_HEADER.Machine
    if m == 0x8664:
        cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        arch = "x64"
    elif m == 0x14C:
        cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        arch = "x86"
    elif m == 0xAA64:
        cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        arch = "arm64"
    else:
        raise SystemExit("unknown machine %#x" % m)
    cs.detail = True
    return cs, arch


def find_thunks(pe, cs, arch, slots):
    """rva -> api name, for every import thunk in an executable section."""
    base = pe.OPTIONAL_HEADER.ImageBase
    thunks = {}
    for s in exec_sections(pe):
        data = s.get_data()[: s.Misc_VirtualSize]
        va0 = s.VirtualAddress
        if arch in ("x64", "x86"):
            for i in range(len(data) - 5):
                if data[i] == 0xFF and data[i + 1] == 0x25:
                    disp = int.from_bytes(data[i + 2:i + 6], "little", signed=(arch == "x64"))
                    slot = (va0 + i + 6 + disp) if arch == "x64" else (disp - base)
                    if slot in slots:
                        thunks[va0 + i] = slots[slot][1]
        else:
            for i in range(0, len(data) - 11, 4):
                ins = list(cs.disasm(data[i:i + 12], base + va0 + i))
                if len(ins) == 3 and ins[0].mnemonic == "adrp" and ins[1].mnemonic == "ldr" \
                        and ins[2].mnemonic == "br":
                    page = ins[0].operands[1].imm
                    off = ins[1].operands[1].mem.disp
                    if ins[0].operands[0].reg == ins[1].operands[1].mem.base == ins[1].operands[0].reg \
                            == ins[2].operands[0].reg:
                        slot = page + off - base
                        if slot in slots:
                            thunks[va0 + i] = slots[slot][1]
    return thunks


def iat_references(pe, cs, arch, slots):
    """rva of every instruction-like IAT reference found by a raw scan of the executable sections
    (independent of the function ranges; used to prove that no code outside them uses the IAT)."""
    base = pe.OPTIONAL_HEADER.ImageBase
    iat_lo = min(slots) if slots else 0
    iat_hi = max(slots) + 8 if slots else 0
    refs = set()
    for s in exec_sections(pe):
        data = s.get_data()[: s.Misc_VirtualSize]
        va0 = s.VirtualAddress
        if arch == "x64":
            for i in range(len(data) - 5):
                b0, b1, b2 = data[i], data[i + 1], data[i + 2]
                if (b0 == 0xFF and b1 in (0x15, 0x25)) or (b0 in (0x48, 0x4C) and b1 == 0x8B and (b2 & 0xC7) == 0x05):
                    at = i + 2 if b0 == 0xFF else i + 3
                    disp = int.from_bytes(data[at:at + 4], "little", signed=True)
                    if va0 + at + 4 + disp in slots:
                        refs.add(va0 + i)
        elif arch == "x86":
            for i in range(len(data) - 3):
                v = int.from_bytes(data[i:i + 4], "little") - base
                if v in slots:
                    refs.add(va0 + i)
        else:
            for i in range(0, len(data) - 3, 4):
                ins = list(cs.disasm(data[i:i + 4], base + va0 + i))
                if ins and ins[0].mnemonic == "adrp" and \
                        (iat_lo & ~0xFFF) <= ins[0].operands[1].imm - base <= iat_hi:
                    refs.add(va0 + i)
    return refs


def functions(binary, pe, toolchain):
    """Sorted list of (start_rva, end_rva, name) from the debug information."""
    base = pe.OPTIONAL_HEADER.ImageBase
    out = []
    if toolchain == "gcc":
        twin = os.path.join(BUILD, "dbg", binary)
        nm = "x86_64-w64-mingw32-nm" if pe.FILE_HEADER.Machine == 0x8664 else "i686-w64-mingw32-nm"
        syms = []
        for line in subprocess.run([nm, "-n", twin], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "Tt" and not parts[2].startswith((".", "___crt_")):
                syms.append((int(parts[0], 16) - base, parts[2].lstrip("_").split("@")[0]))
        ends = {}
        for s in exec_sections(pe):
            ends[s.VirtualAddress] = s.VirtualAddress + s.Misc_VirtualSize
        syms.sort()
        for k, (start, name) in enumerate(syms):
            sec_end = max(e for st, e in ends.items() if st <= start)
            nxt = [a for a, _ in syms[k + 1:] if a > start]
            end = min([sec_end] + nxt[:1])
            if not out or out[-1][0] != start:
                out.append((start, end, name))
    else:
        pdb = os.path.join(BUILD, "pdb", binary[:-4] + ".pdb")
        text = subprocess.run(["llvm-pdbutil", "dump", "--symbols", pdb], capture_output=True, text=True,
                              check=True).stdout
        for m in re.finditer(r"S_[GL]PROC32 \[size = \d+\] `([^`]+)`\s+parent = \d+, end = \d+, "
                             r"addr = (\d+):(\d+), code size = (\d+)", text):
            sec = pe.sections[int(m.group(2)) - 1]
            start = sec.VirtualAddress + int(m.group(3))
            out.append((start, start + int(m.group(4)), m.group(1).lstrip("_").split("@")[0]))
        out.sort()
    return out


def symbolize(binary, toolchain, rvas):
    if not rvas:
        return {}
    if toolchain == "gcc":
        obj, cwd = os.path.join(BUILD, "dbg", binary), None
    else:
        obj, cwd = os.path.join(TD, "bin", binary), os.path.join(BUILD, "pdb")
    inp = "".join("0x%x\n" % r for r in rvas)
    res = subprocess.run(["llvm-symbolizer", "--obj=" + obj, "--relative-address", "--inlining"], input=inp,
                         capture_output=True, text=True, check=True, cwd=cwd).stdout
    blocks = res.strip("\n").split("\n\n")
    out = {}
    for rva, blk in zip(rvas, blocks):
        lines = blk.splitlines()
        m = re.match(r"(.*):(\d+):\d+$", lines[1])
        out[rva] = (os.path.basename(m.group(1)), int(m.group(2))) if m else ("??", 0)
    return out


def check_twin(binary, pe):
    twin = pefile.PE(os.path.join(BUILD, "dbg", binary))
    tw = {s.Name: s for s in twin.sections}
    for s in pe.sections:
        t = tw.get(s.Name)
        if t is None or t.VirtualAddress != s.VirtualAddress or \
                t.get_data()[: s.Misc_VirtualSize] != s.get_data()[: s.Misc_VirtualSize]:
            problem("%s: section %r differs from its DWARF twin" % (binary, s.Name))


# ------------------------------------------------------------------------------------------------
# Disassembly

X86_CANON = {}
for full, subs in {
    "rax": "eax ax al ah", "rbx": "ebx bx bl bh", "rcx": "ecx cx cl ch", "rdx": "edx dx dl dh",
    "rsi": "esi si sil", "rdi": "edi di dil", "rbp": "ebp bp bpl", "rsp": "esp sp spl",
}.items():
    X86_CANON[full] = full
    for s in subs.split():
        X86_CANON[s] = full
for k in range(8, 16):
    for suf in ("", "d", "w", "b"):
        X86_CANON["r%d%s" % (k, suf)] = "r%d" % k
X64_VOLATILE = {"rax", "rcx", "rdx", "r8", "r9", "r10", "r11"}
X86_VOLATILE = {"rax", "rcx", "rdx"}
X64_ARGS = {1: "rcx", 2: "rdx", 3: "r8", 4: "r9"}


def canon_x86(cs, reg):
    return X86_CANON.get(cs.reg_name(reg), cs.reg_name(reg))


def canon_a64(cs, reg):
    n = cs.reg_name(reg)
    if n in ("wzr", "xzr"):
        return "zr"
    if n[0] in "wx" and n[1:].isdigit():
        return "x" + n[1:]
    return n


class Site:
    def __init__(self, rva, api, how, insn_index):
        self.rva, self.api, self.how, self.idx = rva, api, how, insn_index


def disasm_function(pe, cs, start, end):
    base = pe.OPTIONAL_HEADER.ImageBase
    code = pe.get_data(start, end - start)
    return list(cs.disasm(code, base + start))


def scan_x86(pe, cs, arch, insns, slots, thunks):
    """Find pool-API transfers in one function. Returns (sites, direct_calls[(rva, target_rva)])."""
    base = pe.OPTIONAL_HEADER.ImageBase
    volatile = X64_VOLATILE if arch == "x64" else X86_VOLATILE
    reg = {}      # canonical register -> api loaded from the IAT
    spill = {}    # (base register, displacement) -> api
    reloaded = set()
    sites, direct = [], []

    def mem_slot(insn, op):
        if op.type != X86.X86_OP_MEM:
            return None
        if arch == "x64" and op.mem.base == X86.X86_REG_RIP and op.mem.index == 0:
            return insn.address + insn.size + op.mem.disp - base
        if arch == "x86" and op.mem.base == 0 and op.mem.index == 0:
            return (op.mem.disp & 0xFFFFFFFF) - base
        return None

    for i, insn in enumerate(insns):
        rva = insn.address - base
        grp_call = insn.group(capstone.CS_GRP_CALL)
        is_jmp = insn.id == X86.X86_INS_JMP
        if grp_call or is_jmp:
            op = insn.operands[0]
            api = None
            how = "call" if grp_call else "jmp"
            if op.type == X86.X86_OP_MEM:
                slot = mem_slot(insn, op)
                if slot in slots:
                    api, how = slots[slot][1], how + " [IAT]"
                elif op.mem.base in (X86.X86_REG_RSP, X86.X86_REG_RBP, X86.X86_REG_ESP, X86.X86_REG_EBP):
                    key = (canon_x86(cs, op.mem.base), op.mem.disp)
                    if key in spill:
                        api, how = spill[key], how + " [spill]"
            elif op.type == X86.X86_OP_REG:
                r = canon_x86(cs, op.reg)
                if r in reg:
                    api, how = reg[r], how + " reg" + (" (reloaded from stack)" if r in reloaded else "")
            elif op.type == X86.X86_OP_IMM:
                t = op.imm - base
                if t in thunks:
                    api, how = thunks[t], how + " thunk"
                elif grp_call or is_jmp:
                    direct.append((rva, t, how))
            if api is not None:
                sites.append(Site(rva, api, how, i))
            if grp_call:
                for r in volatile:
                    reg.pop(r, None)
            continue
        # Register loads from the IAT, spills and reloads.
        if insn.id == X86.X86_INS_MOV and len(insn.operands) == 2:
            dst, src = insn.operands
            if dst.type == X86.X86_OP_REG and src.type == X86.X86_OP_MEM:
                slot = mem_slot(insn, src)
                d = canon_x86(cs, dst.reg)
                if slot in slots:
                    reg[d] = slots[slot][1]
                    reloaded.discard(d)
                    continue
                if src.mem.base in (X86.X86_REG_RSP, X86.X86_REG_RBP, X86.X86_REG_ESP, X86.X86_REG_EBP):
                    key = (canon_x86(cs, src.mem.base), src.mem.disp)
                    if key in spill:
                        reg[d] = spill[key]
                        reloaded.add(d)
                        continue
            if dst.type == X86.X86_OP_MEM and src.type == X86.X86_OP_REG and \
                    dst.mem.base in (X86.X86_REG_RSP, X86.X86_REG_RBP, X86.X86_REG_ESP, X86.X86_REG_EBP):
                key = (canon_x86(cs, dst.mem.base), dst.mem.disp)
                s = canon_x86(cs, src.reg)
                if s in reg:
                    spill[key] = reg[s]
                else:
                    spill.pop(key, None)
        # `lea esi, [esi]` (gcc's padding before a loop head) writes its register with its own
        # value: whatever it held, it still holds.
        if insn.id == X86.X86_INS_LEA and len(insn.operands) == 2:
            dst, src = insn.operands
            if dst.type == X86.X86_OP_REG and src.mem.index == 0 and src.mem.disp == 0 \
                    and src.mem.base == dst.reg:
                continue
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            written = []
        for w in written:
            reg.pop(canon_x86(cs, w), None)
    return sites, direct


def scan_a64(pe, cs, insns, slots, thunks):
    base = pe.OPTIONAL_HEADER.ImageBase
    val = {}     # register -> ("addr", va) | ("api", name)
    spill = {}   # (base register, displacement) -> api
    sites, direct = [], []
    for i, insn in enumerate(insns):
        rva = insn.address - base
        mn = insn.mnemonic
        ops = insn.operands
        if mn in ("bl", "b") and ops and ops[0].type == A64.ARM64_OP_IMM:
            t = ops[0].imm - base
            if t in thunks:
                sites.append(Site(rva, thunks[t], mn + " thunk", i))
            elif mn == "bl":
                direct.append((rva, t, mn))
            if mn == "bl":
                for k in range(19):
                    val.pop("x%d" % k, None)
            continue
        if mn in ("blr", "br"):
            r = canon_a64(cs, ops[0].reg)
            v = val.get(r)
            if v and v[0] == "api":
                sites.append(Site(rva, v[1], mn + " reg" + (" (%s)" % v[2] if len(v) > 2 else ""), i))
            elif mn == "blr":
                pass
            if mn == "blr":
                for k in range(19):
                    val.pop("x%d" % k, None)
            continue
        handled = False
        if mn == "adrp":
            val[canon_a64(cs, ops[0].reg)] = ("addr", ops[1].imm)
            handled = True
        elif mn == "add" and len(ops) == 3 and ops[2].type == A64.ARM64_OP_IMM and ops[1].type == A64.ARM64_OP_REG:
            v = val.get(canon_a64(cs, ops[1].reg))
            if v and v[0] == "addr":
                val[canon_a64(cs, ops[0].reg)] = ("addr", v[1] + ops[2].imm)
                handled = True
        elif mn == "ldr" and len(ops) == 2 and ops[1].type == A64.ARM64_OP_MEM and ops[1].mem.index == 0:
            d = canon_a64(cs, ops[0].reg)
            b = canon_a64(cs, ops[1].mem.base)
            v = val.get(b)
            if v and v[0] == "addr" and (v[1] + ops[1].mem.disp - base) in slots:
                val[d] = ("api", slots[v[1] + ops[1].mem.disp - base][1])
                handled = True
            elif b in ("sp", "x29") and (b, ops[1].mem.disp) in spill:
                val[d] = ("api", spill[(b, ops[1].mem.disp)], "reloaded from stack")
                handled = True
        elif mn in ("str", "stur") and len(ops) == 2 and ops[1].type == A64.ARM64_OP_MEM:
            b = canon_a64(cs, ops[1].mem.base)
            s = canon_a64(cs, ops[0].reg)
            if b in ("sp", "x29"):
                v = val.get(s)
                if v and v[0] == "api" and cs.reg_name(ops[0].reg).startswith("x"):
                    spill[(b, ops[1].mem.disp)] = v[1]
                else:
                    spill.pop((b, ops[1].mem.disp), None)
        if not handled:
            try:
                _, written = insn.regs_access()
            except capstone.CsError:
                written = []
            for w in written:
                val.pop(canon_a64(cs, w), None)
    return sites, direct


# ------------------------------------------------------------------------------------------------
# Cross-check: read argument registers within the call's basic block (x64 rcx/rdx/r8/r9, ARM64 x0-x7).


def block_starts(insns, base):
    starts = set()
    for k, insn in enumerate(insns):
        for op in insn.operands:
            pass
        if insn.group(capstone.CS_GRP_JUMP) or insn.mnemonic.startswith(("b.", "cb", "tb")) or insn.mnemonic == "b":
            if k + 1 < len(insns):
                starts.add(insns[k + 1].address)
            for op in insn.operands:
                if op.type in (X86.X86_OP_IMM, A64.ARM64_OP_IMM) and op.imm > base:
                    starts.add(op.imm)
    return starts


def arg_value_x64(pe, cs, insns, idx, regname, starts):
    base = pe.OPTIONAL_HEADER.ImageBase
    want = regname
    for k in range(idx - 1, -1, -1):
        insn = insns[k]
        if insn.group(capstone.CS_GRP_CALL):
            return "clobbered"
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            written = []
        if any(canon_x86(cs, w) == want for w in written):
            ops = insn.operands
            if insn.id == X86.X86_INS_XOR and ops[0].type == ops[1].type == X86.X86_OP_REG and ops[0].reg == ops[1].reg:
                return "0x0"
            if insn.id == X86.X86_INS_MOV and ops[1].type == X86.X86_OP_IMM:
                return "0x%x" % (ops[1].imm & 0xFFFFFFFFFFFFFFFF)
            if insn.id == X86.X86_INS_MOV and ops[1].type == X86.X86_OP_REG:
                want = canon_x86(cs, ops[1].reg)
                if insn.address in starts:
                    return "unknown"
                continue
            if insn.id == X86.X86_INS_MOV and ops[1].type == X86.X86_OP_MEM and ops[1].mem.base == X86.X86_REG_RIP:
                r = read_u32(pe, insn.address + insn.size + ops[1].mem.disp - base)
                if r:
                    return ("runtime:0x%x" if r[1] else "0x%x") % r[0]
            return "unknown"
        if insn.address in starts:
            return "unknown"
    return "unknown"


def stack_arg_x64(pe, cs, insns, idx, pos, starts):
    """x64 argument pos >= 5: the last store to [rsp + 0x20 + 8*(pos-5)] in the call's block."""
    off = 0x20 + 8 * (pos - 5)
    for k in range(idx - 1, -1, -1):
        insn = insns[k]
        ops = insn.operands
        if insn.id == X86.X86_INS_MOV and ops[0].type == X86.X86_OP_MEM and ops[0].mem.base == X86.X86_REG_RSP \
                and not ops[0].mem.index and ops[0].mem.disp == off:
            if ops[1].type == X86.X86_OP_IMM:
                return "0x%x" % (ops[1].imm & 0xFFFFFFFF)
            if ops[1].type == X86.X86_OP_REG:
                return arg_value_x64(pe, cs, insns, k, canon_x86(cs, ops[1].reg), starts)
            return "unknown"
        if insn.address in starts:
            return "unknown"
    return "unknown"


def arg_values_x86(pe, cs, insns, idx, starts):
    """x86: simulate the call's basic block forward (pushes, esp arithmetic, stores through esp or a
    copy of esp, register constants) and return {stack slot (1-based dword): value} at the call."""
    base = pe.OPTIONAL_HEADER.ImageBase
    k0 = 0
    for k in range(idx, -1, -1):
        if insns[k].address in starts:
            k0 = k
            break
    esp, mem, alias, regs = 0, {}, {}, {}

    def read(op):
        if op.type == X86.X86_OP_IMM:
            return "0x%x" % (op.imm & 0xFFFFFFFF)
        if op.type == X86.X86_OP_REG:
            r = canon_x86(cs, op.reg)
            return regs.get(r, "unknown")
        if op.type == X86.X86_OP_MEM:
            b = canon_x86(cs, op.mem.base) if op.mem.base else None
            if op.mem.index:
                return "unknown"
            if b is None:
                r = read_u32(pe, (op.mem.disp & 0xFFFFFFFF) - base)
                return ("runtime:0x%x" if r[1] else "0x%x") % r[0] if r else "unknown"
            if b == "rsp":
                return mem.get(esp + op.mem.disp, "unknown")
            if b in alias:
                return mem.get(alias[b] + op.mem.disp, "unknown")
        return "unknown"

    def store_addr(op):
        b = canon_x86(cs, op.mem.base) if op.mem.base else None
        if op.mem.index or b is None:
            return None
        if b == "rsp":
            return esp + op.mem.disp
        if b in alias:
            return alias[b] + op.mem.disp
        return None

    for k in range(k0, idx):
        insn = insns[k]
        ops = insn.operands
        if insn.group(capstone.CS_GRP_CALL):
            esp, mem, alias = 0, {}, {}
            for r in X86_VOLATILE:
                regs.pop(r, None)
            continue
        if insn.id == X86.X86_INS_PUSH:
            v = read(ops[0])
            esp -= 4
            mem[esp] = v
            continue
        if insn.id == X86.X86_INS_POP:
            regs[canon_x86(cs, ops[0].reg)] = mem.get(esp, "unknown")
            esp += 4
            continue
        if insn.id in (X86.X86_INS_SUB, X86.X86_INS_ADD) and ops[0].type == X86.X86_OP_REG and \
                canon_x86(cs, ops[0].reg) == "rsp":
            if ops[1].type == X86.X86_OP_IMM:
                esp += ops[1].imm if insn.id == X86.X86_INS_ADD else -ops[1].imm
            else:
                esp, mem, alias = 0, {}, {}
            continue
        if insn.id == X86.X86_INS_MOV and ops[0].type == X86.X86_OP_MEM:
            a = store_addr(ops[0])
            if a is not None:
                mem[a] = read(ops[1]) if ops[0].size == 4 else "unknown"
            continue
        if insn.id == X86.X86_INS_MOV and ops[0].type == X86.X86_OP_REG:
            d = canon_x86(cs, ops[0].reg)
            if ops[1].type == X86.X86_OP_REG and canon_x86(cs, ops[1].reg) == "rsp":
                alias[d] = esp
                regs.pop(d, None)
            else:
                regs[d] = read(ops[1])
                alias.pop(d, None)
            continue
        if insn.id == X86.X86_INS_XOR and ops[0].type == ops[1].type == X86.X86_OP_REG and ops[0].reg == ops[1].reg:
            regs[canon_x86(cs, ops[0].reg)] = "0x0"
            alias.pop(canon_x86(cs, ops[0].reg), None)
            continue
        if insn.id == X86.X86_INS_LEA and ops[1].mem.base and canon_x86(cs, ops[1].mem.base) == "rsp" \
                and not ops[1].mem.index:
            alias[canon_x86(cs, ops[0].reg)] = esp + ops[1].mem.disp
            continue
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            written = []
        for w in written:
            c = canon_x86(cs, w)
            if c == "rsp":
                esp, mem, alias = 0, {}, {}
            regs.pop(c, None)
            alias.pop(c, None)
    return {n: mem.get(esp + 4 * (n - 1), "unknown") for n in range(1, 9)}


def arg_value_a64(pe, cs, insns, idx, regname, starts):
    base = pe.OPTIONAL_HEADER.ImageBase
    want = regname
    hi = None
    for k in range(idx - 1, -1, -1):
        insn = insns[k]
        if insn.mnemonic in ("bl", "blr"):
            return "clobbered"
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            written = []
        if any(canon_a64(cs, w) == want for w in written):
            ops = insn.operands
            if insn.mnemonic == "movk":
                shift = ops[1].shift.value if ops[1].shift.type else 0
                hi = (hi or 0) | (ops[1].imm << shift)
                continue
            if insn.mnemonic in ("mov", "movz") and ops[1].type == A64.ARM64_OP_IMM:
                v = ops[1].imm
                if ops[1].shift.type:
                    v <<= ops[1].shift.value
                return "0x%x" % ((v | (hi or 0)) & 0xFFFFFFFFFFFFFFFF)
            if insn.mnemonic == "mov" and ops[1].type == A64.ARM64_OP_REG:
                if canon_a64(cs, ops[1].reg) == "zr":
                    return "0x%x" % (hi or 0)
                want = canon_a64(cs, ops[1].reg)
                if insn.address in starts:
                    return "unknown"
                continue
            if insn.mnemonic == "ldr" and ops[1].type == A64.ARM64_OP_MEM:
                # adrp xN, page ; ldr wM, [xN, #lo]
                b = canon_a64(cs, ops[1].mem.base)
                for j in range(k - 1, max(-1, k - 8), -1):
                    p = insns[j]
                    if p.mnemonic == "adrp" and canon_a64(cs, p.operands[0].reg) == b:
                        r = read_u32(pe, p.operands[1].imm + ops[1].mem.disp - base)
                        if r:
                            return ("runtime:0x%x" if r[1] else "0x%x") % r[0]
                return "unknown"
            return "unknown"
        if insn.address in starts:
            return "unknown"
    return "unknown"


# ------------------------------------------------------------------------------------------------


def analyse(binary):
    path = os.path.join(TD, "bin", binary)
    pe = pefile.PE(path)
    toolchain = "gcc" if "_gcc_" in binary else "clang"
    drv = binary.split("_")[0]
    src = SOURCE_OF.get(drv, drv)
    marks = parse_markers(src)
    cs, arch = make_cs(pe)
    if arch != binary.split("_")[-2]:
        problem("%s: machine is %s" % (binary, arch))
    if pe.OPTIONAL_HEADER.Subsystem != 1:
        problem("%s: subsystem %d, not NATIVE (1)" % (binary, pe.OPTIONAL_HEADER.Subsystem))
    if pe.OPTIONAL_HEADER.CheckSum != pe.generate_checksum():
        problem("%s: checksum is not valid" % binary)
    slots = image_imports(pe)
    thunks = find_thunks(pe, cs, arch, slots)
    if toolchain == "gcc":
        check_twin(binary, pe)
    funcs = [f for f in functions(binary, pe, toolchain) if f[0] not in thunks]
    base = pe.OPTIONAL_HEADER.ImageBase
    for ref in sorted(iat_references(pe, cs, arch, slots)):
        inside = any(st <= ref < en for st, en, _ in funcs) or \
            any(t <= ref < t + (12 if arch == "arm64" else 6) for t in thunks)
        if not inside:
            problem("%s: IAT reference at rva 0x%x is outside every known function and thunk" % (binary, ref))

    all_sites, all_direct, fn_of = [], [], {}
    for start, end, name in funcs:
        insns = disasm_function(pe, cs, start, end)
        if arch == "arm64":
            sites, direct = scan_a64(pe, cs, insns, slots, thunks)
        else:
            sites, direct = scan_x86(pe, cs, arch, insns, slots, thunks)
        starts = block_starts(insns, base) | {base + start}
        for s in sites:
            s.func = name
            s.fstart = start
            s.seen = {}
            if s.api in POOL_APIS:
                x86_slots = arg_values_x86(pe, cs, insns, s.idx, starts) if arch == "x86" else None
                for col, pos in zip(("type", "size", "tag"), POOL_APIS[s.api]):
                    if pos is None:
                        continue
                    if arch == "x86":
                        # ExAllocatePool2/3 take a 64-bit Flags first: the later arguments move one slot.
                        slot = pos + 1 if s.api in ("ExAllocatePool2", "ExAllocatePool3") and pos > 1 else pos
                        s.seen[col] = x86_slots[slot]
                    elif arch == "x64" and pos <= 4:
                        s.seen[col] = arg_value_x64(pe, cs, insns, s.idx, X64_ARGS[pos], starts)
                    elif arch == "x64":
                        s.seen[col] = stack_arg_x64(pe, cs, insns, s.idx, pos, starts)
                    elif arch == "arm64":
                        s.seen[col] = arg_value_a64(pe, cs, insns, s.idx, "x%d" % (pos - 1), starts)
        all_sites += [s for s in sites if s.api in POOL_APIS]
        all_direct += direct
        for s in sites:
            fn_of[s.rva] = name

    func_start = {name: start for start, end, name in funcs}
    lines = symbolize(binary, toolchain, sorted({s.rva for s in all_sites} | {d[0] for d in all_direct}))

    rows, details = [], []
    found_marks = set()
    for s in sorted(all_sites, key=lambda s: s.rva):
        f, ln = lines[s.rva]
        mk = marks.get(ln) if f == src + ".c" else None
        if mk is None or mk["kind"] != "SITE":
            problem("%s: call of %s at rva 0x%x (%s:%d, %s) has no SITE marker" % (binary, s.api, s.rva, f, ln, s.how))
            continue
        if mk["api"] != s.api:
            problem("%s: rva 0x%x calls %s but the marker on %s:%d says %s" % (binary, s.rva, s.api, f, ln, mk["api"]))
        found_marks.add(ln)
        srcline = "%s:%d" % (f, ln)
        rows.append((binary, s.rva, s.api, mk["type"], mk["size"], mk["tag"], "-", srcline))
        details.append((binary, s.rva, s.api, s.how, s.func,
                        " ".join("%s=%s" % kv for kv in sorted(s.seen.items())) or "-"))
        for col, seen in s.seen.items():
            want = mk[col]
            ok = seen.lower() == want.lower() or (want in ("unknown", "param") and seen in ("unknown", "clobbered"))
            if not ok:
                review.append("%s rva=0x%x %s %s: marker %s, block reading %s (%s)" %
                              (binary, s.rva, s.api, col, want, seen, s.how))
        if "wrapper" in mk:
            wstart = func_start.get(mk["wrapper"])
            if wstart is None or s.fstart != wstart:
                problem("%s: rva 0x%x is not inside wrapper %s" % (binary, s.rva, mk["wrapper"]))
                continue
            for crva, target, how in all_direct:
                if target != wstart:
                    continue
                cf, cln = lines[crva]
                cm = marks.get(cln)
                if cm is None or cm["kind"] != "WRAPCALL" or cm["wrapper"] != mk["wrapper"]:
                    problem("%s: call of %s at 0x%x (%s:%d) has no WRAPCALL marker" % (binary, mk["wrapper"], crva, cf, cln))
                    continue
                found_marks.add(cln)
                rows.append((binary, s.rva, s.api, mk["type"], mk["size"], cm["tag"], "0x%x" % crva,
                             "%s:%d" % (cf, cln)))
    for ln, mk in sorted(marks.items()):
        if ln not in found_marks:
            problem("%s: marker %s.c:%d (%s %s) has no call in the binary" % (binary, src, ln, mk["kind"],
                                                                               mk.get("api", mk.get("wrapper"))))
    # Imports
    imports = sorted(set(slots.values()), key=lambda x: (x[0].lower(), x[1]))
    marker_apis = {mk["api"] for mk in marks.values() if mk["kind"] == "SITE"}
    for dll, name in imports:
        if name in POOL_APIS and name not in marker_apis:
            problem("%s: imports %s but no marker names it" % (binary, name))
    for api in marker_apis:
        if api not in {n for _, n in imports}:
            problem("%s: marker API %s is not imported" % (binary, api))
    unused_thunks = sorted(t for t, api in thunks.items() if api in POOL_APIS)
    return rows, imports, details, arch


def main():
    check = "--check" in sys.argv
    bins = sorted(b for b in os.listdir(os.path.join(TD, "bin")) if b.endswith(".sys"))
    site_lines = ["binary\trva\tapi\tpool_type_or_flags\tsize\ttag\tvia_wrapper\tsource_line"]
    imp_lines = ["binary\tdll\timport\tpool_api"]
    det_lines = ["binary\trva\tapi\tinstruction_form\tfunction\tblock_reading(x64/arm64 only)"]
    counts = []
    for b in bins:
        rows, imports, details, arch = analyse(b)
        for d in details:
            det_lines.append("%s\t0x%x\t%s\t%s\t%s\t%s" % d)
        rows.sort(key=lambda r: (r[1], r[6] != "-", int(r[6], 16) if r[6] != "-" else 0))
        for r in rows:
            site_lines.append("%s\t0x%x\t%s\t%s\t%s\t%s\t%s\t%s" % r)
        for dll, name in imports:
            imp_lines.append("%s\t%s\t%s\t%s" % (b, dll, name, "yes" if name in POOL_APIS else "no"))
        counts.append((b, len(rows), sum(1 for r in rows if r[6] == "-")))
    outs = {
        os.path.join(TD, "truth", "sites.tsv"): "\n".join(site_lines) + "\n",
        os.path.join(TD, "truth", "imports.tsv"): "\n".join(imp_lines) + "\n",
        os.path.join(TD, "truth", "sites_detail.tsv"): "\n".join(det_lines) + "\n",
    }
    # Every ntoskrnl.exe import of every fixture must be exported by the kernel stubs.
    stub_exports = {}
    for arch in ("x86", "x64", "arm64"):
        spe = pefile.PE(os.path.join(TD, "bin", "ntoskrnl_stub_%s.exe" % arch))
        if make_cs(spe)[1] != arch or spe.OPTIONAL_HEADER.Subsystem != 1 or \
                spe.OPTIONAL_HEADER.CheckSum != spe.generate_checksum():
            problem("ntoskrnl_stub_%s.exe: wrong machine, subsystem or checksum" % arch)
        if spe.DIRECTORY_ENTRY_EXPORT.name != b"ntoskrnl.exe":
            problem("ntoskrnl_stub_%s.exe: export directory name is %r" % (arch, spe.DIRECTORY_ENTRY_EXPORT.name))
        addrs = [e.address for e in spe.DIRECTORY_ENTRY_EXPORT.symbols]
        if len(set(addrs)) != len(addrs):
            problem("ntoskrnl_stub_%s.exe: two exports share an address" % arch)
        stub_exports[arch] = {e.name.decode() for e in spe.DIRECTORY_ENTRY_EXPORT.symbols}
    for line in imp_lines[1:]:
        b, dll, name, _ = line.split("\t")
        arch = b.split("_")[-2]
        if dll.lower() == "ntoskrnl.exe" and name not in stub_exports[arch]:
            problem("%s imports ntoskrnl.exe!%s, which ntoskrnl_stub_%s.exe does not export" % (b, name, arch))
    review_text = ("# make_truth.py: call sites where reading the x64/ARM64 argument registers inside the\n"
                   "# call's basic block does not give the marker's value (stack slots at -O0, values\n"
                   "# kept in callee-saved registers or computed from them at -O2). The marker value is\n"
                   "# still what the call receives; these are the hard cases for a static reader.\n"
                   + "".join(r + "\n" for r in review))
    outs[os.path.join(TD, "truth", "review.txt")] = review_text
    for b, n, direct in counts:
        print("%-34s %3d rows (%d call instructions, %d wrapper-resolved)" % (b, n, direct, n - direct))
    if review:
        print("\nreview: the per-block register reading disagrees with the marker at:")
        for r in review:
            print("  " + r)
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
    print("\n%s %s" % ("checked" if check else "wrote", ", ".join(os.path.relpath(p, TD) for p in outs)))


if __name__ == "__main__":
    main()
