//! The value lattice: what a register or stack slot holds at a program point.
//!
//! A value is a constant (with how it was obtained), a bounded set of constants, a writable
//! global's run-time content, one of the function's incoming parameters, a stack address, an
//! address in the image, the pointer read from an import slot, or unknown. The lattice is
//! deliberately flat: two different facts meet in a set only when both are constants (at most
//! [`MAX_SET`](super::bounds::MAX_SET) of them), and in `Unknown` otherwise. A set is never
//! collapsed into one of its members: a wrong tag is worse than an unknown one.

use std::collections::HashMap;

use super::bounds::MAX_SET;

/// How a constant was obtained (the engine's side of [`crate::callsite::Provenance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum How {
    /// An immediate operand (`mov r8d, imm32`, `push imm32`, `movz`/`movk`).
    Immediate,
    /// Computed from constants (copies, arithmetic, a merge of paths).
    Propagated,
    /// Loaded from read-only data of the image (a `const` global, a literal pool, a table).
    Global,
}

impl How {
    /// The origin of a value derived from `self` by a copy or an operation with an immediate:
    /// an immediate becomes propagated, a loaded value keeps its origin.
    pub(crate) fn derived(self) -> How {
        match self {
            How::Immediate => How::Propagated,
            h => h,
        }
    }

    /// The origin of a value combining two constants.
    pub(crate) fn combine(self, other: How) -> How {
        if self == other && self != How::Immediate {
            self
        } else {
            How::Propagated
        }
    }
}

/// Where an incoming parameter of a function lives at its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ParamLoc {
    /// A register (the architecture's register number).
    Reg(u8),
    /// `[entry stack pointer + offset]` (x86: the return address is at offset 0).
    Stack(i32),
}

/// Index of an interned set of constants in [`Sets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SetId(u32);

/// The global a run-time value was read from, when the value is still exactly its content.
pub(crate) const NO_GLOBAL: u32 = u32::MAX;

/// An abstract value. 16 bytes, `Copy`: states are arrays of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Val {
    /// Nothing known.
    Unknown,
    /// One constant.
    Const(u64, How),
    /// One of several constants (2 to [`MAX_SET`] members, interned in [`Sets`]).
    Set(SetId, How),
    /// Derived from a writable global's content at run time: `value` is what the image's
    /// initial content gives, and `global` the RVA read while the value is still exactly that
    /// content ([`NO_GLOBAL`] once arithmetic changed it).
    Runtime(u64, u32),
    /// The value the function received in this parameter (`narrow`: only its low 32 bits).
    Param(ParamLoc, bool),
    /// A stack address: (epoch, offset from the epoch's stack pointer). Epoch 0 is the
    /// function's entry stack pointer.
    Stack(u32, i32),
    /// An address in the image (an RVA): a relocated immediate, a RIP-relative `lea`, an ARM64
    /// `adrp` page (plus `add`). A pointer, never a number such as a tag.
    Addr(i64),
    /// The pointer the loader writes into import slot `n` (an index into the image's imports).
    Import(u16),
}

impl Val {
    /// Whether the value is a constant of the image (one value or a set).
    pub(crate) fn is_constant(self) -> bool {
        matches!(self, Val::Const(..) | Val::Set(..))
    }

    /// The value copied to another place: an immediate becomes propagated.
    pub(crate) fn copied(self) -> Val {
        match self {
            Val::Const(v, h) => Val::Const(v, h.derived()),
            Val::Set(s, h) => Val::Set(s, h.derived()),
            v => v,
        }
    }

    /// The value read through a narrower view (`bytes` < 8): constants are truncated (or
    /// dropped for views under 4 bytes of symbolic values).
    pub(crate) fn view(self, bytes: u8, sets: &mut Sets) -> Val {
        if bytes >= 8 {
            return self;
        }
        let m = mask(bytes);
        match self {
            Val::Const(v, h) => Val::Const(v & m, h),
            Val::Set(..) => sets.map(self, |v| v & m),
            Val::Runtime(v, g) => Val::Runtime(v & m, if bytes >= 4 { g } else { NO_GLOBAL }),
            Val::Param(p, _) if bytes >= 4 => Val::Param(p, true),
            _ => Val::Unknown,
        }
    }
}

