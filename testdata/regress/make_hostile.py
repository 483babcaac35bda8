#!/usr/bin/env python3
"""Builds the hostile archives of testdata/regress/ from the structures the issues describe.

Every file is written from its structure (MS-CAB, PKWARE APPNOTE), byte for byte reproducibly
(stdlib only: struct, zlib), never copied from a fuzzer's output or an issue's base64:

cab/issue18-empty-folder.cab   issue 18: 270 bytes; one MSZIP folder that declares zero CFDATA
                               blocks (coffCabStart 0x1d00009b), three CFFILE entries in it: a
                               damaged name ending `.inf` and drivers\\amd64\\clean.sys (0x1b7e
                               bytes at 0x283) and drivers\\amd64\\untagged.sys (0x1db9 bytes at
                               0x1e01); then 107 bytes that no field points at (the end of
                               pkg.cab's compressed data; the issue's file differs only in the
                               first 6 of them). cab 0.6.0 panics seeking to either
                               driver (folder.rs:134, mdsteele/rust-cab issue 41).
cab/issue18-two-folders.cab    the same defect beside a sound folder: folder 0 holds clean.sys
                               (one MSZIP block), folder 1 declares no block and holds
                               untagged.sys. The first member is audited, the second is named.
cab/offset-past-folder.cab     one stored block of 16 bytes; a driver that starts at offset 64
                               of the folder (the same panic by the other path: the seek runs past
                               the last block).
cab/stored-size-mismatch.cab   a stored (uncompressed) folder whose block holds 8 bytes but claims
                               4096: cab 0.6.0 would index past the block.
cab/overlap-names.cab          one folder with clean.sys, and 40 more CFFILE entries naming the
                               same bytes of the folder (20 under other names, 20 repeating a name).
pe_file/wrapper-callers.sys    x64: a wrapper (ExAllocatePoolWithTag with the tag its caller passes in r8,
                               a tail jump through the IAT) and one 256 KiB caller function (its
                               .pdata entry) of 23,829 `mov r8d, imm32; call wrapper` pairs in one
                               basic block: each caller was stepped from the block's start again,
                               quadratic (4.4 s release), now linear (0.3 s).
pe_file/arm64-wrapper-callers.sys  the same on ARM64: 32,763 `movz w2, #imm16; bl wrapper` pairs in
                               one 256 KiB function; each caller was stepped from its stretch's
                               start after a scan of the whole function, quadratic (60 s in a
                               release build), now linear (0.4 s).
pe_file/imports-overlapping-descriptors.sys  one sound descriptor (ntoskrnl.exe!ExAllocatePool),
                               then 1,022 descriptors sharing one 16,383-entry name table in .text;
                               each entry names one 5,000-byte function name, each descriptor one
                               300-byte DLL name, neither terminated within the parser's bounds
                               (4,096 and 255 bytes): 16.7 million imports, each copying a name
                               that ran to the end of its section (out of memory; found by the
                               pe_file target), now 65,536 imports and one notice.
pdb/named-stream-past-buffer.pdb  debug/untagged_clang_x64_O2.pdb with the first entry of its
                               information stream's named-stream map (MSF stream 1: the 28-byte
                               header, the name buffer's size and bytes, the hash table's size,
                               capacity and bit vectors, then (name offset, stream) pairs) moved
                               0x100 bytes past the name buffer: pdb2 0.10.2 sliced the buffer
                               there unchecked and panicked (pdbi.rs:140), reached through
                               pdb-addr2line's `/names` lookup (found by the pdb target in CI).
zip/issue19-overlap-200.zip    issue 19: 29.6 KB (the issue's was 27 KB); one 16 MiB deflate member (clean.sys
                               followed by zeros) and 200 central-directory entries, all pointing
                               at its local header (bomb/0000.sys .. bomb/0199.sys).

Usage: python3 testdata/regress/make_hostile.py [OUTDIR]   (default: the script's folder)
"""
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.dirname(HERE)
OUT = sys.argv[1] if len(sys.argv) > 1 else HERE

CLEAN = open(os.path.join(TESTDATA, "bin", "clean_gcc_x64_O2.sys"), "rb").read()
PKG_CAB = open(os.path.join(TESTDATA, "packages", "pkg.cab"), "rb").read()

