#!/usr/bin/env python3
"""signatures.py - the truth about every signature drvaudit is tested on, without drvaudit.

    python3 testdata/truth/signatures.py           write testdata/truth/signatures.tsv and catalogs.tsv
    python3 testdata/truth/signatures.py --check   re-derive and compare with the committed files

Sources of each column:
  digests, digest algorithm, signer/issuer CN, serial, timestamp, nested count:
      `osslsigncode verify -ignore-crl -ignore-cdp -in FILE` (2.9), one "Signature Index" block
      per signature (primary first, then nested); a signature osslsigncode ignores because it is
      not at the end of the file is verified on a copy cut at the end of its certificate table
      (reason column says so).
  class: derived here from osslsigncode's facts plus the certificates embedded in each
      SignedData (walked with sign/der.py, decoded with python3-cryptography): the decision table
      of src/authenticode/classify.rs, implemented again independently:
        digest-mismatch  a signature's current digest differs from osslsigncode's calculated one
        attestation      signer CN "Microsoft Windows Hardware Compatibility Publisher", EKU
                         1.3.6.1.4.1.311.10.3.5.1, chain reaching a Microsoft root
        whql             the same publisher with EKU 1.3.6.1.4.1.311.10.3.5
        microsoft        another signer whose chain reaches a Microsoft root
        cross-signed     a chain certificate issued by "Microsoft Code Verification Root"
        test-signed      anything else
        unsigned         osslsigncode: "No signature found"
      the file's class: digest-mismatch if any signature is, else the strongest in the order above.
  first_page_hashes: page 0 of osslsigncode's "Calculated page hash" line, for signatures that
      carry page hashes; osslsigncode prints only the first 32 bytes of the table (a 4-byte
      offset, then the hash), so a SHA-256 page hash is a 28-byte prefix.
  tbs.tsv: see tbs_rows().
  catalogs.tsv: members counted with sign/der.py; `osslsigncode verify -in SYS -catalog CAT`
      ("File is signed in catalog") for each package driver; the INF's SHA-1/SHA-256 looked up in
      the member tags.
Files: ../shared/corpus/drivers/*.sys, ../shared/corpus/vulnerable/*.sys, every .sys and .cat under
../shared/corpus/packages/softether, and the fixtures testdata/signed/*.sys, testdata/packages/signed/*.
Needs osslsigncode and python3-cryptography. Without ../shared only the fixture rows are derived
(--check then compares those rows only).
"""
import datetime
import glob
import warnings
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

# Real certificates with negative serials (RFC 5280 forbids them) still load; say nothing.
warnings.filterwarnings("ignore", message=".*serial number.*")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "testdata", "sign"))
from der import children, children_first  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "corpus")
HW = "Microsoft Windows Hardware Compatibility Publisher"
MS_ROOTS = {"Microsoft Root Certificate Authority 2010", "Microsoft Root Certificate Authority 2011",
            "Microsoft Root Certificate Authority", "Microsoft Root Authority"}
MCVR = "Microsoft Code Verification Root"
RANK = ["whql", "attestation", "microsoft", "cross-signed", "test-signed"]


def osslsigncode(*args):
    r = subprocess.run(["osslsigncode", "verify", "-ignore-crl", "-ignore-cdp", *args],
                       capture_output=True, text=True, errors="replace")
    return r.stdout + r.stderr


def cn(line):
    m = re.findall(r"/CN=([^/]*)", line)
    return m[-1] if m else line.strip()


def iso(text):
    return datetime.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT").strftime("%Y-%m-%dT%H:%M:%SZ")


