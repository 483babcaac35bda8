#!/usr/bin/env python3
"""Truth for drvaudit's identity and blocklist modules, derived without drvaudit.

Writes (under testdata/truth/):
  identity.tsv         per driver: flat hashes, imphash (pefile's get_imphash), the fixed file and
                       product version and the StringFileInfo strings (pefile's parser)
  blocklist.tsv        per driver: flat, Authenticode and first-page hashes, OriginalFilename and
                       fixed FileVersion, and which LOLDrivers YAML entries, which rules of
                       LOLDrivers' DenyPolicy.xml and which of Microsoft's recommended driver
                       block rules match it, and by what
  blocklist_certs.tsv  per driver, signature (0 = primary, 1.. nested) and certificate of the
                       signer's chain (0 = leaf): subject CN and TBS hashes (MD5/SHA-1/SHA-256/
                       SHA-384/SHA-512), plus the signature's SpcSpOpusInfo program name

How:
  * pefile parses the PE (imports, version resource, data directories).
  * The Authenticode digest is computed here from the Microsoft "Windows Authenticode Portable
    Executable Signature Format" rules (hash the file without the checksum field, the
    certificate-table directory entry and the certificate table), and checked against
    `osslsigncode verify`'s "Calculated message digest" for every signature of every signed file
    (the script stops if one differs).
  * The first-page hash ("Hash Page Sha1/Sha256" in WDAC policies) is the hash of the headers
    computed the same way (checksum and certificate directory entry left out), zero-padded to a
    4096-byte page, as page-hash entries of SpcPeImagePageHashes are.
  * asn1crypto parses the PKCS#7 SignedData (and nested signatures, unauthenticated attribute
    1.3.6.1.4.1.311.2.4.1); the chain is built from the signer's certificate through the
    embedded certificates by issuer name; a TBS hash is the hash of the DER tbsCertificate.
  * PyYAML reads the LOLDrivers folder; ElementTree reads the SiPolicy XML files, and the
    matching rules are implemented here from the WDAC documentation ("Select the types of rules
    to create": FileName = OriginalFileName by default; Min and Max version both: min <= v <=
    max; Min only on a Deny: v <= min; Max only on a Deny: v >= max; only the rules referenced
    from signing scenario 131 apply to drivers).

Usage: python3 testdata/truth/make_blocklist_truth.py [--check]   (needs ../shared, pefile,
PyYAML, asn1crypto, osslsigncode). --check compares with the committed files instead of writing.
"""

import glob
import hashlib
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pefile
import yaml
from asn1crypto import cms, core, x509

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
LOL = os.path.join(SHARED, "reference/data/loldrivers")
NS = "{urn:schemas-microsoft-com:sipolicy}"


def drivers(include_fixtures):
    out = []
    for pat in ["corpus/drivers/*.sys", "corpus/vulnerable/*.sys", "corpus/packages/softether/**/*.sys"]:
        for p in sorted(glob.glob(os.path.join(SHARED, pat), recursive=True)):
            out.append((os.path.relpath(p, SHARED), p))
    if include_fixtures:
        for p in sorted(glob.glob(os.path.join(ROOT, "testdata/bin/*"))):
            if p.endswith((".sys", ".exe")):
                out.append((os.path.relpath(p, ROOT), p))
    return out


def esc(s):
    if s is None:
        return "-"
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# ---------------------------------------------------------------- PE facts

def pe_offsets(data):
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    opt = lfanew + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    pe32plus = magic == 0x20B
    checksum = opt + 64
    secdir = opt + (144 if pe32plus else 128)
    size_of_headers = struct.unpack_from("<I", data, opt + 60)[0]
    cert_off, cert_size = struct.unpack_from("<II", data, secdir)
    return checksum, secdir, size_of_headers, cert_off, cert_size


