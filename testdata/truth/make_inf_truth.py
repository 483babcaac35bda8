#!/usr/bin/env python3
"""Truth for drvaudit's INF parser, derived without drvaudit: testdata/truth/inf.tsv.

For every INF of ../shared/corpus/packages/softether/** and testdata/src/fixture.inf, for the
architecture of its driver (the folder name: x64 -> amd64, x86 -> x86; fixture.inf: amd64), this
script reads the file itself (codecs: UTF-16 with a BOM, else Windows-1252), strips `;` comments
outside quotes, joins `\\` continuations, merges same-named sections, substitutes %strkey% from
[Strings] (one level), and applies the rules of the Microsoft Learn INF pages (Version,
Manufacturer, Models, DDInstall decoration choice .nt<arch> > .nt > undecorated,
CopyFiles, SourceDisksFiles(.arch), SourceDisksNames, AddService/ServiceBinary) to list:

  driverver   DriverVer as written (after substitution)
  catalog     the CatalogFile Windows uses on the architecture, with its line
  decorations the [Manufacturer] entries' TargetOSVersion decorations, as written
  models      the models sections used on the architecture
  copied      every copied file as its path in the package (SourceDisksNames path/subdir/name)
  services    service name = ServiceBinary
  problems    static problems `line:kind:detail` given the package's actual file list

Usage: python3 testdata/truth/make_inf_truth.py [--check]
"""

import codecs
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))


def read(path):
    raw = open(path, "rb").read()
    if raw.startswith(codecs.BOM_UTF16_LE):
        return raw[2:].decode("utf-16-le"), "utf-16le-bom"
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8"), "utf-8-bom"
    return raw.decode("cp1252"), "ansi"


def split_fields(s):
    """Fields of a value list: commas outside quotes split, quotes removed, blanks trimmed."""
    out, cur, q = [], "", False
    i = 0
    while i < len(s):
        c = s[i]
        if q:
            if c == '"':
                if s[i + 1:i + 2] == '"':
                    cur += '"'
                    i += 1
                else:
                    q = False
            else:
                cur += c
        elif c == '"':
            q = True
        elif c == ",":
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur.strip())
    return out


def strip_comment(line):
    q = False
    for i, c in enumerate(line):
        if c == '"':
            q = not q
        elif c == ";" and not q:
            return line[:i]
    return line


def parse(text):
    sections = {}  # lower name -> (name, header line, [(line, key, values)])
    cur = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = strip_comment(lines[i]).rstrip()
        i += 1
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + strip_comment(lines[i]).rstrip()
            i += 1
        s = line.strip()
        if not s:
            continue
        if s.startswith("["):
            name = s[1:s.index("]")]
            cur = sections.setdefault(name.lower(), (name, start, []))
            continue
        m = re.match(r'^([^=",]*?)\s*=\s*(.*)$', s)
        if m:
            key, rest = m.group(1).strip(), m.group(2)
        else:
            key, rest = None, s
        strings_sec = cur is not None and cur[0].lower().startswith("strings")
        values = [rest.strip().strip('"')] if strings_sec else split_fields(rest)
        cur[2].append((start, key, values))
    strings = {}
    for sec in ["strings"]:
        for (_, k, v) in sections.get(sec, (None, None, []))[2]:
            strings.setdefault(k.lower(), v[0])

    def sub(x):
        if x is None:
            return None
        return re.sub(r"%([^%]*)%", lambda m: "%" if m.group(1) == "" else strings.get(m.group(1).lower(), m.group(0)), x)

    out = {}
    for low, (name, hl, entries) in sections.items():
        if low.startswith("strings"):
            out[low] = (name, hl, entries)
        else:
            out[low] = (name, hl, [(l, sub(k), [sub(v) for v in vals]) for (l, k, vals) in entries])
    return out


def get(secs, name):
    return secs.get(name.lower())


def first(secs, section, key):
    s = get(secs, section)
    if s:
        for (l, k, v) in s[2]:
            if k and k.lower() == key.lower():
                return l, v
    return None


def resolve(secs, name, arch):
    for n in [name + ".nt" + arch, name + ".nt", name]:
        if get(secs, n):
            return get(secs, n)[0]
    return None


