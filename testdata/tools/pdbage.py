#!/usr/bin/env python3
"""pdbage.py - copy a PDB (MSF 7.00) and rewrite its age.

Usage: pdbage.py IN.pdb OUT.pdb AGE

The age is stored twice: in the PDB information stream (stream 1, offset 8: Version, Signature,
Age, GUID) and in the DBI stream header (stream 3, offset 8: VersionSignature, VersionHeader,
Age). Both are rewritten, so the copy looks like the same build's PDB after a later write
(same GUID, another age). Layout: LLVM's "The MSF File Format", "The PDB Info Stream" and
"The DBI Stream" documents.
"""
import struct
import sys

MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0"


def main():
    src, dst, age = sys.argv[1], sys.argv[2], int(sys.argv[3], 0)
    data = bytearray(open(src, "rb").read())
    if data[:32] != MAGIC:
        raise SystemExit("%s: not an MSF 7.00 file" % src)
    bs, _fpm, nblocks, dir_bytes, _unk, map_addr = struct.unpack_from("<6I", data, 32)
    if nblocks * bs != len(data):
        raise SystemExit("%s: %d blocks of %d bytes, but the file has %d bytes" % (src, nblocks, bs, len(data)))
    ndir = (dir_bytes + bs - 1) // bs
    dir_blocks = struct.unpack_from("<%dI" % ndir, data, map_addr * bs)
    directory = b"".join(bytes(data[b * bs:(b + 1) * bs]) for b in dir_blocks)[:dir_bytes]
    nstreams = struct.unpack_from("<I", directory, 0)[0]
    sizes = struct.unpack_from("<%dI" % nstreams, directory, 4)
    pos = 4 + 4 * nstreams
    blocks = []
    for size in sizes:
        n = 0 if size == 0xFFFFFFFF else (size + bs - 1) // bs
        blocks.append(struct.unpack_from("<%dI" % n, directory, pos))
        pos += 4 * n

    def patch(stream, offset):
        blk = blocks[stream][offset // bs]
        struct.pack_into("<I", data, blk * bs + offset % bs, age)

    patch(1, 8)
    patch(3, 8)
    open(dst, "wb").write(bytes(data))


if __name__ == "__main__":
    main()