def blocks(out):
    """osslsigncode's per-signature facts, in index order."""
    parts = re.split(r"^Signature Index: (\d+).*$", out, flags=re.M)
    sigs = []
    for i in range(1, len(parts), 2):
        b = parts[i + 1]
        g = lambda pat: (re.search(pat, b, re.M) or [None, None])[1]  # noqa: E731
        signer = re.search(r"Signer's certificate:\s*-+\s*Signer #0:\s*Subject: (.*)\n\s*Issuer : (.*)\n\s*Serial : (-?\w+)", b)
        ts = g(r"^\s*Timestamp time: (.*)$")
        page = g(r"^Calculated page hash : 00000000(\w+)")
        sigs.append({
            "alg": g(r"^Message digest algorithm  : (\w+)"),
            "current": g(r"^Current message digest    : (\w+)"),
            "calculated": g(r"^Calculated message digest : (\w+)"),
            "signer": cn(signer[1]) if signer else None,
            "issuer": cn(signer[2]) if signer else None,
            "serial": signer[3] if signer else None,
            "timestamp": iso(ts) if ts and ts.strip() != "N/A" else None,
            # Page 0 of the page hashes osslsigncode computes for a signature that carries them:
            # the first-page hash, as many hex digits as the signature's digest has.
            "page0": page[:{"SHA1": 40, "SHA256": 64}.get(g(r"^Message digest algorithm  : (\w+)"), 0)] if page else None,
        })
    return sigs


def signed_datas(p7):
    """Certificate lists of each SignedData, primary first then nested, depth first."""
    out = []

    def walk(ci):
        _, content, _ = children_first(ci)
        items = children(content)
        (_, sd, _), = children(items[1][1])
        sd_items = children(sd)
        certs = []
        for tag, c, _ in sd_items:
            if tag == 0xA0:
                for t, _, whole in children(c):
                    if t == 0x30:
                        certs.append(x509.load_der_x509_certificate(whole))
        out.append(certs)
        (_, si, _) = children(sd_items[-1][1])[0]
        for tag, c, _ in children(si):
            if tag != 0xA1:
                continue
            for _, attr, _ in children(c):
                (_, oid_bytes, _), (_, values, _) = children(attr)[:2]
                if oid_bytes == bytes.fromhex("2b0601040182370204 01".replace(" ", "")):
                    for _, _, nested in children(values):
                        walk(nested)
    walk(p7)
    return out


def cert_cn(name):
    v = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return v[-1].value if v else name.rfc4514_string()


def ekus(c):
    try:
        return {e.dotted_string for e in c.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value}
    except x509.ExtensionNotFound:
        return set()


def classify(sig, certs):
    leaf = next((c for c in certs if sig["serial"] and c.serial_number == int(sig["serial"], 16)
                 and cert_cn(c.issuer) == sig["issuer"]), None)
    if leaf is None:
        return "malformed", "signer certificate not embedded"
    chain = [leaf]
    while chain[-1].issuer != chain[-1].subject:
        nxt = next((c for c in certs if c.subject == chain[-1].issuer and c not in chain), None)
        if nxt is None:
            break
        chain.append(nxt)
    top = chain[-1]
    ms = any(cert_cn(c.subject) in MS_ROOTS for c in chain) or cert_cn(top.issuer) in MS_ROOTS
    if ms:
        if sig["signer"] == HW and "1.3.6.1.4.1.311.10.3.5.1" in ekus(leaf):
            return "attestation", "hardware publisher, attestation EKU"
        if sig["signer"] == HW and "1.3.6.1.4.1.311.10.3.5" in ekus(leaf):
            return "whql", "hardware publisher, WHQL EKU"
        return "microsoft", "chain reaches a Microsoft root"
    if any(cert_cn(c.issuer) == MCVR for c in chain):
        return "cross-signed", "chain holds a certificate issued by " + MCVR
    return "test-signed", "chain ends at " + cert_cn(top.subject) + (" (self-signed)" if top.issuer == top.subject else "")


def cert_table(pe):
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    opt = lfanew + 24
    magic = struct.unpack_from("<H", pe, opt)[0]
    off, size = struct.unpack_from("<II", pe, opt + (96 if magic == 0x10B else 112) + 32)
    return off, size


