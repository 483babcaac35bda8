//! The facts call-site analysis produces: one [`CallSite`] per call to a pool API, with its
//! recovered arguments and how each was obtained, and where the calling convention puts them.

use serde::Serialize;

use crate::pe::Machine;
use crate::pool::apis::{self, ApiSpec, Role};

/// How a recovered value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// An immediate operand written straight into the argument's register or slot.
    Immediate,
    /// Computed from constants through copies, `lea`, `xor`, `or`, shifts, `mov`/`movk`.
    Propagated,
    /// Loaded from read-only data (a `const` global or an ARM64 literal pool).
    Global,
    /// Loaded from a writable global at run time (the `POOL_NX_OPTIN` pattern); the value is
    /// the global's initial value in the image, which the driver may change before the call.
    Runtime,
    /// An address in the image (an operand covered by a base relocation, a RIP-relative
    /// `lea`, an ARM64 `adrp`/`add`): not a number such as a tag, and not known before the
    /// loader places the image. The global it names is in [`CallSite::details`].
    Address,
    /// Not a constant at this call (a parameter no caller resolves, a merge of paths, memory).
    Unknown,
}

/// One recovered argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ArgValue {
    /// The constant, when known (for [`Provenance::Runtime`], the global's initial value).
    pub value: Option<u64>,
    /// How it was obtained.
    pub how: Provenance,
}

impl ArgValue {
    /// An argument that is not a constant at the call.
    pub const UNKNOWN: ArgValue = ArgValue {
        value: None,
        how: Provenance::Unknown,
    };

    /// The value, only when it is a compile-time constant of the image (not `Runtime`).
    pub fn constant(&self) -> Option<u64> {
        match self.how {
            Provenance::Runtime | Provenance::Unknown | Provenance::Address => None,
            _ => self.value,
        }
    }
}

/// What is known about an argument beyond one constant ([`CallSite::details`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgDetail {
    /// One of several constants, sorted: paths that choose different values (a wrapper's
    /// switch on its parameter when the caller's argument is unknown, an if/else, a
    /// conditional move). The argument's [`ArgValue`] is unknown: no single value is claimed.
    OneOf(Vec<u64>),
    /// The address of the global at RVA `global` (the argument's provenance is
    /// [`Provenance::Address`]); `holds`: the global's 4-byte content when it is a constant
    /// that nothing writes.
    AddressOf { global: u32, holds: Option<u64> },
    /// Set at run time: read from the writable global at RVA `global`, whose content in the
    /// image is `initial` (the values it can hold are in [`CallSite::tag_values`] for a tag).
    SetAtRunTime { global: u32, initial: u64 },
}

/// How the code reaches the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// `call [IAT]` (x64 RIP-relative, possibly `rex.W`, x86 absolute).
    IndirectCall,
    /// The IAT slot was loaded into a register (possibly long before, or spilled to the stack
    /// and reloaded) and called through it (`call reg`, ARM64 `blr`).
    RegisterCall,
    /// A tail call: `jmp [IAT]`, `jmp reg`, ARM64 `br`.
    TailJump,
    /// `call rel32` / `bl` to an import thunk that jumps through the IAT.
    Thunk,
}

/// One call to a pool API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSite {
    /// RVA of the instruction that transfers control to the API (or to its thunk).
    pub rva: u32,
    /// Export name of the API (a key of [`apis::APIS`]).
    pub api: &'static str,
    /// How the API is reached.
    pub reach: Reach,
    /// Start RVA of the enclosing function (from `.pdata` where present, else the nearest
    /// preceding call target or export), if known.
    pub function: Option<u32>,
    /// When the arguments were resolved one level up, at a caller of a wrapper: the RVA of the
    /// caller's call to the wrapper. The same internal call then yields one `CallSite` per
    /// caller, and the finding is reported at that caller.
    pub via: Option<u32>,
    /// Recovered arguments by role (only roles the API has; see [`apis::Role`]).
    pub args: Vec<(Role, ArgValue)>,
    /// Every value the tag can take when it is not one constant, sorted: for a tag read from a
    /// writable global ([`Provenance::Runtime`]), every value the global can hold — its
    /// initial value (unless that is a zero the code always replaces) and each constant the
    /// code stores into it; empty when such a global is also written otherwise or its address
    /// is taken (its values are then unknown; a pointer to it computed at run time some other
    /// way is not seen). For a tag that is one of several constants ([`ArgDetail::OneOf`]),
    /// those constants. Empty otherwise.
    pub tag_values: Vec<u32>,
    /// What more is known about some arguments, by role: a set of constants, the global an
    /// address names, the global a run-time value is read from ([`ArgDetail`]).
    pub details: Vec<(Role, ArgDetail)>,
}