def authenticode(data, algo, padded=False):
    """padded: as Windows computes it (Get-AppLockerFileInformation, WDAC hash rules), with the
    hashed data zero-padded to a multiple of 8 bytes, the padding signing tools add before the
    certificate table; without it, as VirusTotal and most tools hash an unsigned file."""
    checksum, secdir, _, cert_off, cert_size = pe_offsets(data)
    end = len(data)
    if cert_off and cert_size and cert_off + cert_size <= len(data):
        end = cert_off
    h = hashlib.new(algo)
    h.update(data[:checksum])
    h.update(data[checksum + 4:secdir])
    h.update(data[secdir + 8:end])
    if padded and end % 8:
        h.update(b"\0" * (8 - end % 8))
    return h.hexdigest()


def first_page(data, algo):
    checksum, secdir, soh, _, _ = pe_offsets(data)
    soh = min(soh, 4096, len(data))
    h = hashlib.new(algo)
    h.update(data[:checksum])
    h.update(data[checksum + 4:secdir])
    h.update(data[secdir + 8:soh])
    h.update(b"\0" * (4096 - soh))
    return h.hexdigest()


def osslsigncode_digests(path):
    """[(algorithm, calculated digest)] per signature, from osslsigncode verify."""
    r = subprocess.run(["osslsigncode", "verify", "-in", path], capture_output=True, text=True)
    out = r.stdout
    if "Ignoring PE signature not at the end of the file" in out + r.stderr:
        return None
    res = []
    for m in re.finditer(r"Message digest algorithm\s*:\s*(\S+)\s*\n\s*Current message digest\s*:\s*\S+\s*\n\s*Calculated message digest\s*:\s*([0-9A-Fa-f]+)", out):
        res.append((m.group(1).lower().replace("-", ""), m.group(2).lower()))
    return res


def version_facts(pe):
    fixed = prod = None
    strings = {}
    if hasattr(pe, "VS_FIXEDFILEINFO") and pe.VS_FIXEDFILEINFO:
        f = pe.VS_FIXEDFILEINFO[0]
        fixed = "%d.%d.%d.%d" % (f.FileVersionMS >> 16, f.FileVersionMS & 0xFFFF, f.FileVersionLS >> 16, f.FileVersionLS & 0xFFFF)
        prod = "%d.%d.%d.%d" % (f.ProductVersionMS >> 16, f.ProductVersionMS & 0xFFFF, f.ProductVersionLS >> 16, f.ProductVersionLS & 0xFFFF)
    for fi in getattr(pe, "FileInfo", []) or []:
        for entry in fi:
            for st in getattr(entry, "StringTable", []) or []:
                for k, v in st.entries.items():
                    k = k.decode("utf-8", "replace")
                    if k not in strings:
                        strings[k] = v.decode("utf-8", "replace")
    return fixed, prod, strings


def imports_imphash(pe):
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
    return pe.get_imphash() or "-"


# ---------------------------------------------------------------- signatures

def name_cn(name):
    for rdn in name.chosen:
        for atv in rdn:
            if atv["type"].native == "common_name":
                return atv["value"].native
    return None


def der_items(buf):
    """(tag byte, contents) of each DER TLV in buf (definite lengths only)."""
    out, p = [], 0
    while p + 2 <= len(buf):
        tag, ln = buf[p], buf[p + 1]
        p += 2
        if ln & 0x80:
            n = ln & 0x7F
            ln = int.from_bytes(buf[p:p + n], "big")
            p += n
        out.append((tag, buf[p:p + ln]))
        p += ln
    return out


def opus_program(signer_info):
    """SpcSpOpusInfo.programName: SEQUENCE { [0] EXPLICIT SpcString, ... }, SpcString being
    [0] IMPLICIT BMPString or [1] IMPLICIT IA5String."""
    for attr in signer_info["signed_attrs"] or []:
        if attr["type"].dotted == "1.3.6.1.4.1.311.2.1.12":
            (_, seq), = der_items(attr["values"][0].dump())
            for tag, contents in der_items(seq):
                if tag == 0xA0:
                    for t2, c2 in der_items(contents):
                        if t2 == 0x80:
                            return c2.decode("utf-16-be", "replace")
                        if t2 == 0x81:
                            return c2.decode("ascii", "replace")
    return None


