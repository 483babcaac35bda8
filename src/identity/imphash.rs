//! The import hash ("imphash", Mandiant 2014) as pefile's `PE.get_imphash()` computes it, since
//! that is what LOLDrivers' `Imphash` fields and most threat-intelligence feeds carry:
//!
//! 1. for each import, in import-directory order (descriptor order, then thunk order; delay
//!    imports are not included): the DLL name lower-cased, with a final `.dll`, `.ocx` or
//!    `.sys` extension removed (other extensions such as `.exe` stay);
//! 2. the function name lower-cased; an import by ordinal becomes `ordN` (decimal), except for
//!    `ws2_32.dll`, `wsock32.dll` and `oleaut32.dll` (full name, any case), whose known ordinals
//!    are replaced by their export names (the table in `ordinals.rs`);
//! 3. `dll.function` strings joined with `,`, and the MD5 of that text in lower-case hex.

use crate::util::md5::Md5;

use super::ordinals;

/// How one import names its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportName<'a> {
    /// Imported by name (the hint/name table entry).
    Name(&'a str),
    /// Imported by ordinal.
    Ordinal(u16),
}

/// The imphash of `imports` (`(dll, function)` in import-directory order, delay imports left
/// out). `None` for an empty list: pefile returns an empty string for an image without an import
/// directory, and callers should show "no imphash" rather than the MD5 of nothing.
pub fn imphash<'a, I>(imports: I) -> Option<String>
where
    I: IntoIterator<Item = (&'a str, ImportName<'a>)>,
{
    let mut text = String::new();
    let mut any = false;
    for (dll, name) in imports {
        let lower = dll.to_lowercase();
        let lib = match lower.rsplit_once('.') {
            Some((stem, "dll" | "ocx" | "sys")) => stem,
            _ => lower.as_str(),
        };
        let function = match name {
            ImportName::Name(n) => n.to_lowercase(),
            ImportName::Ordinal(o) => ordinal_name(&lower, o)
                .map(str::to_lowercase)
                .unwrap_or_else(|| format!("ord{o}")),
        };
        if function.is_empty() {
            // pefile skips an import whose name is empty.
            continue;
        }
        if any {
            text.push(',');
        }
        any = true;
        text.push_str(lib);
        text.push('.');
        text.push_str(&function);
    }
    if !any {
        return None;
    }
    Some(hex::encode(Md5::digest(text.as_bytes())))
}

/// The export name pefile knows for ordinal `o` of the lower-cased DLL name `dll`.
fn ordinal_name(dll: &str, o: u16) -> Option<&'static str> {
    let table = match dll {
        "ws2_32.dll" => ordinals::WS2_32,
        "wsock32.dll" => ordinals::WSOCK32,
        "oleaut32.dll" => ordinals::OLEAUT32,
        _ => return None,
    };
    table
        .binary_search_by_key(&o, |&(n, _)| n)
        .ok()
        .map(|i| table[i].1)
}

#[cfg(test)]
mod tests {
    use super::{imphash, ImportName::*};
    use md5::{Digest, Md5};

    fn md5(s: &str) -> String {
        hex::encode(Md5::digest(s.as_bytes()))
    }

    #[test]
    fn names_extensions_and_ordinals() {
        let got = imphash([
            ("NTOSKRNL.exe", Name("IoCreateDevice")),
            ("HAL.dll", Name("KeStallExecutionProcessor")),
            ("ndis.SYS", Ordinal(7)),
            ("WS2_32.dll", Ordinal(3)),
            ("ws2_32.dll", Ordinal(60000)),
            ("OLEAUT32.DLL", Ordinal(2)),
            ("foo.ocx", Name("")),
            ("x.drv", Name("F")),
        ]);
        let want = md5(
            "ntoskrnl.exe.iocreatedevice,hal.kestallexecutionprocessor,ndis.ord7,\
             ws2_32.closesocket,ws2_32.ord60000,oleaut32.sysallocstring,x.drv.f",
        );
        assert_eq!(got.as_deref(), Some(want.as_str()));
        assert_eq!(imphash(std::iter::empty()), None);
    }

    #[test]
    fn ordinal_tables_are_sorted() {
        for t in [
            super::ordinals::WS2_32,
            super::ordinals::WSOCK32,
            super::ordinals::OLEAUT32,
        ] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