# MS-DOS date and time fields of 2020-01-01 00:00 (as pkg.cab's entries carry).
DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1
DOS_TIME = 0
ATTR_ARCH = 0x20


def write(rel, data):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return c.compress(data) + c.flush()


# ---------------------------------------------------------------------------------------------
# Cabinets ([MS-CAB] 2.1 CFHEADER, 2.2 CFFOLDER, 2.3 CFFILE, 2.4 CFDATA).

def cfheader(cb_cabinet, coff_files, n_folders, n_files):
    return struct.pack("<4sIIIIIBBHHHHH", b"MSCF", 0, cb_cabinet, 0, coff_files, 0,
                       3, 1, n_folders, n_files, 0, 0, 0)


def cffolder(coff_cab_start, n_data, compression):
    return struct.pack("<IHH", coff_cab_start, n_data, compression)


def cffile(size, offset, folder, name, date=DOS_DATE, time=DOS_TIME, attribs=ATTR_ARCH):
    return struct.pack("<IIHHHH", size, offset, folder, date, time, attribs) + name + b"\0"


def cfdata(payload, uncompressed):
    return struct.pack("<IHH", 0, len(payload), uncompressed) + payload


def mszip_block(data):
    assert len(data) <= 0x8000
    return cfdata(b"CK" + raw_deflate(data), len(data))


def cabinet(folders, files, data):
    """folders: [(n_data, compression, data_key)], files: [cffile bytes], data: {key: bytes}.
    Folder data is laid out after the file entries, in folder order."""
    head = 36 + 8 * len(folders)
    files_blob = b"".join(files)
    at = head + len(files_blob)
    starts, blobs = [], []
    for n_data, comp, key in folders:
        starts.append(at if key is not None else 0)
        if key is not None:
            blobs.append(data[key])
            at += len(data[key])
    total = at
    out = cfheader(total, head, len(folders), len(files))
    for (n_data, comp, key), start in zip(folders, starts):
        out += cffolder(start, n_data, comp)
    return out + files_blob + b"".join(blobs)


# issue 18, as the issue describes it: the header of pkg.cab (cbCabinet 3167, coffFiles 44,
# version 1.3, one folder, three files), a folder of type MSZIP whose coffCabStart was damaged to
# 0x1d00009b and which declares no data block, three file entries, and a tail no field reaches.
damaged_name = b"\x20\xff[\xfa\x99\x96\x87\x8b\x8a\x8d\x9a.sys.inf"
issue = cfheader(3167, 44, 1, 3) + cffolder(0x1D00009B, 0, 1)
issue += cffile(0x02830001, 0, 0, damaged_name, date=0, time=0x5021, attribs=0)
issue += cffile(0x1B7E, 0x283, 0, b"drivers\\amd64\\clean.sys", date=0x5021, time=0)
issue += cffile(0x1DB9, 0x1E01, 0, b"drivers\\amd64\\untagged.sys", date=0x5021, time=0)
issue += PKG_CAB[-(270 - len(issue)):]
assert len(issue) == 270, len(issue)
write("cab/issue18-empty-folder.cab", issue)

UNTAGGED = open(os.path.join(TESTDATA, "bin", "untagged_gcc_x64_O2.sys"), "rb").read()
write("cab/issue18-two-folders.cab", cabinet(
    folders=[(1, 1, "clean"), (0, 1, None)],
    files=[cffile(len(CLEAN), 0, 0, b"drivers\\amd64\\clean.sys"),
           cffile(len(UNTAGGED), 0, 1, b"drivers\\amd64\\untagged.sys")],
    data={"clean": mszip_block(CLEAN)}))

write("cab/offset-past-folder.cab", cabinet(
    folders=[(1, 0, "d")],
    files=[cffile(16, 64, 0, b"late.sys")],
    data={"d": cfdata(b"0123456789abcdef", 16)}))

write("cab/stored-size-mismatch.cab", cabinet(
    folders=[(1, 0, "d")],
    files=[cffile(16, 1024, 0, b"short.sys")],
    data={"d": cfdata(b"01234567", 4096)}))