def signatures(data):
    """[(opus, [cert, ...])] per signature, leaf first, primary then nested."""
    _, _, _, off, size = pe_offsets(data)
    if not off or not size or off + size > len(data):
        return []
    res = []
    p = off
    while p + 8 <= off + size:
        length, rev, typ = struct.unpack_from("<IHH", data, p)
        if length < 8:
            break
        if typ == 2:
            collect(cms.ContentInfo.load(data[p + 8:p + length]), res)
        p += (length + 7) & ~7
    return res


def collect(ci, res):
    sd = ci["content"]
    certs = [c.chosen for c in sd["certificates"] if isinstance(c.chosen, x509.Certificate)]
    for si in sd["signer_infos"]:
        sid = si["sid"].chosen
        leaf = None
        for c in certs:
            if c.issuer == sid["issuer"] and c.serial_number == sid["serial_number"].native:
                leaf = c
        chain = []
        cur = leaf
        while cur is not None and len(chain) < 10:
            chain.append(cur)
            if cur.self_signed != "no":
                break
            nxt = None
            for c in certs:
                if c.subject == cur.issuer and c is not cur and c not in chain:
                    nxt = c
                    break
            cur = nxt
        res.append((opus_program(si), chain))
        for attr in si["unsigned_attrs"] or []:
            if attr["type"].dotted == "1.3.6.1.4.1.311.2.4.1":
                for v in attr["values"]:
                    collect(cms.ContentInfo.load(v.dump()), res)


def tbs(cert):
    raw = cert["tbs_certificate"].dump()
    return {a: hashlib.new(a, raw).hexdigest() for a in ["md5", "sha1", "sha256", "sha384", "sha512"]}


# ---------------------------------------------------------------- LOLDrivers

def lol_index():
    idx = {}
    imp = {}
    for f in sorted(glob.glob(os.path.join(LOL, "yaml/*.yaml"))):
        d = yaml.safe_load(open(f, encoding="utf-8"))
        for i, s in enumerate(d.get("KnownVulnerableSamples") or []):
            fields = {}
            for k in ["MD5", "SHA1", "SHA256"]:
                fields[k] = s.get(k)
            ah = s.get("Authentihash")
            if isinstance(ah, dict):
                for k in ["MD5", "SHA1", "SHA256"]:
                    fields["Authentihash." + k] = ah.get(k)
            for k in ["MD5", "SHA1", "SHA256"]:
                if s.get("Authentihash" + k):
                    fields["Authentihash" + k] = s.get("Authentihash" + k)
            for k, v in fields.items():
                if isinstance(v, str) and v.strip():
                    idx.setdefault(v.strip().lower(), []).append((d["Id"], i, k))
            ih = s.get("Imphash")
            if isinstance(ih, str) and ih.strip():
                imp.setdefault(ih.strip().lower(), []).append((d["Id"], i))
    return idx, imp


def lol_matches(h, idx):
    toks = set()
    for kind in ["md5", "sha1", "sha256"]:
        for which, val in [("flat", h["flat_" + kind]), ("auth", h["auth_" + kind])]:
            for (eid, i, field) in idx.get(val, []):
                # A field names its algorithm by its length; only same-algorithm matches count.
                if field.upper().endswith(kind.upper()):
                    toks.add("%s#%d:%s=%s-%s" % (eid, i, field, which, kind))
    return sorted(toks)


# ---------------------------------------------------------------- SiPolicy

def ver(s):
    return tuple(int(x) for x in s.split("."))


def version_ok(rule, v, deny=True):
    mn, mx = rule.get("MinimumFileVersion"), rule.get("MaximumFileVersion")
    if mn and mx:
        return ver(mn) <= v <= ver(mx)
    if mn:
        return v <= ver(mn) if deny else v >= ver(mn)
    if mx:
        return v >= ver(mx) if deny else v <= ver(mx)
    return True


ATTRS = {"FileName": "OriginalFilename", "InternalName": "InternalName", "FileDescription": "FileDescription", "ProductName": "ProductName"}