impl CallSite {
    /// The API's table entry.
    pub fn spec(&self) -> &'static ApiSpec {
        apis::find(self.api).expect("call sites are only built for table APIs")
    }

    /// What more is known about the argument with `role` ([`ArgDetail`]).
    pub fn detail(&self, role: Role) -> Option<&ArgDetail> {
        self.details
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, d)| d)
    }

    /// The recovered value for `role`, if the API has that parameter.
    pub fn arg(&self, role: Role) -> Option<ArgValue> {
        self.args.iter().find(|(r, _)| *r == role).map(|(_, v)| *v)
    }

    /// Where the finding belongs: the caller's call for wrapper-resolved sites, else the call.
    pub fn report_rva(&self) -> u32 {
        self.via.unwrap_or(self.rva)
    }

    /// The tags the kernel may record for this call: the effective tag, else every value the
    /// tag can take ([`CallSite::tag_values`]: a set of constants, or the values of a tag read
    /// at run time).
    pub fn possible_tags(&self) -> Vec<u32> {
        match self.effective_tag() {
            Some(t) => vec![t],
            None => self.tag_values.clone(),
        }
    }

    /// Whether the tag the kernel records is known: one constant (recovered or implied by the
    /// API), or the values of a writable global it is read from at run time. A tag that is one
    /// of several constants the code chooses between is not: any of them may be recorded.
    pub fn tag_known(&self) -> bool {
        self.effective_tag().is_some() || (self.tag_at_run_time() && !self.tag_values.is_empty())
    }

    /// Whether the tag is read at run time from a writable global.
    pub fn tag_at_run_time(&self) -> bool {
        self.arg(Role::Tag)
            .is_some_and(|v| v.how == Provenance::Runtime)
    }

    /// The tag the kernel records for this call, when known: the recovered constant tag, or
    /// the implied tag of untagged/contiguous APIs.
    pub fn effective_tag(&self) -> Option<u32> {
        if let Some(t) = self.spec().implied_tag {
            return Some(t);
        }
        self.arg(Role::Tag)?.constant().map(|t| t as u32)
    }
}

/// Where argument `index` (1-based, per [`ApiSpec::params`]) is at the call instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgLocation {
    /// In a register: x64 0=rcx 1=rdx 2=r8 3=r9; ARM64 the x-register number.
    Register(u8),
    /// In the caller's outgoing stack area at `[sp + offset]` just before the call (x64 from
    /// 0x20 on; x86 from 0, where the low dword of a wide argument comes first).
    Stack(u32),
}

/// The calling convention's placement of argument `index` of `spec` (`pool-apis-and-rules.md`
/// §1): x64 rcx, rdx, r8, r9 then `[rsp+20h]`…; x86 stdcall all on the stack, 64-bit values in
/// two slots; ARM64 x0–x7.
pub fn arg_location(machine: Machine, spec: &ApiSpec, index: usize) -> Option<ArgLocation> {
    let i = index.checked_sub(1)?;
    spec.params.get(i)?;
    match machine {
        Machine::X64 => Some(if i < 4 {
            ArgLocation::Register(i as u8)
        } else {
            ArgLocation::Stack(0x20 + 8 * (i as u32 - 4))
        }),
        Machine::X86 => {
            let slots: u32 = spec.params[..i]
                .iter()
                .map(|p| if p.wide { 2 } else { 1 })
                .sum();
            Some(ArgLocation::Stack(4 * slots))
        }
        Machine::Arm64 => (i < 8).then_some(ArgLocation::Register(i as u8)),
        Machine::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_wide_arguments_take_two_slots() {
        let pool2 = apis::find("ExAllocatePool2").unwrap();
        assert_eq!(
            arg_location(Machine::X86, pool2, 3),
            Some(ArgLocation::Stack(12))
        );
        assert_eq!(
            arg_location(Machine::X64, pool2, 3),
            Some(ArgLocation::Register(2))
        );
        let la = apis::find("ExInitializeNPagedLookasideList").unwrap();
        assert_eq!(
            arg_location(Machine::X64, la, 6),
            Some(ArgLocation::Stack(0x28))
        );
        assert_eq!(
            arg_location(Machine::X86, la, 6),
            Some(ArgLocation::Stack(0x14))
        );
        assert_eq!(
            arg_location(Machine::Arm64, la, 6),
            Some(ArgLocation::Register(5))
        );
    }
}
