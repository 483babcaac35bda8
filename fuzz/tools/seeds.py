#!/usr/bin/env python3
"""Fills the working corpora (fuzz/corpus/<target>/, git-ignored) with seeds derived from the
project's fixtures, and with --shared from ../shared/corpus (never committed).

Derived seeds (stdlib only):
  pe_loaded        every fixture (and corpus) driver mapped into loaded layout: headers at 0,
                   each section's raw data at its VirtualAddress, SizeOfImage bytes (as a
                   crash dump's carver produces them)
  identity         every fixture driver with a .rsrc section added holding a VS_VERSIONINFO
                   (fixed file info, a StringFileInfo table, VarFileInfo), in both layouts
  pkcs7            the PKCS#7 SignedData of every WIN_CERTIFICATE in the signed fixtures, the
                   catalog itself, and the test PKI's certificates (DER)
  dump             the project's own dump writer's dumps (an ignored test, tests/it/fuzz_seeds.rs)
With --shared, also: pe_file / authenticode_pe / identity (corpus and vulnerable drivers),
catalog (the SoftEther .cat files), pkcs7 (their signatures), dump (the real sample dumps), pdb
(the System Informer PDBs), dwarf (Wine's mingw drivers), inf (the SoftEther INFs), and the
LOLDrivers and Microsoft block lists of ../shared/reference/data.

Usage: python3 fuzz/tools/seeds.py [--shared]
"""
import base64
import glob
import hashlib
import os
import struct
import subprocess
import sys

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(FUZZ)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
MAX_LOADED = 64 << 20


def put(target, data, hint):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "%s-%s" % (hint, hashlib.sha1(data).hexdigest()[:12])
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        return 1
    return 0


def pe_headers(b):
    """(e_lfanew, number of sections, size of optional header, optional header offset)."""
    if len(b) < 0x40 or b[:2] != b"MZ":
        return None
    pe = struct.unpack_from("<I", b, 0x3C)[0]
    if pe + 24 > len(b) or b[pe:pe + 4] != b"PE\0\0":
        return None
    nsec, = struct.unpack_from("<H", b, pe + 6)
    opt_size, = struct.unpack_from("<H", b, pe + 20)
    return pe, nsec, opt_size, pe + 24


def loaded(b):
    h = pe_headers(b)
    if h is None:
        return None
    pe, nsec, opt_size, opt = h
    if opt + 60 > len(b):
        return None
    size_of_image, size_of_headers = struct.unpack_from("<II", b, opt + 56)
    if size_of_image == 0 or size_of_image > MAX_LOADED:
        return None
    img = bytearray(size_of_image)
    img[:min(size_of_headers, len(b), size_of_image)] = b[:min(size_of_headers, len(b), size_of_image)]
    sec = opt + opt_size
    for i in range(nsec):
        at = sec + 40 * i
        if at + 40 > len(b):
            return None
        vsize, va, rsize, raw = struct.unpack_from("<IIII", b, at + 8)
        n = min(rsize, vsize or rsize, max(0, len(b) - raw), max(0, size_of_image - va))
        img[va:va + n] = b[raw:raw + n]
    return bytes(img)


def signatures(b):
    """The PKCS#7 blobs of a file-layout PE's certificate table."""
    h = pe_headers(b)
    if h is None:
        return []
    pe, nsec, opt_size, opt = h
    magic, = struct.unpack_from("<H", b, opt)
    dirs = opt + (96 if magic == 0x10B else 112)
    if dirs + 8 * 5 > len(b):
        return []
    off, size = struct.unpack_from("<II", b, dirs + 8 * 4)
    out, at, end = [], off, min(off + size, len(b))
    while at + 8 <= end:
        length, rev, typ = struct.unpack_from("<IHH", b, at)
        if length < 8:
            break
        if typ == 2:
            out.append(b[at + 8:at + length])
        at += (length + 7) & ~7
    return out


def align(n, a):
    return (n + a - 1) // a * a


def ver_block(key, value=b"", wtype=1, children=b"", value_len=None):
    """One VS_VERSIONINFO-style block: wLength, wValueLength, wType, key, padding, value,
    padding, children (each child already padded to 4)."""
    k = key.encode("utf-16-le") + b"\0\0"
    head = 6 + len(k)
    body = b"\0" * (align(head, 4) - head) + value
    body += b"\0" * (align(head + len(body), 4) - head - len(body))
    total = head + len(body) + len(children)
    if value_len is None:
        value_len = len(value) // 2 if wtype == 1 else len(value)
    out = struct.pack("<HHH", total, value_len, wtype) + k + body + children
    return out + b"\0" * (align(len(out), 4) - len(out))


def version_resource(strings):
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, 0x000A0000, 0x00010002, 0x000A0000,
                        0x00010002, 0x3F, 0, 0x40004, 3, 7, 0, 0)
    table = b"".join(ver_block(k, v.encode("utf-16-le") + b"\0\0") for k, v in strings)
    sfi = ver_block("StringFileInfo", children=ver_block("040904b0", children=table))
    vfi = ver_block("VarFileInfo", children=ver_block("Translation", struct.pack("<HH", 0x409, 1200), wtype=0))
    return ver_block("VS_VERSION_INFO", fixed, wtype=0, children=sfi + vfi)