overlap_files = [cffile(len(CLEAN), 0, 0, b"clean.sys")]
overlap_files += [cffile(len(CLEAN) - 0x100, 0x100, 0, b"copy%02d.sys" % i) for i in range(20)]
overlap_files += [cffile(len(CLEAN), 0, 0, b"clean.sys") for _ in range(20)]
write("cab/overlap-names.cab", cabinet(
    folders=[(1, 1, "clean")], files=overlap_files, data={"clean": mszip_block(CLEAN)}))

# ---------------------------------------------------------------------------------------------
# Zip (APPNOTE 4.3.7 local file header, 4.3.12 central directory header, 4.3.16 end record).

def zip_overlapping(member, names):
    data = raw_deflate(member)
    crc = zlib.crc32(member) & 0xFFFFFFFF
    first = names[0].encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x5021, crc, len(data),
                        len(member), len(first), 0) + first + data
    central = b""
    for name in names:
        n = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x5021, crc,
                               len(data), len(member), len(n), 0, 0, 0, 0, 0, 0) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(names), len(names), len(central),
                      len(local), 0)
    return local + central + end


# ---------------------------------------------------------------------------------------------
# PE32+ images built from scratch (PE Format: DOS stub, COFF header, optional header, data
# directories, section table; the import directory: descriptors, INT/IAT, hint/name entries).

def align(n, a):
    return (n + a - 1) // a * a


def pe64(code, imports, pdata, machine=0x8664):
    """A PE32+ native image: .text = code at 0x1000, .rdata = the imports of ntoskrnl.exe,
    .pdata = pdata, or pdata(its RVA) when it is a function (ARM64 entries point at .xdata)."""
    rdata_rva = 0x1000 + align(len(code), 0x1000)
    n = len(imports)
    iat, int_ = 0, (n + 1) * 8
    desc = int_ + (n + 1) * 8
    dll = desc + 40
    names = dll + 16
    rdata = bytearray(names + sum(4 + len(x) for x in imports) + 16)
    at = names
    for i, name in enumerate(imports):
        struct.pack_into("<Q", rdata, iat + 8 * i, rdata_rva + at)
        struct.pack_into("<Q", rdata, int_ + 8 * i, rdata_rva + at)
        rdata[at + 2:at + 2 + len(name)] = name.encode()
        at += 4 + len(name)
    struct.pack_into("<IIIII", rdata, desc, rdata_rva + int_, 0, 0, rdata_rva + dll, rdata_rva + iat)
    rdata[dll:dll + 12] = b"ntoskrnl.exe"
    pdata_rva = rdata_rva + align(len(rdata), 0x1000)
    if callable(pdata):
        pdata = pdata(pdata_rva)
    sections = [(b".text", code, 0x60000020), (b".rdata", bytes(rdata), 0x40000040),
                (b".pdata", pdata, 0x40000040)]
    dirs = {1: (rdata_rva + desc, 40), 3: (pdata_rva, len(pdata)), 12: (rdata_rva + iat, (n + 1) * 8)}
    lfanew, opt = 0x80, 0xF0
    table = lfanew + 24 + opt
    headers = align(table + 40 * len(sections), 0x200)
    rva, raw, placed = 0x1000, headers, []
    for _, data, _ in sections:
        placed.append((rva, raw, align(len(data), 0x200)))
        rva += align(len(data), 0x1000)
        raw += align(len(data), 0x200)
    f = bytearray(raw)
    f[0:2] = b"MZ"
    struct.pack_into("<I", f, 0x3C, lfanew)
    f[lfanew:lfanew + 4] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", f, lfanew + 4, machine, len(sections), 0, 0, 0, opt, 0x22)
    o = lfanew + 24
    struct.pack_into("<H", f, o, 0x20B)
    struct.pack_into("<II", f, o + 16, 0x1000, 0x1000)          # AddressOfEntryPoint, BaseOfCode
    struct.pack_into("<QII", f, o + 24, 0x140000000, 0x1000, 0x200)
    struct.pack_into("<HH", f, o + 40, 10, 0)                   # OS version
    struct.pack_into("<H", f, o + 48, 10)                       # subsystem version
    struct.pack_into("<II", f, o + 56, rva, headers)            # SizeOfImage, SizeOfHeaders
    struct.pack_into("<HH", f, o + 68, 1, 0x160)                # NATIVE; DllCharacteristics
    struct.pack_into("<I", f, o + 108, 16)
    for i, (r, size) in dirs.items():
        struct.pack_into("<II", f, o + 112 + 8 * i, r, size)
    for i, ((name, data, chars), (r, p, rs)) in enumerate(zip(sections, placed)):
        h = table + 40 * i
        f[h:h + len(name)] = name
        struct.pack_into("<IIII", f, h + 8, align(len(data), 0x1000), r, rs, p)
        struct.pack_into("<I", f, h + 36, chars)
        f[p:p + len(data)] = data
    return bytes(f), rdata_rva