def row(label, path):
    data = open(path, "rb").read()
    kind = "cat" if path.endswith(".cat") else "pe"
    out = osslsigncode("-in", path)
    note = ""
    if "Ignoring PE signature not at the end of the file" in out:
        off, size = cert_table(data)
        with tempfile.NamedTemporaryFile(suffix=".sys") as t:
            t.write(data[:off + size])
            t.flush()
            out = osslsigncode("-in", t.name)
        note = f"; signature not at the end of the file ({len(data) - off - size} bytes follow it): verified on the file cut there"
    sigs = blocks(out)
    if not sigs:
        return [label, kind, "0", "-", "-", "-", "-", "-", "-", "-", "unsigned", "no signature found" + note]
    if kind == "cat":
        p7 = data
    else:
        off, _ = cert_table(data)
        p7 = data[off + 8:]
    certsets = signed_datas(p7)
    # osslsigncode does not list nested signatures in encoding order: each block is matched to
    # the SignedData whose certificates hold its signer (serial and issuer).
    def certs_of(s):
        for certs in certsets:
            if any(s["serial"] and c.serial_number == int(s["serial"], 16) and cert_cn(c.issuer) == s["issuer"] for c in certs):
                return certs
        return []
    classes = [classify(s, certs_of(s)) for s in sigs]
    mism = [i for i, s in enumerate(sigs) if s["current"] and s["current"] != s["calculated"]]
    if mism:
        cls, why = "digest-mismatch", f"signature {mism[0]}: current {sigs[mism[0]]['current']} != calculated {sigs[mism[0]]['calculated']}"
    else:
        best = min(range(len(sigs)), key=lambda i: (RANK.index(classes[i][0]) if classes[i][0] in RANK else 99, i))
        cls, why = classes[best][0], f"signature {best}: {classes[best][1]}"
    j = lambda k: "|".join(s[k] or "-" for s in sigs)  # noqa: E731
    return [label, kind, str(len(sigs)), j("alg"), j("current"), j("calculated"), j("signer"), j("issuer"),
            j("timestamp"), j("page0"), cls, why + note]


def inputs():
    fixtures = sorted(glob.glob(os.path.join(ROOT, "testdata", "signed", "*.sys"))) + \
        sorted(glob.glob(os.path.join(ROOT, "testdata", "packages", "signed", "*.sys"))) + \
        sorted(glob.glob(os.path.join(ROOT, "testdata", "packages", "signed", "*.cat")))
    out = [("testdata/" + os.path.relpath(p, os.path.join(ROOT, "testdata")), p) for p in fixtures]
    if os.path.isdir(SHARED):
        corpus = sorted(glob.glob(os.path.join(SHARED, "drivers", "*.sys"))) + \
            sorted(glob.glob(os.path.join(SHARED, "vulnerable", "*.sys"))) + \
            sorted(p for p in glob.glob(os.path.join(SHARED, "packages", "softether", "**", "*"), recursive=True)
                   if p.endswith((".sys", ".cat")))
        out += [("corpus/" + os.path.relpath(p, SHARED), p) for p in corpus]
    return out


