"""der.py - the few DER helpers the signing scripts need (X.690 encoding, definite lengths)."""


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_of(*items):
    # DER: the encodings of a SET OF sorted as octet strings.
    return tlv(0x31, b"".join(sorted(items)))


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for i, v in enumerate([arcs[0] * 40 + arcs[1]] + arcs[2:]):
        chunk = [v & 0x7F]
        v >>= 7
        while v:
            chunk.append(0x80 | (v & 0x7F))
            v >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def integer(v):
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True)
    return tlv(0x02, b)


def octets(b):
    return tlv(0x04, b)


def null():
    return b"\x05\x00"


def bmp(s):
    return tlv(0x1E, s.encode("utf-16-be"))


def ctx(n, content, constructed=True):
    return tlv((0xA0 if constructed else 0x80) | n, content)


def parse(b, pos=0):
    """One element at b[pos:]: (tag, header length, content length, end-of-contents length).
    Single-byte tags only (all that Authenticode uses); BER indefinite lengths are followed."""
    tag = b[pos]
    n = b[pos + 1]
    if n < 0x80:
        return tag, 2, n, 0
    if n == 0x80:
        start = end = pos + 2
        while b[end:end + 2] != b"\0\0":
            _, h, m, eoc = parse(b, end)
            end += h + m + eoc
        return tag, 2, end - start, 2
    k = n & 0x7F
    return tag, 2 + k, int.from_bytes(b[pos + 2:pos + 2 + k], "big"), 0


def children(b):
    """The elements of a content octet string, as (tag, content, whole encoding)."""
    out, pos = [], 0
    while pos < len(b):
        tag, h, n, eoc = parse(b, pos)
        out.append((tag, b[pos + h:pos + h + n], b[pos:pos + h + n + eoc]))
        pos += h + n + eoc
    return out


def children_first(b):
    """The first element of b, as (tag, content, whole encoding)."""
    tag, h, n, eoc = parse(b, 0)
    return tag, b[h:h + n], b[:h + n + eoc]


SHA256 = seq(oid("2.16.840.1.101.3.4.2.1"), null())
SHA1 = seq(oid("1.3.14.3.2.26"), null())
