//! The answers of the debug-information readers: where the code at an RVA was written, and
//! the function it belongs to. Both readers ([`super::pdb`], [`super::dwarf`]) produce frames
//! innermost first (a function and the position inside it); [`source_location`] turns them into
//! a [`SourceLocation`] the same way for both.

/// Where the code at an RVA was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The source file as recorded (`C:\…\alloc.c`, `/fixtures/src/pooltest.c`,
    /// `./dlls/hidclass.sys/pnp.c`), of the innermost frame: the file the call is written in.
    pub file: String,
    /// Its line (1-based).
    pub line: u32,
    /// Its column (1-based), where recorded.
    pub column: Option<u32>,
    /// The function that owns the code in the image (the PDB procedure or public symbol, the
    /// DWARF subprogram): the outermost frame, and the name that replaces `sub_<rva>`.
    pub function: Option<String>,
    /// The inlining chain, innermost first: one entry per inlined function, naming it and
    /// giving the call that was inlined (the position in the next outer function). Empty when
    /// the code is not inlined. `inlined[0].function` is the function the call is written in.
    pub inlined: Vec<Frame>,
}

impl SourceLocation {
    /// The function whose source holds the statement: the innermost inlined function, or
    /// [`SourceLocation::function`] when nothing is inlined.
    pub fn innermost_function(&self) -> Option<&str> {
        match self.inlined.first() {
            Some(f) => f.function.as_deref(),
            None => self.function.as_deref(),
        }
    }
}

/// One inlined call: `function` was inlined at `file:line[:column]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// A function known to the debug information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    /// Its first and one-past-last RVA, where the format gives them (PDB procedures and
    /// publics; not DWARF, where only the name is looked up).
    pub start_rva: Option<u32>,
    pub end_rva: Option<u32>,
}

/// One frame as a reader gives it: the function, and the location inside it.
pub(crate) struct RawFrame {
    pub(crate) function: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
}

/// Frames innermost first (each: a function and the position inside it) to a
/// [`SourceLocation`]: the innermost position, the outermost function, and for each inlined
/// function the call that was inlined (the position in the next outer frame). `None` when the
/// innermost frame has no file and line.
pub(crate) fn source_location(frames: Vec<RawFrame>) -> Option<SourceLocation> {
    let first = frames.first()?;
    let (file, line) = (first.file.clone()?, first.line.filter(|&l| l > 0)?);
    let column = first.column;
    let function = frames.last().and_then(|f| f.function.clone());
    let inlined = frames
        .windows(2)
        .map(|w| Frame {
            function: w[0].function.clone(),
            file: w[1].file.clone(),
            line: w[1].line.filter(|&l| l > 0),
            column: w[1].column,
        })
        .collect();
    Some(SourceLocation {
        file,
        line,
        column,
        function,
        inlined,
    })
}