/// The low `bytes` bytes.
pub(crate) fn mask(bytes: u8) -> u64 {
    match bytes {
        0 => 0,
        1..=7 => (1u64 << (8 * u32::from(bytes))) - 1,
        _ => u64::MAX,
    }
}

/// Sign-extends the low `bytes` bytes of `v`.
pub(crate) fn sign_extend(v: u64, bytes: u8) -> u64 {
    if bytes >= 8 || bytes == 0 {
        return v;
    }
    let sh = 64 - 8 * u32::from(bytes);
    (((v << sh) as i64) >> sh) as u64
}

/// The sets of constants met during the analysis of one image, interned so that a value stays
/// 16 bytes and equal sets compare equal by id. Members live in one arena; the index maps a
/// hash of the sorted members to the sets with that hash (chained).
#[derive(Default)]
pub(crate) struct Sets {
    arena: Vec<u64>,
    /// (start in `arena`, length, next set with the same hash or `u32::MAX`), by id.
    spans: Vec<(u32, u8, u32)>,
    index: HashMap<u64, u32, std::hash::BuildHasherDefault<PassThrough>>,
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Room for the members of two sets combined, or of an operation on two sets.
const BUF: usize = 4 * MAX_SET;

/// A small stack buffer of constants.
struct Buf {
    v: [u64; BUF],
    n: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { v: [0; BUF], n: 0 }
    }
    /// Appends; false when full.
    fn push(&mut self, x: u64) -> bool {
        if self.n == BUF {
            return false;
        }
        self.v[self.n] = x;
        self.n += 1;
        true
    }
}