def members(cat):
    """(member count, tags as upper-case hex or text) of a catalog, walked with der.py."""
    _, content, _ = children_first(cat)
    items = children(content)
    (_, sd, _), = children(items[1][1])
    eci = children(sd)[2][1]
    ctl = children(children(eci)[1][1])[0][1]
    subjects = next(c for t, c, _ in children(ctl)[4:] if t == 0x30)
    tags = []
    for _, m, _ in children(subjects):
        tag = children(m)[0][1]
        text = tag.decode("utf-16-le", "replace").rstrip("\0") if len(tag) > 40 and tag[1::2] == b"\0" * (len(tag) // 2) else tag.hex().upper()
        tags.append(text)
    return tags


def catalog_rows():
    rows = []
    dirs = [os.path.join(ROOT, "testdata", "packages", "signed")]
    if os.path.isdir(SHARED):
        dirs += sorted({os.path.dirname(p) for p in glob.glob(os.path.join(SHARED, "packages", "softether", "**", "*.cat"), recursive=True)})
    for d in dirs:
        label = lambda p: ("testdata/" + os.path.relpath(p, os.path.join(ROOT, "testdata"))) if p.startswith(os.path.join(ROOT, "testdata")) else "corpus/" + os.path.relpath(p, SHARED)  # noqa: E731
        for cat in sorted(glob.glob(os.path.join(d, "*.cat"))):
            tags = members(open(cat, "rb").read())
            for f in sorted(glob.glob(os.path.join(d, "*.sys")) + glob.glob(os.path.join(d, "*.inf"))):
                data = open(f, "rb").read()
                if f.endswith(".sys"):
                    out = osslsigncode("-in", f, "-catalog", cat)
                    covered = "File is signed in catalog" in out
                    digest = re.search(r"^Calculated message digest : (\w+)", out, re.M)
                    how = "osslsigncode -catalog"
                    digest = digest[1] if digest else "-"
                else:
                    hashes = [hashlib.sha1(data).hexdigest().upper(), hashlib.sha256(data).hexdigest().upper()]
                    hit = [h for h in hashes if h in tags]
                    covered, digest, how = bool(hit), (hit[0] if hit else hashes[1]), "flat hash among member tags"
                rows.append([label(cat), str(len(tags)), label(f), "yes" if covered else "no", digest, how])
    return rows


def tbs_rows():
    """Embedded certificates whose TBS hash is a CertRoot of a Signer rule in Microsoft's driver
    block rules or LOLDrivers' DenyPolicy.xml: the TBSCertificate hashed with the digest of the
    certificate's own signature algorithm (python3-cryptography's tbs_certificate_bytes and
    signature_hash_algorithm), looked up among the policies' CertRoot Type="TBS" values."""
    if not os.path.isdir(SHARED):
        return []
    ref = os.path.join(SHARED, "..", "reference", "data")
    policies = {"SiPolicy_DriverBlockRules.xml": os.path.join(ref, "microsoft", "SiPolicy_DriverBlockRules.xml"),
                "DenyPolicy.xml": os.path.join(ref, "loldrivers", "detections", "wdac", "DenyPolicy.xml")}
    roots = {}
    for name, path in policies.items():
        text = open(path, encoding="utf-8-sig", errors="replace").read()
        for m in re.finditer(r'<Signer ID="([^"]+)"[^>]*>\s*<CertRoot Type="TBS" Value="([0-9A-Fa-f]+)"', text):
            roots.setdefault(m[2].upper(), []).append(f"{name}:{m[1]}")
    rows = set()
    for label, path in inputs():
        if not label.startswith("corpus/") or not path.endswith(".sys"):
            continue
        data = open(path, "rb").read()
        off, size = cert_table(data)
        if not off:
            continue
        for certs in signed_datas(data[off + 8:]):
            for c in certs:
                h = hashlib.new(c.signature_hash_algorithm.name, c.tbs_certificate_bytes).hexdigest().upper()
                if h in roots:
                    rows.add((label, cert_cn(c.subject), cert_cn(c.issuer), c.signature_hash_algorithm.name, h, roots[h][0]))
    return [list(r) for r in sorted(rows)]


def write(path, header, rows):
    text = "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    return path, text


def main():
    sig_rows = [row(label, p) for label, p in inputs()]
    outputs = [
        write(os.path.join(HERE, "signatures.tsv"),
              ["file", "kind", "signatures", "digest_algorithms", "current_digests", "calculated_digests",
               "signers", "issuers", "timestamps", "first_page_hashes", "class", "reason"], sig_rows),
        write(os.path.join(HERE, "catalogs.tsv"),
              ["catalog", "members", "file", "in_catalog", "digest", "how"], catalog_rows()),
        write(os.path.join(HERE, "tbs.tsv"),
              ["file", "subject", "issuer", "tbs_algorithm", "tbs_hash", "first_signer_rule"], tbs_rows()),
    ]
    if "--check" in sys.argv:
        bad = 0
        for path, text in outputs:
            have = open(path).read().splitlines()
            new = text.splitlines()
            want = set(have) if os.path.isdir(SHARED) else {ln for ln in have if ln.startswith(("file\t", "catalog\t", "testdata/"))}
            if set(new) != want:
                bad += 1
                print(f"signatures.py: {os.path.basename(path)} differs:", sorted(set(new) ^ want)[:4])
        sys.exit(1 if bad else print("signatures.py: OK - truth re-derived and equal") or 0)
    for path, text in outputs:
        with open(path, "w") as f:
            f.write(text)
        print("signatures.py: wrote", os.path.relpath(path, ROOT), len(text.splitlines()) - 1, "rows")


if __name__ == "__main__":
    main()