def attrib_ok(rule, facts):
    named = False
    for xa, vk in ATTRS.items():
        if rule.get(xa) is not None:
            named = True
            fv = facts["strings"].get(vk)
            if fv is None or fv.lower() != rule.get(xa).lower():
                return False
    if not named:
        return False
    return version_ok(rule, facts["version"])


def load_policy(path):
    root = ET.parse(path).getroot()
    rules = {}
    for c in root.find(NS + "FileRules"):
        rules[c.get("ID")] = (c.tag[len(NS):], c.attrib)
    signers = {}
    for s in root.find(NS + "Signers"):
        signers[s.get("ID")] = {
            "root": [c.get("Value") for c in s if c.tag == NS + "CertRoot"],
            "publisher": [c.get("Value") for c in s if c.tag == NS + "CertPublisher"],
            "oem": [c.get("Value") for c in s if c.tag == NS + "CertOemID"],
            "attribs": [c.get("RuleID") for c in s if c.tag == NS + "FileAttribRef"],
        }
    denied, refs = [], []
    for sc in root.find(NS + "SigningScenarios"):
        if sc.get("Value") != "131":
            continue
        for d in sc.iter(NS + "DeniedSigner"):
            denied.append(d.get("SignerId"))
        for r in sc.iter(NS + "FileRuleRef"):
            refs.append(r.get("RuleID"))
    return rules, signers, sorted(set(denied)), sorted(set(refs))


def policy_matches(pol, h, facts, sigs):
    rules, signers, denied, refs = pol
    toks = set()
    hashes = [("auth-sha1", h["auth_sha1"]), ("auth-sha256", h["auth_sha256"]), ("page-sha1", h["page_sha1"]),
              ("page-sha256", h["page_sha256"]), ("flat-sha1", h["flat_sha1"]), ("flat-sha256", h["flat_sha256"])]
    for rid in refs:
        kind, a = rules[rid]
        if kind != "Deny":
            continue
        if a.get("Hash"):
            for name, val in hashes:
                if a["Hash"].lower() == val:
                    toks.add("%s:%s" % (rid, name))
        elif attrib_ok(a, facts):
            toks.add("%s:fileattrib" % rid)
    for sid in denied:
        s = signers[sid]
        for opus, chain in sigs:
            if not chain:
                continue
            tbss = [tbs(c) for c in chain]
            if not all(any(v.lower() in t.values() for t in tbss) for v in s["root"]):
                continue
            if s["publisher"] and not all(name_cn(chain[0].subject) == p for p in s["publisher"]):
                continue
            if s["oem"] and not all(opus == o for o in s["oem"]):
                continue
            if s["attribs"]:
                for aid in s["attribs"]:
                    if attrib_ok(rules[aid][1], facts):
                        toks.add("%s+%s:signer" % (sid, aid))
            else:
                toks.add("%s:signer" % sid)
    return sorted(toks)


# ---------------------------------------------------------------- main

def both(policy, h, padded, facts, sigs):
    """The policy's matches with either form of the Authenticode hashes."""
    return sorted(set(policy_matches(policy, h, facts, sigs)) | set(policy_matches(policy, padded, facts, sigs)))


