#!/usr/bin/env python3
"""Fills the working corpora (fuzz/corpus/<target>/, git-ignored) with seeds derived from the
project's fixtures, and with --shared from ../shared/corpus (never committed).

Derived seeds (stdlib only):
  pe_loaded        every fixture (and corpus) driver mapped into loaded layout: headers at 0,
                   each section's raw data at its VirtualAddress, SizeOfImage bytes (as a
                   crash dump's carver produces them)
  pkcs7            the PKCS#7 SignedData of every WIN_CERTIFICATE in the signed fixtures, the
                   catalog itself, and the test PKI's certificates (DER)
With --shared, also: pe_file / authenticode_pe (corpus and vulnerable drivers), catalog (the
SoftEther .cat files), pkcs7 (their signatures).

Usage: python3 fuzz/tools/seeds.py [--shared]
"""
import base64
import glob
import hashlib
import os
import struct
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
        img = loaded(open(p, "rb").read())
        if img is not None:
            add("pe_loaded", img, os.path.basename(p))
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
    for t in sorted(added):
        print("seeds.py: %s: %d new seed(s) in fuzz/corpus/%s" % (t, added[t], t))


main()