def facts(path, arch, package):
    text, enc = read(path)
    secs = parse(text)
    problems = []
    v = get(secs, "Version")
    dv = first(secs, "Version", "DriverVer")
    if dv is None:
        problems.append((v[1], "MissingDriverVer", ""))
    cat = None
    for key in ["CatalogFile.nt" + arch, "CatalogFile.nt", "CatalogFile"]:
        c = first(secs, "Version", key)
        if c:
            cat = (c[1][0], c[0])
            break
    pkg_lower = {p.lower() for p in package}
    if cat is None:
        problems.append((v[1], "MissingCatalogFile", arch))
    elif cat[0].lower() not in pkg_lower:
        problems.append((cat[1], "CatalogMissingFromPackage", cat[0]))
    decorations, models, installs = [], [], []
    man = get(secs, "Manufacturer")
    for (l, k, vals) in (man[2] if man else []):
        base, decs = vals[0], [d for d in vals[1:] if d]
        decorations += decs
        use = [d for d in decs if d.lower().startswith("nt" + arch) or (arch == "x86" and re.match(r"^nt(\.|$)", d.lower()))]
        if not use and arch != "x86":
            problems.append((l, "NoModelsForArchitecture", base))
        names = [base + "." + d for d in use] or ([base] if arch == "x86" else [])
        for n in names:
            models.append(n)
            for (ml, mk, mv) in get(secs, n)[2]:
                installs.append(mv[0])
    for special in ["DefaultInstall", "ClassInstall32"]:
        if resolve(secs, special, arch):
            installs.append(special)
    copied, services = [], []
    copied_dest = set()
    for inst in installs:
        r = resolve(secs, inst, arch)
        for sec in [r, r + ".CoInstallers"]:
            s = get(secs, sec)
            for (l, k, vals) in (s[2] if s else []):
                if not k or k.lower() != "copyfiles":
                    continue
                for item in vals:
                    if item.startswith("@"):
                        entries = [(l, [item[1:]])]
                    else:
                        entries = [(el, ([ek] if ek else []) + ev) for (el, ek, ev) in get(secs, item)[2]]
                    for (el, f) in entries:
                        dest = f[0]
                        src = f[1] if len(f) > 1 and f[1] else dest
                        copied_dest.add(dest.lower())
                        sdf = first(secs, "SourceDisksFiles." + arch, src) or first(secs, "SourceDisksFiles", src)
                        if sdf is None:
                            problems.append((el, "NotInSourceDisksFiles", src))
                            p = src
                        else:
                            disk, sub = sdf[1][0], (sdf[1][1] if len(sdf[1]) > 1 else "")
                            sdn = first(secs, "SourceDisksNames." + arch, disk) or first(secs, "SourceDisksNames", disk)
                            base = sdn[1][3] if sdn and len(sdn[1]) > 3 else ""
                            p = "/".join(x for x in re.split(r"[\\/]", "/".join([base, sub, src])) if x and x != ".")
                        copied.append(p)
                        if p.lower() not in pkg_lower:
                            problems.append((el, "FileMissingFromPackage", p))
        svc = get(secs, r + ".Services")
        for (l, k, vals) in (svc[2] if svc else []):
            if k and k.lower() == "addservice":
                b = first(secs, vals[2], "ServiceBinary")
                services.append("%s=%s" % (vals[0], b[1][0] if b else "-"))
                if b and re.split(r"[\\/]", b[1][0])[-1].lower() not in copied_dest:
                    problems.append((b[0], "ServiceBinaryNotCopied", b[1][0]))
    return {
        "encoding": enc,
        "driverver": ",".join(dv[1]) if dv else "-",
        "catalog": "%s@%d" % cat if cat else "-",
        "decorations": ";".join(decorations) or "-",
        "models": ";".join(models) or "-",
        "copied": ";".join(sorted(copied)) or "-",
        "services": ";".join(services) or "-",
        "problems": ";".join("%d:%s:%s" % p for p in sorted(problems)) or "-",
    }


def main():
    rows = ["file\tarch\tencoding\tdriverver\tcatalog\tdecorations\tmodels\tcopied\tservices\tproblems"]
    infs = []
    for p in sorted(glob.glob(os.path.join(SHARED, "corpus/packages/softether/**/*.inf"), recursive=True)):
        arch = "amd64" if os.path.basename(os.path.dirname(p)) == "x64" else "x86"
        infs.append((os.path.relpath(p, SHARED), p, arch, os.path.dirname(p)))
    infs.append(("testdata/src/fixture.inf", os.path.join(ROOT, "testdata/src/fixture.inf"), "amd64", None))
    for label, p, arch, folder in infs:
        if folder:
            package = sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/") for d, _, fs in os.walk(folder) for f in fs)
        else:
            package = ["drivers/amd64/clean.sys", "drivers/amd64/untagged.sys", "fixture.inf"]  # pkg.zip
        f = facts(p, arch, package)
        rows.append("\t".join([label, arch] + [f[k] for k in ["encoding", "driverver", "catalog", "decorations", "models", "copied", "services", "problems"]]))
    text = "\n".join(rows) + "\n"
    out = os.path.join(HERE, "inf.tsv")
    if "--check" in sys.argv:
        if open(out).read() != text:
            sys.exit("DIFFERS: inf.tsv")
    else:
        open(out, "w").write(text)
    print("%d INFs" % (len(rows) - 1))


if __name__ == "__main__":
    main()