fn hash_members(m: &[u64]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &x in m {
        h = (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

impl Sets {
    /// The value with these members: `Const` for one, `Set` for 2..=MAX_SET, `Unknown` for
    /// more (or none).
    pub(crate) fn make(&mut self, mut v: Vec<u64>, how: How) -> Val {
        self.intern(&mut v, how)
    }

    /// [`Sets::make`] on a slice it may reorder.
    fn intern(&mut self, v: &mut [u64], how: How) -> Val {
        v.sort_unstable();
        let mut n = 0;
        for i in 0..v.len() {
            if i == 0 || v[i] != v[n - 1] {
                v[n] = v[i];
                n += 1;
            }
        }
        let v = &v[..n];
        match n {
            0 => Val::Unknown,
            1 => Val::Const(v[0], how),
            n if n > MAX_SET => Val::Unknown,
            _ => {
                let h = hash_members(v);
                let mut id = self.index.get(&h).copied().unwrap_or(u32::MAX);
                let head = id;
                while id != u32::MAX {
                    let (start, len, next) = self.spans[id as usize];
                    if &self.arena[start as usize..start as usize + usize::from(len)] == v {
                        return Val::Set(SetId(id), how);
                    }
                    id = next;
                }
                let new = self.spans.len() as u32;
                self.spans.push((self.arena.len() as u32, n as u8, head));
                self.arena.extend_from_slice(v);
                self.index.insert(h, new);
                Val::Set(SetId(new), how)
            }
        }
    }

    /// The members of a set.
    pub(crate) fn get(&self, id: SetId) -> &[u64] {
        match self.spans.get(id.0 as usize) {
            Some(&(start, len, _)) => {
                &self.arena[start as usize..start as usize + usize::from(len)]
            }
            None => &[],
        }
    }

    /// The constants of `v` (one, or a set's members) and their origin; `None` for any other
    /// value.
    pub(crate) fn constants(&self, v: Val) -> Option<(Vec<u64>, How)> {
        match v {
            Val::Const(c, h) => Some((vec![c], h)),
            Val::Set(s, h) => Some((self.get(s).to_vec(), h)),
            _ => None,
        }
    }

    /// Appends the constants of `v` to `b`; false when `v` has none (or `b` is full).
    fn push_constants(&self, v: Val, b: &mut Buf) -> bool {
        match v {
            Val::Const(c, _) => b.push(c),
            Val::Set(s, _) => self.get(s).iter().all(|&c| b.push(c)),
            _ => false,
        }
    }

    /// `f` applied to every constant of `v` (an operation with an immediate).
    pub(crate) fn map(&mut self, v: Val, f: impl Fn(u64) -> u64) -> Val {
        match v {
            Val::Const(c, h) => Val::Const(f(c), h.derived()),
            Val::Set(s, h) => {
                let mut b = Buf::new();
                for &c in self.get(s) {
                    b.push(f(c));
                }
                let n = b.n;
                self.intern(&mut b.v[..n], h.derived())
            }
            _ => Val::Unknown,
        }
    }

    /// `f` applied to every pair of constants of `a` and `b` (at most [`MAX_SET`] results).
    pub(crate) fn map2(&mut self, a: Val, b: Val, f: impl Fn(u64, u64) -> u64) -> Val {
        let how = |v: Val| match v {
            Val::Const(_, h) | Val::Set(_, h) => Some(h),
            _ => None,
        };
        match (a, b) {
            (Val::Const(x, h1), Val::Const(y, h2)) => Val::Const(f(x, y), h1.combine(h2)),
            _ => {
                let (Some(h1), Some(h2)) = (how(a), how(b)) else {
                    return Val::Unknown;
                };
                let (mut xs, mut ys) = (Buf::new(), Buf::new());
                if !self.push_constants(a, &mut xs) || !self.push_constants(b, &mut ys) {
                    return Val::Unknown;
                }
                let mut out = Buf::new();
                for &x in &xs.v[..xs.n] {
                    for &y in &ys.v[..ys.n] {
                        if !out.push(f(x, y)) {
                            return Val::Unknown;
                        }
                    }
                }
                let n = out.n;
                self.intern(&mut out.v[..n], h1.combine(h2).derived())
            }
        }
    }

    /// The value at a merge of paths carrying `a` and `b`: equal facts stay; constants meet
    /// in a set; anything else is unknown. With `consts` off (a function whose control flow is
    /// not fully known), constants never survive a merge, not even equal ones.
    #[inline]
    pub(crate) fn join(&mut self, a: Val, b: Val, consts: bool) -> Val {
        let constant = |v: Val| matches!(v, Val::Const(..) | Val::Set(..) | Val::Runtime(..));
        if !consts && (constant(a) || constant(b)) {
            return Val::Unknown;
        }
        if a == b {
            return a;
        }
        match (a, b) {
            (Val::Const(x, h1), Val::Const(y, h2)) if x == y => Val::Const(x, h1.combine(h2)),
            (Val::Const(_, h1) | Val::Set(_, h1), Val::Const(_, h2) | Val::Set(_, h2)) => {
                let mut all = Buf::new();
                if !self.push_constants(a, &mut all) || !self.push_constants(b, &mut all) {
                    return Val::Unknown;
                }
                let n = all.n;
                self.intern(&mut all.v[..n], h1.combine(h2).derived())
            }
            _ => Val::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Val>(), 16);
    }

    #[test]
    fn constants_meet_in_a_set_and_sets_are_bounded() {
        let mut s = Sets::default();
        let a = Val::Const(1, How::Immediate);
        let b = Val::Const(2, How::Immediate);
        let ab = s.join(a, b, true);
        assert!(matches!(ab, Val::Set(..)));
        assert_eq!(s.constants(ab).unwrap().0, vec![1, 2]);
        // The same members intern to the same set.
        assert_eq!(s.join(b, a, true), ab);
        // Equal constants stay one constant; without known control flow nothing survives.
        assert_eq!(s.join(a, a, true), a);
        assert_eq!(s.join(a, a, false), Val::Unknown);
        // A constant and a parameter are unknown together.
        assert_eq!(
            s.join(a, Val::Param(ParamLoc::Reg(1), false), true),
            Val::Unknown
        );
        let many: Vec<u64> = (0..=MAX_SET as u64).collect();
        assert_eq!(s.make(many, How::Propagated), Val::Unknown);
        let x = s.map(ab, |v| v + 10);
        assert_eq!(s.constants(x).unwrap().0, vec![11, 12]);
        let y = s.map2(ab, Val::Const(4, How::Immediate), |p, q| p * q);
        assert_eq!(s.constants(y).unwrap().0, vec![4, 8]);
    }
}
