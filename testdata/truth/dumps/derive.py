#!/usr/bin/env python3
"""Derive the truth about the real sample dumps in ../shared/corpus/dumps, without drvaudit.

Written from the layouts of ../shared/reference/crash-dumps.md (sections 1.1, 1.2, 1.4.1, 1.4.5)
with nothing but `struct`: it shares no code or logic with the Rust reader. It writes

  triage_x64_drivers.tsv, triage_arm64_drivers.tsv
      the TRIAGE_DUMP64 driver list: index, name (the string-pool path), DllBase, SizeOfImage,
      CheckSum, TimeDateStamp. Every driver whose PE header page is held in a data block is
      cross-checked: the header's SizeOfImage, CheckSum and TimeDateStamp must equal the list's
      (an independent second source inside the dump).
  headers.tsv
      per sample: bugcheck code and parameters as stored, the same as ASCII when every byte is
      printable, SystemTime (FILETIME) and its UTC date-time, SystemUpTime (100 ns units), DumpType,
      the pages the run descriptor describes and the pages the file holds after the header, the file
      length and RequiredDumpSpace.

Usage: python3 testdata/truth/dumps/derive.py [--check] [DUMPS_DIR]
  --check  compare with the committed files instead of writing them (exit 1 on a difference).
"""

import datetime
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "..", "..", "..", "..", "shared", "corpus", "dumps")
FILL = 0x45474150  # "PAGE"


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def filetime_utc(ft):
    """FILETIME (100 ns since 1601-01-01 UTC) as ISO 8601 with all seven fractional digits."""
    seconds, ticks = divmod(ft, 10_000_000)
    t = datetime.datetime(1601, 1, 1) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%07dZ" % ticks


def unset64(v):
    return v == (FILL | FILL << 32) or v == 0


def ascii4(v):
    b = struct.pack("<I", v)
    return b.decode() if all(0x20 <= c < 0x7F for c in b) else "-"


def header_row(name, b):
    wide = b[4:8] == b"DU64"
    if wide:
        code, params = u32(b, 0x38), [u64(b, 0x40 + 8 * i) for i in range(4)]
        dump_type, required = u32(b, 0xF98), u64(b, 0xFA0)
        system_time, up_time = u64(b, 0xFA8), u64(b, 0x1030)
        runs_at, header = 0x88, 0x2000
    else:
        code, params = u32(b, 0x28), [u32(b, 0x2C + 4 * i) for i in range(4)]
        dump_type, required = u32(b, 0xF88), u64(b, 0xFA0)
        up_time, system_time = u64(b, 0xFB8), u64(b, 0xFC0)
        runs_at, header = 0x64, 0x1000
    described = "-"
    if dump_type == 1 and u32(b, runs_at) != FILL:
        n = u32(b, runs_at)
        if wide:
            pages = [u64(b, 0x98 + 16 * i + 8) for i in range(n)]
        else:
            pages = [u32(b, 0x6C + 8 * i + 4) for i in range(n)]
        described = "%#x" % sum(pages)
    held = max(0, len(b) - header) // 0x1000 if dump_type == 1 else "-"
    return [
        name,
        "%#x" % code,
        ascii4(code),
        ",".join("%#x" % p for p in params),
        ",".join(ascii4(p & 0xFFFFFFFF) for p in params),
        "-" if unset64(system_time) else "%#x" % system_time,
        "-" if unset64(system_time) else filetime_utc(system_time),
        "-" if unset64(up_time) else str(up_time),
        str(dump_type),
        described,
        held if held == "-" else "%#x" % held,
        "%#x" % len(b),
        "%#x" % required,
    ]


def blocks(b):
    """Triage data blocks {u64 VA; u32 FileOffset; u32 Size} (section 1.4.5)."""
    t = 0x2000
    off, count = u32(b, t + 0x78), u32(b, t + 0x7C)
    out = []
    for i in range(count):
        va, fo, size = struct.unpack_from("<QII", b, off + 16 * i)
        out.append((va, fo, size))
    return out


def read_va(b, blks, va):
    """The bytes a data block holds from `va` to the block's end, or None."""
    for bva, fo, size in blks:
        if bva <= va < bva + size:
            return b[fo + va - bva : fo + size]
    return None


def drivers(b):
    t = 0x2000
    assert b[u32(b, t + 0x08) : u32(b, t + 0x08) + 4] == b"TRGD", "ValidOffset must point at TRGD"
    list_off, count = u32(b, t + 0x30), u32(b, t + 0x34)
    blks = blocks(b)
    rows, checked = [], 0
    for i in range(count):
        e = list_off + 0x90 * i
        name_off = u32(b, e)
        chars = u32(b, name_off)
        name = b[name_off + 4 : name_off + 4 + 2 * chars].decode("utf-16-le")
        base, size = u64(b, e + 0x38), u32(b, e + 0x48)
        checksum, stamp = u32(b, e + 0x80), u32(b, e + 0x88)
        head = read_va(b, blks, base)
        if head is not None and head[:2] == b"MZ":
            pe = u32(head, 0x3C)
            # Data blocks of 0x100 bytes may stop before the optional header: check what is held
            # (TimeDateStamp at PE+8, SizeOfImage at PE+24+56, CheckSum at PE+24+64).
            if len(head) >= pe + 12:
                assert head[pe : pe + 4] == b"PE\0\0", name
                assert u32(head, pe + 8) == stamp, (name, "TimeDateStamp")
                if len(head) >= pe + 24 + 68:
                    assert u32(head, pe + 24 + 56) == size, (name, "SizeOfImage")
                    assert u32(head, pe + 24 + 64) == checksum, (name, "CheckSum")
                checked += 1
        rows.append([str(i), name, "%#x" % base, "%#x" % size, "%#x" % checksum, "%#x" % stamp])
    return rows, checked


def tsv(header, rows):
    return "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv[1:]
    src = args[0] if args else DEFAULT_DIR
    outputs = {}
    rows = []
    for name in sorted(os.listdir(src)):
        if not (name.endswith(".dmp") or name.endswith(".raw")):
            continue
        b = open(os.path.join(src, name), "rb").read()
        rows.append(header_row(name, b))
        if b[4:8] == b"DU64" and u32(b, 0xF98) == 4:
            drv, checked = drivers(b)
            stem = name[: -len(".dmp")]
            outputs[stem + "_drivers.tsv"] = tsv(
                ["index", "name", "base", "size_of_image", "checksum", "time_date_stamp"], drv
            )
            print("%s: %d drivers; %d PE headers held in data blocks agree with the list" % (name, len(drv), checked))
    outputs["headers.tsv"] = tsv(
        [
            "file",
            "bugcheck",
            "bugcheck_ascii",
            "parameters",
            "parameters_ascii",
            "system_time",
            "system_time_utc",
            "system_up_time_100ns",
            "dump_type",
            "pages_described",
            "pages_held",
            "file_len",
            "required_dump_space",
        ],
        rows,
    )
    bad = 0
    for fname, text in sorted(outputs.items()):
        path = os.path.join(HERE, fname)
        if check:
            old = open(path).read() if os.path.exists(path) else None
            if old != text:
                print("DIFFERS: " + fname)
                bad = 1
        else:
            with open(path, "w") as f:
                f.write(text)
            print("wrote " + fname)
    sys.exit(bad)


if __name__ == "__main__":
    main()
