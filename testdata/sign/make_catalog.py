#!/usr/bin/env python3
"""make_catalog.py OUT.cat FILE[=NAME]... - an unsigned catalog (a CTL in a SignedData).

Builds the Certificate Trust List of a catalog file in the second member form
(subjectAlgorithm 1.3.6.1.4.1.311.12.1.3, what makecat writes for CatalogVersion=2 /
HashAlgorithms=SHA256): one member per FILE, tagged by its SHA-256 hash (raw bytes), with
  - SpcIndirectDataContent (1.3.6.1.4.1.311.2.1.4): for a PE image the Authenticode SHA-256
    (data type SpcPeImageData 1.3.6.1.4.1.311.2.1.15), for any other file the SHA-256 of the
    whole file (data type 1.3.6.1.4.1.311.2.1.25);
  - name/value attributes (CAT_NAMEVALUE 1.3.6.1.4.1.311.12.2.1) File=NAME and OSAttr=2:10.0;
and the catalog attributes OS=_v100_X64 and HWID1=root\\drvaudit_fixture as CTL extensions,
inside a PKCS#7 SignedData with no signer, for `osslsigncode sign` to sign. Layout as
Microsoft's CTL_INFO (wincrypt.h) and the catalogs in ../shared/corpus/packages. The
Authenticode digest of a PE member is computed here, independently of drvaudit, as the
Authenticode PE specification describes (CheckSum and the certificate-table entry skipped,
the file padded to 8 bytes); `osslsigncode verify -catalog` confirms it (build_signed.sh).
Deterministic: fixed list identifier and time. stdlib only.
"""
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from der import SHA256, bmp, ctx, integer, octets, oid, seq, set_of, tlv  # noqa: E402


def authenticode_sha256(pe):
    """SHA-256 Authenticode digest of an unsigned (or signed) file-layout PE."""
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    opt = lfanew + 24
    magic = struct.unpack_from("<H", pe, opt)[0]
    checksum = opt + 64
    entry = opt + (96 if magic == 0x10B else 112) + 4 * 8
    off, size = struct.unpack_from("<II", pe, entry)
    end = off if off else len(pe)
    data = pe[:checksum] + pe[checksum + 4:entry] + pe[entry + 8:end]
    data += b"\0" * ((8 - end % 8) % 8)
    return hashlib.sha256(data).digest()


def name_value(name, value, flags=0x10010001):
    return seq(bmp(name), integer(flags), octets((value + "\0").encode("utf-16-le")))


def attribute(kind, value):
    return seq(oid(kind), set_of(value))


def member(path, name):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"MZ":
        digest = authenticode_sha256(data)
        # SpcPeImageData { flags BIT STRING, file [0] SpcLink { file [2] SpcString { [0] "" } } }
        spc = seq(oid("1.3.6.1.4.1.311.2.1.15"),
                  seq(tlv(0x03, b"\x00"), ctx(0, ctx(2, tlv(0x80, b"")))))
    else:
        digest = hashlib.sha256(data).digest()
        spc = seq(oid("1.3.6.1.4.1.311.2.1.25"), ctx(2, tlv(0x80, b"")))
    indirect = seq(spc, seq(SHA256, octets(digest)))
    attrs = set_of(attribute("1.3.6.1.4.1.311.2.1.4", indirect),
                   attribute("1.3.6.1.4.1.311.12.2.1", name_value("File", name.lower())),
                   attribute("1.3.6.1.4.1.311.12.2.1", name_value("OSAttr", "2:10.0")))
    return digest, seq(octets(digest), attrs)


def main():
    out, files = sys.argv[1], sys.argv[2:]
    members = []
    for spec in files:
        path, _, name = spec.partition("=")
        members.append(member(path, name or os.path.basename(path)))
    members.sort()
    ext = lambda n, v: seq(oid("1.3.6.1.4.1.311.12.2.1"), octets(name_value(n, v)))  # noqa: E731
    ctl = seq(seq(oid("1.3.6.1.4.1.311.12.1.1")),
              octets(bytes.fromhex("d7a0d6f1c3a24e5b9a4d2f60c1e8b735")),
              tlv(0x17, b"200101000000Z"),
              seq(oid("1.3.6.1.4.1.311.12.1.3"), b"\x05\x00"),
              seq(*[m for _, m in members]),
              ctx(0, seq(ext("HWID1", "root\\drvaudit_fixture"), ext("OS", "_v100_X64"))))
    sd = seq(integer(1), set_of(SHA256), seq(oid("1.3.6.1.4.1.311.10.1"), ctx(0, ctl)), tlv(0x31, b""))
    with open(out, "wb") as f:
        f.write(seq(oid("1.2.840.113549.1.7.2"), ctx(0, sd)))


if __name__ == "__main__":
    main()
