#!/usr/bin/env python3
"""pefix.py - small in-place edits of PE images for the fixture build (stdlib only).

  pefix.py IMAGE [--discardable SECTION]...

Sets IMAGE_SCN_MEM_DISCARDABLE (0x02000000) on the named sections (GNU ld has
no way to ask for it), then recomputes OptionalHeader.CheckSum (lld-link 14
writes 0). The result depends only on the input bytes.
"""
import struct
import sys

IMAGE_SCN_MEM_DISCARDABLE = 0x02000000


def pe_checksum(data, checksum_off):
    total = 0
    n = len(data)
    padded = data + b"\0" * (n & 1)
    for i in range(0, len(padded), 2):
        if checksum_off <= i < checksum_off + 4:
            continue
        total += padded[i] | (padded[i + 1] << 8)
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (total + n) & 0xFFFFFFFF


def main(argv):
    path = argv[1]
    discard = []
    i = 2
    while i < len(argv):
        if argv[i] == "--discardable":
            discard.append(argv[i + 1].encode())
            i += 2
        else:
            sys.exit("pefix.py: unknown argument " + argv[i])
    data = bytearray(open(path, "rb").read())
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    if data[e_lfanew:e_lfanew + 4] != b"PE\0\0":
        sys.exit("pefix.py: not a PE image: " + path)
    nsect, = struct.unpack_from("<H", data, e_lfanew + 6)
    opt_size, = struct.unpack_from("<H", data, e_lfanew + 20)
    opt = e_lfanew + 24
    sect = opt + opt_size
    found = set()
    for k in range(nsect):
        off = sect + 40 * k
        name = bytes(data[off:off + 8]).rstrip(b"\0")
        if name in discard:
            flags, = struct.unpack_from("<I", data, off + 36)
            struct.pack_into("<I", data, off + 36, flags | IMAGE_SCN_MEM_DISCARDABLE)
            found.add(name)
    missing = set(discard) - found
    if missing:
        sys.exit("pefix.py: no section %s in %s" % (sorted(missing), path))
    checksum_off = opt + 64
    struct.pack_into("<I", data, checksum_off, 0)
    struct.pack_into("<I", data, checksum_off, pe_checksum(bytes(data), checksum_off))
    open(path, "wb").write(data)


if __name__ == "__main__":
    main(sys.argv)
