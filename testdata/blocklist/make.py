#!/usr/bin/env python3
"""Writes the blocklist fixtures (testdata/blocklist/) from the fixture drivers' hashes, computed
here with hashlib over the Authenticode layout (Microsoft's "Windows Authenticode Portable
Executable Signature Format": the image without its CheckSum, the certificate-table directory
entry and the certificate table), never by drvaudit.

  loldrivers/vulnerable.yaml  - a LOLDrivers entry (vulnerable driver) listing
                                clean_gcc_x64_O2.sys by its flat SHA-256
  loldrivers/malicious.yaml   - a malicious-driver entry listing untagged_gcc_x64_O2.sys by its
                                Authenticode SHA-256 (Authentihash)
  policy.xml                  - a SiPolicy whose kernel scenario (131) denies
                                pooltest_clang_x64_O2.sys by its Authenticode SHA-1, and a
                                user-mode-only rule (scenario 12) for clean_clang_x64_O2.sys,
                                which must not block a driver

  python3 testdata/blocklist/make.py [--check]
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", "bin")


def authenticode(data, algo):
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    opt = lfanew + 24
    pe32plus = struct.unpack_from("<H", data, opt)[0] == 0x20B
    checksum = opt + 64
    secdir = opt + (144 if pe32plus else 128)
    cert_off, cert_size = struct.unpack_from("<II", data, secdir)
    end = cert_off if cert_off and cert_size and cert_off + cert_size <= len(data) else len(data)
    h = hashlib.new(algo)
    h.update(data[:checksum])
    h.update(data[checksum + 4:secdir])
    h.update(data[secdir + 8:end])
    # An unsigned image is padded to 8 bytes, as Windows hashes it.
    if end == len(data) and len(data) % 8:
        h.update(b"\0" * (8 - len(data) % 8))
    return h.hexdigest()


def read(name):
    with open(os.path.join(BIN, name), "rb") as f:
        return f.read()


def outputs():
    clean = read("clean_gcc_x64_O2.sys")
    untagged = read("untagged_gcc_x64_O2.sys")
    pooltest = read("pooltest_clang_x64_O2.sys")
    clean_clang = read("clean_clang_x64_O2.sys")
    vulnerable = f"""Id: 0b1e7f10-3c1d-4c8e-9d3a-6a0f1b2c3d4e
Tags:
- clean_gcc_x64_O2.sys
Category: vulnerable driver
CVE:
- CVE-2000-0001
Verified: 'TRUE'
KnownVulnerableSamples:
- Filename: clean_gcc_x64_O2.sys
  SHA256: {hashlib.sha256(clean).hexdigest()}
"""
    malicious = f"""Id: 6f2c9a44-8e1b-4f5d-a7c3-2b9d0e1f4a5b
Tags:
- untagged_gcc_x64_O2.sys
Category: malicious
Verified: 'TRUE'
KnownVulnerableSamples:
- Filename: untagged_gcc_x64_O2.sys
  Authentihash:
    SHA256: {authenticode(untagged, "sha256")}
"""
    policy = f"""<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <FileRules>
    <Deny ID="ID_DENY_POOLTEST" FriendlyName="pooltest_clang_x64_O2.sys Hash Sha1" Hash="{authenticode(pooltest, "sha1").upper()}" />
    <Deny ID="ID_DENY_USERMODE_ONLY" FriendlyName="clean_clang_x64_O2.sys Hash Sha1" Hash="{authenticode(clean_clang, "sha1").upper()}" />
  </FileRules>
  <Signers />
  <SigningScenarios>
    <SigningScenario Value="131" ID="ID_SIGNINGSCENARIO_DRIVERS_1" FriendlyName="kernel">
      <ProductSigners>
        <FileRulesRef>
          <FileRuleRef RuleID="ID_DENY_POOLTEST" />
        </FileRulesRef>
      </ProductSigners>
    </SigningScenario>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_WINDOWS" FriendlyName="user mode">
      <ProductSigners>
        <FileRulesRef>
          <FileRuleRef RuleID="ID_DENY_USERMODE_ONLY" />
        </FileRulesRef>
      </ProductSigners>
    </SigningScenario>
  </SigningScenarios>
</SiPolicy>
"""
    return {
        "loldrivers/vulnerable.yaml": vulnerable,
        "loldrivers/malicious.yaml": malicious,
        "policy.xml": policy,
    }


def main():
    check = "--check" in sys.argv
    bad = 0
    for rel, text in outputs().items():
        path = os.path.join(HERE, rel)
        if check:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    print(f"MISMATCH {rel}")
                    bad = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    print("make.py:", "check failed" if bad else ("OK" if check else "written"))
    sys.exit(bad)


if __name__ == "__main__":
    main()