def wrapper_callers(size):
    def code(iat):
        c = bytearray(b"\xb9\x00\x02\x00\x00\xba\x00\x01\x00\x00")   # mov ecx, 0x200; mov edx, 0x100
        c += b"\xff\x25" + struct.pack("<i", iat - (0x1000 + len(c) + 6))  # jmp [rip+IAT]
        c += b"\xcc" * (16 - len(c))
        while len(c) + 12 <= size:
            c += b"\x41\xb8" + struct.pack("<I", 0x41414141 + len(c))       # mov r8d, tag
            c += b"\xe8" + struct.pack("<i", 0x1000 - (0x1000 + len(c) + 5))  # call wrapper
        return bytes(c + b"\xc3")
    _, rdata_rva = pe64(code(0), ["ExAllocatePoolWithTag"], bytes(24))
    body = code(rdata_rva)
    pdata = struct.pack("<III", 0x1000, 0x1010, 0) + struct.pack("<III", 0x1010, 0x1000 + len(body), 0)
    image, again = pe64(body, ["ExAllocatePoolWithTag"], pdata)
    assert again == rdata_rva
    return image


def arm64_wrapper_callers(size):
    """The same on ARM64 (Arm ARM C6: MOVZ, BL, ADRP, LDR immediate, BR): the wrapper sets
    w0/w1 and tail-jumps through the IAT (adrp x16; ldr x16, [x16, #off]; br x16); the caller
    is `movz w2, #imm16; bl wrapper` pairs. .pdata entries point at unpacked .xdata records
    whose first word holds the function length (ARM64 exception handling, Microsoft Learn)."""
    def code(iat):
        w = [0x52804000, 0x52802001]                       # movz w0, #0x200; movz w1, #0x100
        page = ((iat & ~0xFFF) - ((0x1000 + 4 * len(w)) & ~0xFFF)) >> 12
        w.append(0x90000000 | (page & 3) << 29 | ((page >> 2) & 0x7FFFF) << 5 | 16)
        w.append(0xF9400000 | ((iat & 0xFFF) // 8) << 10 | 16 << 5 | 16)
        w.append(0xD61F0200)                               # br x16
        w += [0xD503201F] * (-len(w) % 4)                  # nop
        wrapper = len(w)
        n = 0
        while 4 * (len(w) + 3) <= size:
            w.append(0x52800002 | ((0x4141 + n) & 0xFFFF) << 5)       # movz w2, #imm
            w.append(0x94000000 | ((0x1000 - (0x1000 + 4 * len(w))) // 4) & 0x3FFFFFF)  # bl
            n += 1
        w.append(0xD65F03C0)                               # ret
        return struct.pack("<%dI" % len(w), *w), wrapper
    def pdata(words, wrapper):
        def at(rva):
            return (struct.pack("<IIII", 0x1000, rva + 16, 0x1000 + 4 * wrapper, rva + 20)
                    + struct.pack("<II", wrapper, words - wrapper))
        return at
    probe, wrapper = code(0)
    _, rdata_rva = pe64(probe, ["ExAllocatePoolWithTag"], pdata(len(probe) // 4, wrapper), 0xAA64)
    body, _ = code(rdata_rva)
    image, again = pe64(body, ["ExAllocatePoolWithTag"], pdata(len(body) // 4, wrapper), 0xAA64)
    assert again == rdata_rva
    return image


def imports_overlapping():
    """One sound descriptor (ntoskrnl.exe!ExAllocatePool), then 1,022 descriptors that all
    share one name table of 16,383 entries; every entry names the same 5,000-byte function name
    and every descriptor the same 300-byte DLL name, neither terminated within its bound. The
    tables sit in .text after a `ret` at the entry point; directory 1 is moved to them."""
    text = 0x1000
    name = b"\0\0" + b"A" * 5000 + b"\0"
    dll = b"B" * 300 + b"\0"
    head = b"\xc3" + bytes(15)
    name_at = len(head)
    dll_at = name_at + len(name)
    int_at = align(dll_at + len(dll), 8)
    desc_at = int_at + 16384 * 8
    def blob(sound):
        b = bytearray(desc_at + 1024 * 20)
        b[:len(head)] = head
        b[name_at:name_at + len(name)] = name
        b[dll_at:dll_at + len(dll)] = dll
        for i in range(16383):
            struct.pack_into("<Q", b, int_at + 8 * i, text + name_at)
        struct.pack_into("<IIIII", b, desc_at, *sound)
        for i in range(1, 1023):
            struct.pack_into("<IIIII", b, desc_at + 20 * i, text + int_at, 0, 0, text + dll_at,
                             text + int_at)
        return bytes(b)
    _, rdata_rva = pe64(blob((0,) * 5), ["ExAllocatePool"], bytes(12))
    # pe64's .rdata with one import: IAT at 0, INT at 16, the descriptor at 32, the DLL at 72.
    sound = (rdata_rva + 16, 0, 0, rdata_rva + 72, rdata_rva)
    image, again = pe64(blob(sound), ["ExAllocatePool"], bytes(12))
    assert again == rdata_rva
    image = bytearray(image)
    struct.pack_into("<II", image, 0x80 + 24 + 112 + 8, text + desc_at, 1024 * 20)
    return bytes(image)


write("pe_file/wrapper-callers.sys", wrapper_callers(0x40000))
write("pe_file/imports-overlapping-descriptors.sys", imports_overlapping())
write("pe_file/arm64-wrapper-callers.sys", arm64_wrapper_callers(0x40000))

bomb = CLEAN + bytes((16 << 20) - len(CLEAN))
write("zip/issue19-overlap-200.zip",
      zip_overlapping(bomb, ["bomb/%04d.sys" % i for i in range(200)]))


def pdb_named_stream_past_buffer(pdb):
    """The PDB with its first named stream's name offset moved past the name buffer."""
    pdb = bytearray(pdb)
    u32 = lambda b, o: struct.unpack_from("<I", b, o)[0]
    block, dir_bytes, dir_map = u32(pdb, 32), u32(pdb, 44), u32(pdb, 52)
    dir_blocks = [u32(pdb, dir_map * block + 4 * i) for i in range(-(-dir_bytes // block))]
    directory = b"".join(pdb[b * block:(b + 1) * block] for b in dir_blocks)[:dir_bytes]
    streams = u32(directory, 0)
    sizes = [u32(directory, 4 + 4 * i) for i in range(streams)]
    at = 4 + 4 * streams + 4 * -(-sizes[0] // block)    # stream 1's block list
    info_blocks = [u32(directory, at + 4 * i) for i in range(-(-sizes[1] // block))]

    def file_offset(stream_offset):
        return info_blocks[stream_offset // block] * block + stream_offset % block

    def word(stream_offset):
        return u32(pdb, file_offset(stream_offset))

    names_size = word(28)
    at = 32 + names_size
    count, at = word(at), at + 8                        # size, capacity
    for _ in range(2):                                  # present and deleted bit vectors
        at += 4 + 4 * word(at)
    assert count > 0, "the fixture PDB has named streams (/names, /LinkInfo, ...)"
    struct.pack_into("<I", pdb, file_offset(at), names_size + 0x100)
    return bytes(pdb)


write("pdb/named-stream-past-buffer.pdb", pdb_named_stream_past_buffer(
    open(os.path.join(TESTDATA, "debug", "untagged_clang_x64_O2.pdb"), "rb").read()))