def main():
    check = "--check" in sys.argv
    if not os.path.isdir(SHARED):
        sys.exit("needs ../shared")
    idx, imp = lol_index()
    deny = load_policy(os.path.join(LOL, "detections/wdac/DenyPolicy.xml"))
    msft = load_policy(os.path.join(SHARED, "reference/data/microsoft/SiPolicy_DriverBlockRules.xml"))

    ident = ["file\tmd5\tsha1\tsha256\timphash\tfixed_file_version\tfixed_product_version\tOriginalFilename\tFileVersion\tCompanyName\tProductName\tFileDescription\tInternalName\tLegalCopyright"]
    block = ["file\tflat_md5\tflat_sha1\tflat_sha256\tauth_md5\tauth_sha1\tauth_sha256\tauth_sha256_padded\tpage_sha1\tpage_sha256\tOriginalFilename\tfile_version\timphash\tloldrivers\tloldrivers_imphash\tdenypolicy\tmsft_block"]
    certs = ["file\tsignature\tcert\tcn\ttbs_md5\ttbs_sha1\ttbs_sha256\ttbs_sha384\ttbs_sha512\topus_program"]
    checked = 0
    for label, path in drivers(True):
        data = open(path, "rb").read()
        pe = pefile.PE(data=data, fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"]])
        fixed, prod, strings = version_facts(pe)
        ih = imports_imphash(pe)
        flat = {a: hashlib.new(a, data).hexdigest() for a in ["md5", "sha1", "sha256"]}
        ident.append("\t".join([label, flat["md5"], flat["sha1"], flat["sha256"], ih, fixed or "-", prod or "-"] +
                               [esc(strings.get(k)) for k in ["OriginalFilename", "FileVersion", "CompanyName", "ProductName", "FileDescription", "InternalName", "LegalCopyright"]]))
        if label.startswith("testdata/"):
            continue
        h = {"flat_" + a: v for a, v in flat.items()}
        for a in ["md5", "sha1", "sha256"]:
            h["auth_" + a] = authenticode(data, a)
        for a in ["sha1", "sha256"]:
            h["page_" + a] = first_page(data, a)
        padded = dict(h)
        for a in ["md5", "sha1", "sha256"]:
            padded["auth_" + a] = authenticode(data, a, padded=True)
        h["auth_sha256_padded"] = padded["auth_sha256"]
        sigs = signatures(data)
        if sigs:
            got = osslsigncode_digests(path)
            if got is None:
                # osslsigncode refuses a certificate table followed by more data; Windows hashes
                # up to the table (Microsoft's rule ID_DENY_ASRDRV104_65 holds that digest for
                # lol-x86-asrdrv104), which is what authenticode() does.
                print("%s: certificate table not at the end; osslsigncode does not check it" % label)
                got = []
            elif len(got) != len(sigs):
                sys.exit("%s: osslsigncode shows %d signatures, asn1crypto %d" % (label, len(got), len(sigs)))
            for algo, dig in got:
                if h["auth_" + algo] != dig:
                    sys.exit("%s: Authenticode %s %s != osslsigncode %s" % (label, algo, h["auth_" + algo], dig))
                checked += 1
        facts = {"strings": strings, "version": ver(fixed) if fixed else (0, 0, 0, 0)}
        # A list's Authenticode hash may be either (see authenticode()): both are tried.
        lol = sorted(set(lol_matches(h, idx)) | set(lol_matches(padded, idx)))
        limp = sorted("%s#%d" % t for t in imp.get(ih, []))
        block.append("\t".join([label] + [h[k] for k in ["flat_md5", "flat_sha1", "flat_sha256", "auth_md5", "auth_sha1", "auth_sha256", "auth_sha256_padded", "page_sha1", "page_sha256"]] +
                               [esc(strings.get("OriginalFilename")), fixed or "-", ih, ";".join(lol) or "-", ";".join(limp) or "-",
                                ";".join(both(deny, h, padded, facts, sigs)) or "-", ";".join(both(msft, h, padded, facts, sigs)) or "-"]))
        for si, (opus, chain) in enumerate(sigs):
            for ci, c in enumerate(chain):
                t = tbs(c)
                certs.append("\t".join([label, str(si), str(ci), esc(name_cn(c.subject)), t["md5"], t["sha1"], t["sha256"], t["sha384"], t["sha512"], esc(opus)]))
    outs = {"identity.tsv": ident, "blocklist.tsv": block, "blocklist_certs.tsv": certs}
    bad = False
    for name, lines in outs.items():
        text = "\n".join(lines) + "\n"
        p = os.path.join(HERE, name)
        if check:
            if open(p).read() != text:
                print("DIFFERS: %s" % name)
                bad = True
        else:
            open(p, "w").write(text)
    print("%d drivers; %d Authenticode digests agree with osslsigncode" % (len(ident) - 1, checked))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
