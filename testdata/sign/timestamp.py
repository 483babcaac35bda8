#!/usr/bin/env python3
"""timestamp.py SIGNED.sys TIME OUT.der - an RFC 3161 timestamp for a signed PE, deterministically.

Reads the PKCS#7 SignedData of SIGNED.sys (its certificate table), builds a TimeStampToken
(RFC 3161 section 2.4.2: SignedData over TSTInfo, signed by testdata/sign/pki/tsa.key) whose
messageImprint is the SHA-256 of the primary signer's signature value, with genTime TIME
(YYYYMMDDhhmmssZ) and a fixed serial, adds it as the unauthenticated attribute
1.3.6.1.4.1.311.3.3.1 (where signtool and osslsigncode put RFC 3161 tokens), and writes the
new PKCS#7 DER to OUT.der for `osslsigncode attach-signature`. Deterministic: RSA PKCS#1 v1.5
signatures, no random serial, no clock. (osslsigncode's built-in TSA is not reproducible: it
draws a random serial and stamps the current time into the token.) Needs python3-cryptography.
"""
import hashlib
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from der import SHA256, children, children_first, ctx, integer, octets, oid, seq, set_of, tlv  # noqa: E402

PKI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pki")


def cert_table(pe):
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    opt = lfanew + 24
    magic = struct.unpack_from("<H", pe, opt)[0]
    entry = opt + (96 if magic == 0x10B else 112) + 4 * 8
    off, size = struct.unpack_from("<II", pe, entry)
    length = struct.unpack_from("<I", pe, off)[0]
    return pe[off + 8:off + length]


def load(name):
    with open(os.path.join(PKI, name), "rb") as f:
        data = f.read()
    if name.endswith(".key"):
        return serialization.load_pem_private_key(data, password=None)
    return x509.load_pem_x509_certificate(data)


def token(imprint, gen_time):
    tsa_key, tsa, root = load("tsa.key"), load("tsa.pem"), load("root.pem")
    tst = seq(integer(1), oid("1.3.6.1.4.1.55555.1.1"), seq(SHA256, octets(imprint)),
              integer(0x4242), tlv(0x18, gen_time.encode()))
    attrs = [seq(oid("1.2.840.113549.1.9.3"), set_of(oid("1.2.840.113549.1.9.16.1.4"))),
             seq(oid("1.2.840.113549.1.9.4"), set_of(octets(hashlib.sha256(tst).digest())))]
    signed = set_of(*attrs)
    signature = tsa_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    issuer_serial = seq(tsa.issuer.public_bytes(), integer(tsa.serial_number))
    # The authenticated attributes are sent as [0] IMPLICIT and signed as the SET OF.
    signer = seq(integer(1), issuer_serial, SHA256, b"\xa0" + signed[1:],
                 seq(oid("1.2.840.113549.1.1.1"), b"\x05\x00"), octets(signature))
    der = lambda c: c.public_bytes(serialization.Encoding.DER)  # noqa: E731
    sd = seq(integer(3), set_of(SHA256),
             seq(oid("1.2.840.113549.1.9.16.1.4"), ctx(0, octets(tst))),
             ctx(0, der(tsa) + der(root)), set_of(signer))
    return seq(oid("1.2.840.113549.1.7.2"), ctx(0, sd))


def main():
    src, gen_time, out = sys.argv[1:4]
    with open(src, "rb") as f:
        p7 = cert_table(f.read())
    # The entry is padded to 8 bytes after the SignedData: take the first element only.
    (_, ci, _) = children_first(p7)
    ct, wrapper = children(ci)
    (_, sd, _), = children(wrapper[1])
    sd_items = children(sd)
    (_, si, _), = children(sd_items[-1][1])
    si_items = children(si)
    sig_value = next(c for t, c, _ in si_items if t == 0x04)
    attr = seq(oid("1.3.6.1.4.1.311.3.3.1"), set_of(token(hashlib.sha256(sig_value).digest(), gen_time)))
    new_si = seq(*[w for _, _, w in si_items], ctx(1, attr))
    new_sd = seq(*[w for _, _, w in sd_items[:-1]], set_of(new_si))
    new_p7 = seq(ct[2], ctx(0, new_sd))
    with open(out, "wb") as f:
        f.write(new_p7)


if __name__ == "__main__":
    main()
