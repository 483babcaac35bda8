#!/usr/bin/env python3
"""make_ca.py - the test PKI that signs drvaudit's signed fixtures (test-only keys, committed).

    python3 testdata/sign/make_ca.py            rebuild the certificates from the committed keys
    python3 testdata/sign/make_ca.py --new-keys make new RSA keys first (changes every fixture)

Writes, in testdata/sign/pki/:
  root.key, root.pem   "drvaudit Test Root CA"            self-signed, CA, 2020-01-01..2040-01-01
  leaf.key, leaf.pem   "drvaudit Test Driver Signer"      code signing, 2020-01-01..2030-01-01
  old.key,  old.pem    "drvaudit Expired Driver Signer"   code signing, 2020-01-01..2021-01-01
  tsa.key,  tsa.pem    "drvaudit Test Timestamp Authority" time stamping (critical), 2020..2040
Certificates are deterministic given the keys (fixed serials, dates; RSA PKCS#1 v1.5 SHA-256),
so this script re-creates them byte for byte. Needs python3-cryptography (Debian package).
These keys protect nothing: they exist only to sign test fixtures.
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pki")
UTC = datetime.timezone.utc


def key(name, new):
    path = os.path.join(PKI, name + ".key")
    if new or not os.path.exists(path):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(path, "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()))
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drvaudit test fixtures"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(subject_key, subject, issuer_key, issuer, serial, start, end, ca, eku=None, eku_critical=False):
    b = (x509.CertificateBuilder()
         .subject_name(subject).issuer_name(issuer)
         .public_key(subject_key.public_key())
         .serial_number(serial)
         .not_valid_before(datetime.datetime(*start, tzinfo=UTC))
         .not_valid_after(datetime.datetime(*end, tzinfo=UTC))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                        critical=False))
    if not ca or subject != issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    return b.sign(issuer_key, hashes.SHA256())


def main():
    new = "--new-keys" in sys.argv
    os.makedirs(PKI, exist_ok=True)
    root_k, leaf_k, old_k, tsa_k = (key(n, new) for n in ("root", "leaf", "old", "tsa"))
    root_n = name("drvaudit Test Root CA")
    out = {
        "root": cert(root_k, root_n, root_k, root_n, 0x1001, (2020, 1, 1), (2040, 1, 1), True),
        "leaf": cert(leaf_k, name("drvaudit Test Driver Signer"), root_k, root_n, 0x2002,
                     (2020, 1, 1), (2030, 1, 1), False, [ExtendedKeyUsageOID.CODE_SIGNING]),
        "old": cert(old_k, name("drvaudit Expired Driver Signer"), root_k, root_n, 0x2003,
                    (2020, 1, 1), (2021, 1, 1), False, [ExtendedKeyUsageOID.CODE_SIGNING]),
        "tsa": cert(tsa_k, name("drvaudit Test Timestamp Authority"), root_k, root_n, 0x3003,
                    (2020, 1, 1), (2040, 1, 1), False, [ExtendedKeyUsageOID.TIME_STAMPING], True),
    }
    for n, c in out.items():
        with open(os.path.join(PKI, n + ".pem"), "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.PEM))
    print("make_ca.py: wrote", ", ".join(n + ".pem" for n in out), "in", PKI)


if __name__ == "__main__":
    main()
