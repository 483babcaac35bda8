#!/usr/bin/env bash
# build_signed.sh - the signed fixtures, byte for byte (called by testdata/build.sh from testdata/).
#
# Needs: osslsigncode 2.9 (Debian), python3 with the cryptography package (timestamp.py only; pip install cryptography).
# Inputs: bin/*.sys (built by build.sh), sign/pki/*.pem + *.key (test-only PKI, committed;
# sign/make_ca.py re-creates the certificates), src/signed.inf.
# Outputs (committed, listed in bin/SHA256SUMS):
#   signed/test_sha256.sys        clean_gcc_x64_O2 signed SHA-256 by "drvaudit Test Driver Signer"
#   signed/nested_sha1_sha256.sys clean_clang_x86_O2 signed SHA-1, plus a nested SHA-256 signature
#   signed/tampered.sys           test_sha256.sys with one byte of .text flipped after signing
#   signed/timestamped.sys        clean_clang_x64_O2 signed SHA-256 by "drvaudit Expired Driver
#                                 Signer" (valid 2020-01-01..2021-01-01) with an RFC 3161
#                                 timestamp of 2020-06-01T00:01:00Z from the test TSA
#   signed/expired.sys            pooltest_clang_arm64_O2 signed by the expired signer, no timestamp
#   signed/pagehash.sys           clean_clang_x64_O2 signed SHA-256 with page hashes (-ph)
#   packages/signed/              signed.inf + signed.cat (catalog over fixture.sys and signed.inf,
#                                 signed by the test signer) + fixture.sys (untagged_gcc_x64_O2,
#                                 no embedded signature: covered by the catalog only)
# Determinism: osslsigncode -time fixes the signing time; RSA PKCS#1 v1.5 signatures are
# deterministic; the timestamp is built by timestamp.py (no random serial, no clock).
set -euo pipefail
cd "$(dirname "$0")/.."

P=sign/pki
# Intermediates in a temporary folder, not .build/ (scans of testdata/ would see them).
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rm -rf signed packages/signed
mkdir -p signed packages/signed
cat "$P/leaf.pem" "$P/root.pem" > "$T/leaf-chain.pem"
cat "$P/old.pem" "$P/root.pem" > "$T/old-chain.pem"
# 2020-06-01T00:00:00Z, inside every test certificate's validity.
WHEN=1590969600

sign() { # sign CHAIN KEY HASH IN OUT [extra osslsigncode options]
    local chain=$1 key=$2 h=$3 in=$4 out=$5
    shift 5
    osslsigncode sign -certs "$chain" -key "$key" -h "$h" -n "drvaudit fixture" -time "$WHEN" "$@" \
        -in "$in" -out "$out" > /dev/null
}

sign "$T/leaf-chain.pem" "$P/leaf.key" sha256 bin/clean_gcc_x64_O2.sys signed/test_sha256.sys

sign "$T/leaf-chain.pem" "$P/leaf.key" sha1 bin/clean_clang_x86_O2.sys "$T/sha1.sys"
sign "$T/leaf-chain.pem" "$P/leaf.key" sha256 "$T/sha1.sys" signed/nested_sha1_sha256.sys -nest

python3 - signed/test_sha256.sys signed/tampered.sys <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
lfanew = struct.unpack_from("<I", b, 0x3C)[0]
opt_size = struct.unpack_from("<H", b, lfanew + 20)[0]
first_section = lfanew + 24 + opt_size
raw_ptr = struct.unpack_from("<I", b, first_section + 20)[0]
b[raw_ptr + 0x10] ^= 0x01          # one bit of the first section's code, after signing
open(sys.argv[2], "wb").write(b)
PY

sign "$T/old-chain.pem" "$P/old.key" sha256 bin/clean_clang_x64_O2.sys "$T/old.sys"
python3 sign/timestamp.py "$T/old.sys" 20200601000100Z "$T/timestamped.der"
osslsigncode attach-signature -sigin "$T/timestamped.der" -CAfile "$P/root.pem" -TSA-CAfile "$P/root.pem" \
    -time "$WHEN" -in bin/clean_clang_x64_O2.sys \
    -out signed/timestamped.sys > /dev/null

sign "$T/old-chain.pem" "$P/old.key" sha256 bin/pooltest_clang_arm64_O2.sys signed/expired.sys

sign "$T/leaf-chain.pem" "$P/leaf.key" sha256 bin/clean_clang_x64_O2.sys signed/pagehash.sys -ph

cp bin/untagged_gcc_x64_O2.sys packages/signed/fixture.sys
cp src/signed.inf packages/signed/signed.inf
python3 sign/make_catalog.py "$T/unsigned.cat" packages/signed/fixture.sys packages/signed/signed.inf
sign "$T/leaf-chain.pem" "$P/leaf.key" sha256 "$T/unsigned.cat" packages/signed/signed.cat

# The independent check the catalog was built right: osslsigncode finds the driver in it.
osslsigncode verify -ignore-crl -ignore-cdp -CAfile "$P/root.pem" -in packages/signed/fixture.sys \
    -catalog packages/signed/signed.cat 2>&1 | grep -q "File is signed in catalog" \
    || { echo "build_signed.sh: osslsigncode does not find fixture.sys in signed.cat" >&2; exit 1; }
echo "build_signed.sh: signed fixtures written"