def with_version(b):
    """A copy of a file-layout PE with one more section, .rsrc, holding RT_VERSION/1/0x409."""
    h = pe_headers(b)
    if h is None:
        return None
    pe, nsec, opt_size, opt = h
    magic, = struct.unpack_from("<H", b, opt)
    sec_align, file_align = struct.unpack_from("<II", b, opt + 32)
    size_of_image, size_of_headers = struct.unpack_from("<II", b, opt + 56)
    table = opt + opt_size
    if table + 40 * (nsec + 1) > size_of_headers:
        return None
    va = align(size_of_image, sec_align)
    raw = align(len(b), file_align)
    ver = version_resource([("CompanyName", "drvaudit fuzz seeds"), ("FileDescription", "seed"),
                            ("FileVersion", "10.0.1.2"), ("InternalName", "seed"),
                            ("OriginalFilename", "seed.sys"), ("ProductName", "drvaudit"),
                            ("ProductVersion", "10.0.1.2")])
    def directory(entries):
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, len(entries)) + b"".join(
            struct.pack("<II", i, o) for i, o in entries)
    # Three directories (type, name, language), then the data entry, then the data.
    d1 = 0; d2 = 16 + 8; d3 = d2 + 16 + 8; de = d3 + 16 + 8; data = de + 16
    rsrc = directory([(16, 0x80000000 | d2)]) + directory([(1, 0x80000000 | d3)])
    rsrc += directory([(0x409, de)]) + struct.pack("<IIII", va + data, len(ver), 1200, 0) + ver
    rsrc_raw = rsrc + b"\0" * (align(len(rsrc), file_align) - len(rsrc))
    out = bytearray(b) + b"\0" * (raw - len(b)) + rsrc_raw
    struct.pack_into("<8sIIIIIIHHI", out, table + 40 * nsec, b".rsrc", len(rsrc), va,
                     len(rsrc_raw), raw, 0, 0, 0, 0, 0x40000040)
    struct.pack_into("<H", out, pe + 6, nsec + 1)
    struct.pack_into("<I", out, opt + 56, align(va + len(rsrc), sec_align))
    dirs = opt + (96 if magic == 0x10B else 112)
    struct.pack_into("<II", out, dirs + 8 * 2, va, len(rsrc))
    return bytes(out)


def pem_certs(path):
    text = open(path).read()
    out = []
    for part in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = part.split("-----END CERTIFICATE-----")[0]
        out.append(base64.b64decode("".join(body.split())))
    return out


def main():
    added = {}

    def add(target, data, hint):
        added[target] = added.get(target, 0) + put(target, data, hint)

    drivers = sorted(glob.glob(os.path.join(ROOT, "testdata/bin/*.sys")))
    signed = sorted(glob.glob(os.path.join(ROOT, "testdata/signed/*.sys")))
    signed.append(os.path.join(ROOT, "testdata/packages/signed/fixture.sys"))
    cats = [os.path.join(ROOT, "testdata/packages/signed/signed.cat")]
    pems = sorted(glob.glob(os.path.join(ROOT, "testdata/sign/pki/*.pem")))
    if "--shared" in sys.argv:
        if not os.path.isdir(SHARED):
            sys.exit("seeds.py: %s is absent" % SHARED)
        extra = sorted(glob.glob(os.path.join(SHARED, "drivers/*.sys")))
        extra += sorted(glob.glob(os.path.join(SHARED, "vulnerable/*.sys")))
        extra += sorted(glob.glob(os.path.join(SHARED, "packages/**/*.sys"), recursive=True))
        for p in extra:
            b = open(p, "rb").read()
            add("pe_file", b, os.path.basename(p))
            add("authenticode_pe", b, os.path.basename(p))
        drivers += extra
        signed += extra
        cats += sorted(glob.glob(os.path.join(SHARED, "packages/**/*.cat"), recursive=True))
    for p in drivers:
        b = open(p, "rb").read()
        img = loaded(b)
        if img is not None:
            add("pe_loaded", img, os.path.basename(p))
        versioned = with_version(b)
        if versioned is not None:
            add("identity", versioned, os.path.basename(p) + "-version")
            img = loaded(versioned)
            if img is not None:
                add("identity", img, os.path.basename(p) + "-version-loaded")
    for p in signed:
        for i, sig in enumerate(signatures(open(p, "rb").read())):
            add("pkcs7", sig, "%s-sig%d" % (os.path.basename(p), i))
    for p in cats:
        b = open(p, "rb").read()
        add("pkcs7", b, os.path.basename(p))
        add("catalog", b, os.path.basename(p))
    for p in pems:
        for i, der in enumerate(pem_certs(p)):
            add("pkcs7", der, "%s-%d" % (os.path.basename(p), i))
    dumps = os.path.join(FUZZ, "corpus", "dump")
    if not os.path.isdir(dumps) or not os.listdir(dumps):
        # The project's dump writer (tests/it/support/dumpwriter.rs), through an ignored test.
        env = dict(os.environ, DRVAUDIT_FUZZ_SEEDS=dumps)
        subprocess.run(["cargo", "test", "--quiet", "--test", "it", "--", "--ignored",
                        "fuzz_seeds"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        added["dump"] = len(os.listdir(dumps))
    if "--shared" in sys.argv:
        for target, pattern in [
            ("dump", "corpus/dumps/*"),
            ("pdb", "corpus/pdb/*.pdb"),
            ("dwarf", "corpus/drivers/wine8.0-x64-*.sys"),
            ("identity", "corpus/drivers/*.sys"),
            ("identity", "corpus/vulnerable/*.sys"),
            ("inf", "corpus/packages/**/*.inf"),
            ("blocklist_yaml", "reference/data/loldrivers/yaml/0*.yaml"),
            ("blocklist_csv", "reference/data/loldrivers/loldrivers.io/content/api/drivers.csv"),
            ("sipolicy", "reference/data/microsoft/*.xml"),
        ]:
            for p in sorted(glob.glob(os.path.join(os.path.dirname(SHARED), pattern), recursive=True)):
                add(target, open(p, "rb").read(), os.path.basename(p))
    for t in sorted(added):
        print("seeds.py: %s: %d new seed(s) in fuzz/corpus/%s" % (t, added[t], t))


main()
