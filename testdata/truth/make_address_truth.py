#!/usr/bin/env python3
"""make_address_truth.py - derive testdata/truth/address_tags.tsv without drvaudit.

For every x86 fixture in testdata/bin/ whose name starts with x86asm_, it finds with capstone
each `push imm32` whose immediate field is covered by a base relocation (pefile's
IMAGE_REL_BASED_HIGHLOW entries) and that is one of the three pushes before a
`call [IAT slot of ExAllocatePoolWithTag]` (the tag is the third argument, so the first of the
three pushes counted back from the call). It writes: binary, the call's RVA, the RVA the
immediate names (immediate - ImageBase), the section holding it, whether that section is
writable, and the 4 bytes there as a little-endian hex number (the value the global holds).

Usage: python3 testdata/truth/make_address_truth.py [--check]   (--check: compare, write nothing)
"""
import os
import sys

import capstone
import pefile
from capstone import x86 as X86

TD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(TD, "truth", "address_tags.tsv")


def rows_of(name):
    pe = pefile.PE(os.path.join(TD, "bin", name))
    base = pe.OPTIONAL_HEADER.ImageBase
    relocated = set()
    for block in getattr(pe, "DIRECTORY_ENTRY_BASERELOC", []):
        for e in block.entries:
            if e.type == pefile.RELOCATION_TYPE["IMAGE_REL_BASED_HIGHLOW"]:
                relocated.add(e.rva)
    iat = {}
    for d in pe.DIRECTORY_ENTRY_IMPORT:
        for imp in d.imports:
            if imp.name:
                iat[imp.address - base] = imp.name.decode()
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    cs.detail = True
    out = []
    for sec in pe.sections:
        if not sec.Characteristics & 0x20000000:  # IMAGE_SCN_MEM_EXECUTE
            continue
        code = sec.get_data()[: sec.Misc_VirtualSize]
        insns = list(cs.disasm(code, base + sec.VirtualAddress))
        for i, ins in enumerate(insns):
            if ins.mnemonic != "call" or ins.operands[0].type != X86.X86_OP_MEM:
                continue
            m = ins.operands[0].mem
            slot = (m.disp & 0xFFFFFFFF) - base
            if m.base or m.index or iat.get(slot) != "ExAllocatePoolWithTag":
                continue
            pushes = [p for p in insns[max(0, i - 8):i] if p.mnemonic == "push"]
            if len(pushes) < 3:
                continue
            tag_push = pushes[-3]
            if tag_push.operands[0].type != X86.X86_OP_IMM:
                continue
            imm_rva = tag_push.address + 1 - base  # 68 id: the immediate follows the opcode
            if imm_rva not in relocated:
                continue
            target = (tag_push.operands[0].imm & 0xFFFFFFFF) - base
            tsec = pe.get_section_by_rva(target)
            writable = bool(tsec.Characteristics & 0x80000000)
            holds = int.from_bytes(pe.get_data(target, 4), "little")
            out.append((name, "0x%x" % (ins.address - base), "0x%x" % target,
                        tsec.Name.rstrip(b"\0").decode(), "yes" if writable else "no", "0x%08X" % holds))
    return out


def main():
    rows = []
    for name in sorted(os.listdir(os.path.join(TD, "bin"))):
        if name.startswith("x86asm_") and name.endswith(".sys"):
            rows += rows_of(name)
    text = "binary\tcall_rva\tglobal_rva\tsection\twritable\tholds\n" + "".join("\t".join(r) + "\n" for r in rows)
    if "--check" in sys.argv:
        if open(OUT).read() != text:
            sys.exit("differs: " + OUT)
        print("address_tags.tsv: up to date")
    else:
        open(OUT, "w").write(text)
        print("wrote", OUT)


if __name__ == "__main__":
    main()
