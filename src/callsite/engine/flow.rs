//! What the architecture tells the engine about one instruction: its control flow ([`Flow`]),
//! the condition a branch tests ([`Cond`], [`Cc`]), its effect on a followed global
//! ([`GlobalEffect`]); and the stretch of code analysed as a unit ([`Extent`]).

/// The control flow of one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Falls through to the next instruction.
    Next,
    /// A call that returns (`target`: a direct call's RVA).
    Call { target: Option<u32> },
    /// An unconditional jump (`target`: a direct one's RVA; `None`: through a register or
    /// memory, a tail call).
    Jump { target: Option<u32> },
    /// A conditional branch to `target` that may fall through.
    Branch { target: u32 },
    /// An indirect jump through a table: its targets are not known.
    Table,
    /// A return.
    Return,
    /// The path ends: invalid code, a trap (`int3`, `ud2`, `int 29h` = `__fastfail`, `brk`),
    /// `hlt`, or a direct call of a function that does not return.
    Stop,
}

/// A condition over the flags, in the architecture's own terms of zero (Z), sign (N), carry
/// (C, whatever the architecture means by it after a subtraction) and overflow (V).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cc {
    Z,
    Nz,
    C,
    Nc,
    /// C or Z (x86 `be`).
    CorZ,
    /// neither C nor Z (x86 `a`).
    NcNz,
    /// C and not Z (ARM64 `hi`).
    CNz,
    /// not C, or Z (ARM64 `ls`).
    NcOrZ,
    N,
    Nn,
    V,
    Nv,
    /// N != V.
    Lt,
    Ge,
    /// Z or N != V.
    Le,
    Gt,
    Always,
    /// Parity and the like: never evaluated.
    Opaque,
}

/// What a conditional branch (or select) tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    /// The flags.
    Flags(Cc),
    /// A register against zero (`cbz`/`cbnz`, x86 `jecxz`): true when it is zero
    /// (`zero`) or non-zero.
    Zero { reg: u8, bytes: u8, zero: bool },
    /// One bit of a register (`tbz`/`tbnz`): true when it is set (`set`) or clear.
    Bit { reg: u8, bit: u8, set: bool },
}

/// What an instruction does to a global the search follows ([`super::Engine::values_of_globals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GlobalEffect {
    /// Nothing.
    None,
    /// Stores this constant into exactly its four bytes.
    Store(u64),
    /// Writes it otherwise, or forms its address (anything may then write it).
    Clobber,
}

/// A stretch of code analysed as a unit: `[begin, end)` and its entry points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extent {
    pub begin: u32,
    pub end: u32,
    pub entries: Vec<u32>,
}
