//! x86 and x64: what the shared engine needs from this architecture.
//!
//! * **Decoding** with iced-x86. An immediate whose field a base relocation covers is marked:
//!   it is an address (`push offset g`), not a number.
//! * **Finding the code to analyse** (chosen for speed; a benchmark runs thousands of
//!   drivers): executable sections are scanned once for operands naming a pool import slot
//!   (x64: a RIP-relative `disp32` resolving to it; x86: its absolute address). Only functions
//!   holding a hit, or calling a pool import thunk, are decoded. Function bounds come from
//!   `.pdata`; otherwise (x86, x64 leaf functions) from the nearest preceding known start (call
//!   target, export, entry point), cut at code that follows a `ret`/`jmp`/`int3` and is not a
//!   branch target.
//! * **The transfer function** over registers rax..r15 (sub-registers as views), the stack
//!   (every push, pop, `pushfd`, `pushad`, `enter`, `leave`, string instruction and `esp`
//!   arithmetic tracked exactly, so extra pushes never shift arguments and a `rep movs`
//!   clobbers only `ecx`, `esi`, `edi` and the memory at `edi`), the flags of the last
//!   comparison, and conditional moves and `setcc` through the engine's select.
//! * **The calling convention** (`pool-apis-and-rules.md` §1; Microsoft Learn, "x64 calling
//!   convention" and "Argument passing and naming conventions"): x64 arguments in rcx, rdx, r8,
//!   r9 then `[rsp+20h]`…, rax rcx rdx r8–r11 volatile, rbx rbp rsi rdi r12–r15 preserved, the
//!   callee owning its 32-byte home area; x86 stdcall and cdecl arguments on the stack
//!   (fastcall's first two in ecx and edx, which are therefore parameters at every entry),
//!   eax ecx edx volatile, ebx esi edi ebp preserved. A pool API pops its declared arguments
//!   (stdcall); a call whose stack adjustment is not known starts a new stack epoch. A call to
//!   a function that does not return ends the path.
//!
//! Nothing here panics on hostile bytes: all reads are bounds-checked, all arithmetic wraps.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use iced_x86::{
    ConditionCode, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register,
};

use super::engine::bounds::{MAX_FUNCTION, MAX_INSNS, MAX_TABLE_ENTRIES};
use super::engine::state::{FlagOp, Flags, State, NO_REG};
use super::engine::value::{mask, sign_extend, How, ParamLoc, Val, NO_GLOBAL};
use super::engine::{Arch, Cc, Cond, Engine, Extent, Flow, GlobalEffect};
use super::site::{arg_location, ArgLocation, CallSite, Reach};
use crate::pe::{Image, Machine};
use crate::pool::apis::ApiSpec;

/// Register numbers (iced's `full_register` order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15).
const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RSP: usize = 4;
const RBP: usize = 5;
const RSI: usize = 6;
const RDI: usize = 7;
const R8: usize = 8;
const R9: usize = 9;
/// x64 argument registers in order.
const X64_ARGS: [usize; 4] = [RCX, RDX, R8, R9];
const X64_PARAMS: &[u8] = &[RCX as u8, RDX as u8, R8 as u8, R9 as u8];
/// x86 fastcall passes its first two arguments in ecx and edx.
const X86_PARAMS: &[u8] = &[RCX as u8, RDX as u8];
/// Registers a call may clobber: x64 volatile rax rcx rdx r8–r11; x86 eax ecx edx.
const X64_VOLATILE: [usize; 7] = [RAX, RCX, RDX, R8, R9, 10, 11];
const X86_VOLATILE: [usize; 3] = [RAX, RCX, RDX];
/// Stack epochs named after calls: 1 + the instruction's index in its function.
const EPOCH_CALL: u32 = 1;

/// Finds pool-API call sites in x86 and x64 code.
pub(super) fn analyze(image: &Image, data: &[u8], shortcut: bool) -> Vec<CallSite> {
    let arch = X86 {
        x64: image.machine == Machine::X64,
        thunks: RefCell::new(HashMap::new()),
        rel32: OnceCell::new(),
        cuts: RefCell::new(HashMap::new()),
        starts: RefCell::new(HashMap::new()),
        info: RefCell::new(InstructionInfoFactory::new()),
    };
    Engine::new(image, data, arch, shortcut).run()
}

/// The architecture's per-image data.
pub(crate) struct X86 {
    x64: bool,
    /// Import thunks of pool APIs: thunk RVA → import index.
    thunks: RefCell<HashMap<u32, u16>>,
    /// Every `E8`/`E9` rel32 of the code, found in one pass on first use (an x64 driver
    /// calling its imports directly never needs it).
    rel32: OnceCell<Rel32>,
    /// Function starts of heuristic regions, by region.
    cuts: RefCell<HashMap<(u32, u32), Vec<u32>>>,
    /// The known function starts of each executable section ([`starts_in`]), sorted;
    /// built per section when heuristic function bounds are needed there.
    starts: RefCell<HashMap<u32, std::rc::Rc<Vec<u32>>>>,
    info: RefCell<InstructionInfoFactory>,
}

/// The direct calls and jumps of the code: byte-level, so some entries are not real
/// instructions (every use is confirmed by decoding).
struct Rel32 {
    /// (target, source, is_call) of every rel32 whose target lies in an executable section,
    /// in source order.
    raw: Vec<(u32, u32, bool)>,
    /// The same sorted by target, built when needed (images without `.pdata`).
    by_target: OnceCell<Vec<(u32, u32, bool)>>,
}

/// A decoded instruction and whether a base relocation covers its immediate (an address).
#[derive(Clone, Copy)]
pub(crate) struct Insn {
    ins: Instruction,
    rva: u32,
    imm_addr: bool,
}

super::engine::pool::pooled!(Insn);

type E<'a, 'b> = &'a Engine<'b, X86>;

impl Arch for X86 {
    type Insn = Insn;

    fn sp(_: E) -> usize {
        RSP
    }

    fn ptr(e: E) -> u8 {
        if e.arch.x64 {
            8
        } else {
            4
        }
    }

    /// x86 `[esp+4]`, x64 `[rsp+28h]` (after the return address and the 32-byte home area).
    fn param_base(e: E) -> i32 {
        if e.arch.x64 {
            0x28
        } else {
            4
        }
    }

    fn param_regs(e: E) -> &'static [u8] {
        if e.arch.x64 {
            X64_PARAMS
        } else {
            X86_PARAMS
        }
    }

    fn decode(e: E, start: u32, end: u32, out: &mut Vec<Insn>) {
        out.clear();
        let Some(bytes) = e.image.bytes_at(e.data, start) else {
            return;
        };
        let n = (end.saturating_sub(start).min(MAX_FUNCTION) as usize).min(bytes.len());
        let ip = e.image.image_base.wrapping_add(u64::from(start));
        let mut dec = Decoder::with_ip(bitness(e), &bytes[..n], ip, DecoderOptions::NONE);
        let relocs = !e.relocs.is_empty() && e.relocs.any_in(start, start.saturating_add(n as u32));
        // Instructions average under four bytes; room for one per two bytes never regrows.
        out.reserve((n / 2 + 1).min(MAX_INSNS));
        let mut ins = Instruction::default();
        while dec.can_decode() && out.len() < MAX_INSNS {
            dec.decode_out(&mut ins);
            let mut imm_addr = false;
            if relocs {
                let at = (ins.ip().wrapping_sub(e.image.image_base)) as u32;
                let len = ins.len() as u32;
                if e.relocs.any_in(at, at.wrapping_add(len)) {
                    let c = dec.get_constant_offsets(&ins);
                    imm_addr = c.has_immediate()
                        && c.immediate_size() >= 4
                        && e.relocs
                            .covers(at.wrapping_add(c.immediate_offset() as u32));
                }
            }
            let rva = rva_of_ip(e, ins.ip());
            out.push(Insn { ins, rva, imm_addr });
        }
    }

    fn rva(i: &Insn) -> u32 {
        i.rva
    }

    fn flow(e: E, i: &Insn) -> Flow {
        let ins = &i.ins;
        if ins.is_invalid() {
            return Flow::Stop;
        }
        let target = || e.rva_of(ins.near_branch_target());
        match ins.flow_control() {
            FlowControl::Next => Flow::Next,
            FlowControl::Call => {
                let t = target();
                if t.is_some_and(|t| e.no_return_call(t, |t| thunk_no_return(e, t))) {
                    Flow::Stop
                } else {
                    Flow::Call { target: t }
                }
            }
            FlowControl::IndirectCall => {
                if fixed_slot(e, ins)
                    .and_then(|r| e.imports.at(r))
                    .and_then(|s| e.imports.get(s))
                    .is_some_and(|s| s.no_return)
                {
                    Flow::Stop
                } else {
                    Flow::Call { target: None }
                }
            }
            FlowControl::ConditionalBranch => match target() {
                Some(t) => Flow::Branch { target: t },
                None => Flow::Next,
            },
            FlowControl::UnconditionalBranch => Flow::Jump { target: target() },
            // A jump table (indexed memory, or a computed register) hides its targets; a
            // `jmp [slot]` tail call does not.
            FlowControl::IndirectBranch
                if ins.op0_kind() == OpKind::Register || ins.memory_index() != Register::None =>
            {
                Flow::Table
            }
            FlowControl::IndirectBranch => Flow::Jump { target: None },
            FlowControl::Return => Flow::Return,
            FlowControl::Interrupt | FlowControl::Exception | FlowControl::XbeginXabortXend => {
                Flow::Stop
            }
        }
    }

    /// MSVC's 32-bit switch, `jmp dword ptr [reg*4 + table]` (x64: [`x64_table_targets`]):
    /// the table's address is an absolute one that the loader relocates, and so is each entry
    /// (a code address of the function); the table ends at the first dword no base relocation
    /// covers (the index byte table or the next function's code). Extra entries only add edges,
    /// which keeps the analysis sound; an entry outside the function makes the whole table
    /// unknown (`Cfg`).
    fn table_targets(e: E, insns: &[Insn], k: usize) -> Option<Vec<u32>> {
        if e.arch.x64 {
            return x64_table_targets(e, insns, k);
        }
        let i = &insns[k];
        let ins = &i.ins;
        if ins.op0_kind() != OpKind::Memory
            || ins.memory_base() != Register::None
            || ins.memory_index() == Register::None
            || ins.memory_index_scale() != 4
            || ins.len() < 4
        {
            return None;
        }
        // No immediate: the displacement is the encoding's last four bytes.
        if !e.relocs.covers(i.rva.wrapping_add(ins.len() as u32 - 4)) {
            return None;
        }
        let table = rva_of_ip(e, u64::from(ins.memory_displacement32()));
        let mut targets = Vec::new();
        for j in 0..MAX_TABLE_ENTRIES {
            e.take_table_reads(1)?;
            let at = table.checked_add(4 * j)?;
            if !e.relocs.covers(at) {
                return (!targets.is_empty()).then_some(targets);
            }
            targets.push(rva_of_ip(e, u64::from(e.image.read_u32(e.data, at)?)));
        }
        None
    }

    fn cond(i: &Insn) -> Option<Cond> {
        let ins = &i.ins;
        if ins.is_jcx_short() {
            let bytes = match ins.mnemonic() {
                Mnemonic::Jcxz => 2,
                Mnemonic::Jecxz => 4,
                _ => 8,
            };
            return Some(Cond::Zero {
                reg: RCX as u8,
                bytes,
                zero: true,
            });
        }
        if ins.is_loop() || ins.is_loopcc() {
            return None;
        }
        cc(ins.condition_code()).map(Cond::Flags)
    }

    fn step(e: E, st: &mut State, i: &Insn, k: u32) -> bool {
        let go = step_inner(e, st, i, k);
        if !matches!(st.regs[RSP], Val::Stack(..)) {
            // Keep the stack pointer a stack address (after `and esp, -8`, or `mov esp, ebp`
            // with an unknown ebp): a new epoch, so later pushes are still tracked.
            st.regs[RSP] = Val::Stack(EPOCH_CALL + k, 0);
        }
        go
    }

    fn may_transfer(e: E, i: &Insn) -> bool {
        let ins = &i.ins;
        match ins.flow_control() {
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                if ins.op0_kind() != OpKind::Memory {
                    return true;
                }
                let seg = ins.memory_segment();
                if seg == Register::FS || seg == Register::GS {
                    return false;
                }
                let base = ins.memory_base();
                if !(base.is_ip()
                    || (base == Register::None && ins.memory_index() == Register::None))
                {
                    return true;
                }
                // No register enters the address: a transfer exactly when it is a pool slot.
                fixed_slot(e, ins)
                    .and_then(|r| e.imports.pool_api_at(r))
                    .is_some()
            }
            FlowControl::Call | FlowControl::UnconditionalBranch => match ins.op0_kind() {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => e
                    .rva_of(ins.near_branch_target())
                    .is_some_and(|t| e.arch.thunks.borrow().contains_key(&t)),
                _ => true,
            },
            _ => false,
        }
    }

    fn fixed_transfer(i: &Insn) -> bool {
        let ins = &i.ins;
        match ins.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => true,
            OpKind::Memory => {
                let base = ins.memory_base();
                ins.memory_index() == Register::None && (base.is_ip() || base == Register::None)
            }
            _ => false,
        }
    }

    fn transfer(
        e: E,
        st: &State,
        i: &Insn,
        first_of_root: bool,
    ) -> Option<(&'static ApiSpec, Reach)> {
        let ins = &i.ins;
        let (api, reach) = transfer_target(e, st, ins)?;
        // An import thunk's own `jmp [slot]` is not a call site (its callers are), even when
        // a heuristic region swept over the thunk table.
        if ins.flow_control() == FlowControl::IndirectBranch && ins.op0_kind() == OpKind::Memory {
            let rva = rva_of_ip(e, ins.ip());
            if first_of_root || e.arch.thunks.borrow().contains_key(&rva) || standalone_jump(e, rva)
            {
                return None;
            }
        }
        Some((api, reach))
    }

    fn arg(e: E, st: &State, spec: &ApiSpec, index: usize, tail: bool) -> Val {
        let machine = if e.arch.x64 {
            Machine::X64
        } else {
            Machine::X86
        };
        let Some(loc) = arg_location(machine, spec, index) else {
            return Val::Unknown;
        };
        let p = spec.params[index - 1];
        let ptr = Self::ptr(e);
        let bias = if tail { i32::from(ptr) } else { 0 };
        match loc {
            ArgLocation::Register(r) => X64_ARGS
                .get(usize::from(r))
                .map_or(Val::Unknown, |&n| st.regs[n]),
            ArgLocation::Stack(off) => {
                let Val::Stack(ep, o) = st.regs[RSP] else {
                    return Val::Unknown;
                };
                let at = o.wrapping_add(off as i32).wrapping_add(bias);
                let pb = Self::param_base(e);
                let mut sets = e.sets.borrow_mut();
                if p.wide && !e.arch.x64 {
                    // `push 0; push 40h` (gcc, `toolchains-and-patterns.md` §2.2): the low
                    // dword at the lower address; two immediates are still an immediate.
                    let lo = st.load(ep, at, 4, pb, ptr, &mut sets);
                    let hi = st.load(ep, at.wrapping_add(4), 4, pb, ptr, &mut sets);
                    match (lo, hi) {
                        (Val::Const(l, h1), Val::Const(h, h2)) => {
                            let how = if h1 == How::Immediate && h2 == How::Immediate {
                                How::Immediate
                            } else {
                                h1.combine(h2)
                            };
                            Val::Const((h << 32) | (l & 0xffff_ffff), how)
                        }
                        _ => Val::Unknown,
                    }
                } else {
                    let size = if p.wide { 8 } else { 4 };
                    st.load(ep, at, size, pb, ptr, &mut sets)
                }
            }
        }
    }

    fn caller_value(e: E, st: &State, p: ParamLoc, is_call: bool) -> Val {
        match p {
            ParamLoc::Reg(n) => st.get(usize::from(n)),
            ParamLoc::Stack(off) => match st.regs[RSP] {
                Val::Stack(ep, o) => {
                    let ret = if is_call { i32::from(Self::ptr(e)) } else { 0 };
                    let at = o.wrapping_add(off).wrapping_sub(ret);
                    let mut sets = e.sets.borrow_mut();
                    st.load(ep, at, 4, Self::param_base(e), Self::ptr(e), &mut sets)
                }
                _ => Val::Unknown,
            },
        }
    }

    fn global_effect(e: E, st: &State, i: &Insn, global: u32) -> GlobalEffect {
        let ins = &i.ins;
        if ins.is_invalid() {
            return GlobalEffect::None;
        }
        let va = e.image.image_base.wrapping_add(u64::from(global));
        // The address as an immediate (`push offset g`, `mov eax, offset g`): taken.
        let immediate_address = (0..ins.op_count()).any(|n| {
            matches!(
                ins.op_kind(n),
                OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64
            ) && ins.immediate(n) == va
        });
        if immediate_address {
            return GlobalEffect::Clobber;
        }
        if !(0..ins.op_count()).any(|n| ins.op_kind(n) == OpKind::Memory) {
            return GlobalEffect::None;
        }
        let MemAddr::Abs(at) = mem_addr(e, st, ins) else {
            return GlobalEffect::None;
        };
        let Some(at) = e.rva_of(at) else {
            return GlobalEffect::None;
        };
        let len = (ins.memory_size().size() as u32).max(1);
        if at >= global.wrapping_add(4) || at.wrapping_add(len) <= global {
            return GlobalEffect::None;
        }
        if ins.mnemonic() == Mnemonic::Lea {
            return GlobalEffect::Clobber;
        }
        let written = e
            .arch
            .info
            .borrow_mut()
            .info(ins)
            .used_memory()
            .iter()
            .any(|m| writes(m.access()));
        if !written {
            return GlobalEffect::None;
        }
        let constant = ins.mnemonic() == Mnemonic::Mov
            && ins.op0_kind() == OpKind::Memory
            && at == global
            && len == 4
            && ins.op1_kind() == OpKind::Immediate32
            && !i.imm_addr;
        if constant {
            GlobalEffect::Store(u64::from(ins.immediate32()))
        } else {
            GlobalEffect::Clobber
        }
    }

    fn discover(e: E) -> Vec<Extent> {
        let refs = scan_slot_refs(e);
        if refs.is_empty() {
            return Vec::new();
        }
        // Classify `jmp [slot]`: a thunk if some rel32 reaches it; an unused thunk if it stands
        // alone (lld emits a thunk per import, used or not: `toolchains-and-patterns.md` §1.5);
        // otherwise a tail call inside a function.
        // With `.pdata` every function is known, so only the calls of these jumps are
        // looked for (one pass); without it the heuristic function bounds need every call
        // target anyway.
        // A jump strictly inside a `.pdata` function is that function's tail call: import
        // thunks are functions of their own (or have no unwind data at all), and nothing calls
        // into the middle of a function. Only the other jumps need their callers.
        let inside_function = |t: u32| {
            e.image
                .function_of(t)
                .is_some_and(|f| f.begin != t && f.begin != t.wrapping_sub(1))
        };
        let mut jumps: Vec<u32> = refs
            .iter()
            .filter_map(|r| r.1)
            .filter(|&t| !inside_function(t))
            .flat_map(|t| [t, t.wrapping_sub(1)])
            .filter(|&t| t != u32::MAX)
            .collect();
        jumps.sort_unstable();
        jumps.dedup();
        let targeted = !e.image.functions.is_empty();
        let jump_callers: HashMap<u32, Vec<u32>> = if jumps.is_empty() {
            HashMap::new()
        } else if targeted {
            let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
            for (t, src, _) in rel_scan(e, &jumps) {
                m.entry(t).or_default().push(src);
            }
            m
        } else {
            jumps
                .iter()
                .map(|&t| (t, rel_callers(e, t).into_iter().map(|c| c.0).collect()))
                .filter(|(_, v): &(u32, Vec<u32>)| !v.is_empty())
                .collect()
        };
        let mut roots: Vec<u32> = Vec::new();
        for &(pos, jmp_at, slot) in &refs {
            if let Some(t) = jmp_at {
                if let Some(t) = [t, t.wrapping_sub(1)]
                    .into_iter()
                    .find(|&t| t != u32::MAX && jump_callers.contains_key(&t))
                {
                    e.arch.thunks.borrow_mut().insert(t, slot);
                    continue;
                }
                if standalone_jump(e, t) {
                    continue;
                }
            }
            roots.push(pos);
        }
        let thunk_list: Vec<u32> = e.arch.thunks.borrow().keys().copied().collect();
        for t in thunk_list {
            if let Some(srcs) = jump_callers.get(&t) {
                roots.extend(srcs.iter().copied());
            }
        }
        let mut bounds: Vec<(u32, u32)> = roots
            .into_iter()
            .filter_map(|p| function_bounds(e, p))
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds
            .into_iter()
            .map(|(begin, end)| Extent {
                begin,
                end,
                entries: vec![begin],
            })
            .collect()
    }

    fn extent_of(e: E, rva: u32) -> Option<Extent> {
        function_bounds(e, rva).map(|(begin, end)| Extent {
            begin,
            end,
            entries: vec![begin],
        })
    }

    fn callers(e: E, targets: &[u32]) -> HashMap<u32, Vec<(u32, bool)>> {
        let mut out: HashMap<u32, Vec<(u32, bool)>> = HashMap::new();
        for (t, src, is_call) in rel_scan(e, targets) {
            out.entry(t).or_default().push((src, is_call));
        }
        out
    }
}

fn bitness(e: E) -> u32 {
    if e.arch.x64 {
        64
    } else {
        32
    }
}

/// The RVA of an instruction pointer (code of the image lies below 4 GiB of RVA).
fn rva_of_ip(e: E, ip: u64) -> u32 {
    ip.wrapping_sub(e.image.image_base) as u32
}

/// The RVA a memory operand names without any register (RIP-relative or absolute).
fn fixed_slot(e: E, ins: &Instruction) -> Option<u32> {
    if ins.op0_kind() != OpKind::Memory {
        return None;
    }
    let base = ins.memory_base();
    let va = if base.is_ip() {
        ins.memory_displacement64()
    } else if base == Register::None && ins.memory_index() == Register::None {
        if e.arch.x64 {
            ins.memory_displacement64()
        } else {
            u64::from(ins.memory_displacement32())
        }
    } else {
        return None;
    };
    e.rva_of(va)
}

/// Whether `target` is an import thunk (`jmp [slot]`) of a function that does not return.
fn thunk_no_return(e: E, target: u32) -> bool {
    let Some(b) = e.image.bytes_at(e.data, target) else {
        return false;
    };
    let (at, opcode) = match b {
        [0xff, 0x25, ..] => (2usize, 2u32),
        [0x48, 0xff, 0x25, ..] => (3, 3),
        _ => return false,
    };
    let Some(d) = b.get(at..at + 4) else {
        return false;
    };
    let d = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    let slot = if e.arch.x64 {
        target.wrapping_add(opcode + 4).wrapping_add(d)
    } else {
        match e.rva_of(u64::from(d)) {
            Some(r) => r,
            None => return false,
        }
    };
    e.imports
        .at(slot)
        .and_then(|i| e.imports.get(i))
        .is_some_and(|s| s.no_return)
}

fn cc(c: ConditionCode) -> Option<Cc> {
    Some(match c {
        ConditionCode::None => return None,
        ConditionCode::o => Cc::V,
        ConditionCode::no => Cc::Nv,
        ConditionCode::b => Cc::C,
        ConditionCode::ae => Cc::Nc,
        ConditionCode::e => Cc::Z,
        ConditionCode::ne => Cc::Nz,
        ConditionCode::be => Cc::CorZ,
        ConditionCode::a => Cc::NcNz,
        ConditionCode::s => Cc::N,
        ConditionCode::ns => Cc::Nn,
        ConditionCode::p | ConditionCode::np => Cc::Opaque,
        ConditionCode::l => Cc::Lt,
        ConditionCode::ge => Cc::Ge,
        ConditionCode::le => Cc::Le,
        ConditionCode::g => Cc::Gt,
    })
}

// ----- discovery ------------------------------------------------------------------------------

/// Byte scan of executable sections for operands naming a pool import slot. Returns
/// (operand position, RVA of a `jmp [slot]` if the bytes before it are `FF 25`, import index).
fn scan_slot_refs(e: E) -> Vec<(u32, Option<u32>, u16)> {
    let mut out = Vec::new();
    let (lo, hi) = e.imports.pool_bounds();
    if lo > hi {
        return out;
    }
    let span = hi.wrapping_sub(lo);
    let x64 = e.arch.x64;
    let base = e.image.image_base;
    // The low 32 bits of the slot address an x86 operand would hold (filter only: the exact
    // test follows).
    let base32 = base as u32;
    for &(sec, bytes) in &e.code {
        if bytes.len() < 4 {
            continue;
        }
        let mut at = |i: usize| {
            let d = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            let pos = sec.rva.wrapping_add(i as u32);
            let slot = if x64 {
                // RIP-relative: the slot is relative to the end of the disp32 (none of the
                // instructions that use a slot carry an immediate after it).
                pos.wrapping_add(4).wrapping_add(d)
            } else {
                if d.wrapping_sub(base32).wrapping_sub(lo) > span {
                    return;
                }
                match u64::from(d).checked_sub(base) {
                    Some(r) if r <= u64::from(u32::MAX) => r as u32,
                    _ => return,
                }
            };
            if slot.wrapping_sub(lo) > span || e.imports.pool_api_at(slot).is_none() {
                return;
            }
            let Some(idx) = e.imports.at(slot) else {
                return;
            };
            let jmp = (i >= 2 && bytes[i - 2] == 0xff && bytes[i - 1] == 0x25)
                .then(|| pos.wrapping_sub(2));
            out.push((pos, jmp, idx));
        };
        if x64 {
            // A RIP-relative operand is encoded only as ModRM mod=00 rm=101 followed by its
            // disp32 (Intel SDM vol. 2, §2.2.1.6): only positions after a byte with
            // `b & 0xC7 == 0x05` can hold one. They are found eight bytes at a time (a
            // zero-byte test on `(w & 0xC7..) ^ 0x05..`, which may flag a few extra bytes:
            // each flagged byte is checked exactly).
            const M: u64 = 0xC7C7_C7C7_C7C7_C7C7;
            const F: u64 = 0x0505_0505_0505_0505;
            const L: u64 = 0x0101_0101_0101_0101;
            const H: u64 = 0x8080_8080_8080_8080;
            let n = bytes.len() - 4;
            let mut check = |k: usize| {
                if k < n && bytes[k] & 0xC7 == 0x05 {
                    at(k + 1);
                }
            };
            let mut i = 0;
            while i + 8 <= n {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[i..i + 8]);
                let w = u64::from_le_bytes(word);
                let x = (w & M) ^ F;
                let mut z = x.wrapping_sub(L) & !x & H;
                while z != 0 {
                    check(i + (z.trailing_zeros() / 8) as usize);
                    z &= z - 1;
                }
                i += 8;
            }
            for k in i..n {
                check(k);
            }
            continue;
        }
        // x86: an absolute address may sit in any operand (disp32, moffs, imm32). The range
        // test of `at` on 32 positions at a time, without branches: only a block with a hit
        // is looked at position by position.
        let n = bytes.len() - 3;
        let mut i = 0;
        while i + 32 <= n {
            let chunk = &bytes[i..i + 35];
            let add0 = base32.wrapping_neg();
            let mut hit = false;
            for j in 0..32 {
                let d = u32::from_le_bytes([chunk[j], chunk[j + 1], chunk[j + 2], chunk[j + 3]]);
                hit |= d.wrapping_add(add0).wrapping_sub(lo) <= span;
            }
            if hit {
                for j in i..i + 32 {
                    at(j);
                }
            }
            i += 32;
        }
        for j in i..n {
            at(j);
        }
    }
    out
}

/// The rel32 index of the image (see [`Rel32`]).
fn rel32<'a>(e: &'a Engine<'_, X86>) -> &'a Rel32 {
    e.arch.rel32.get_or_init(|| index_rel32(e))
}

fn index_rel32(e: E) -> Rel32 {
    let mut raw = Vec::new();
    for &(sec, bytes) in &e.code {
        if bytes.len() < 5 {
            continue;
        }
        let code = &e.code;
        // Opcode bytes found with memchr's vectorised search: E8/E9 are common in code, but
        // far rarer than the bytes between them.
        for i in memchr::memchr2_iter(0xe8, 0xe9, &bytes[..bytes.len() - 4]) {
            let d = u32::from_le_bytes([bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4]]);
            let src = sec.rva.wrapping_add(i as u32);
            let target = src.wrapping_add(5).wrapping_add(d);
            if code
                .iter()
                .any(|(s, b)| target >= s.rva && target - s.rva < b.len() as u32)
            {
                raw.push((target, src, bytes[i] == 0xe8));
            }
        }
    }
    Rel32 {
        raw,
        by_target: OnceCell::new(),
    }
}

/// The known function starts in the executable section at `sec_rva` (`sec_end` its end):
/// with `.pdata`, the begins and ends of its functions (code outside them lies in the gaps
/// between), else every call target; and exports and the entry point.
fn starts_in(e: E, sec_rva: u32, sec_end: u32) -> std::rc::Rc<Vec<u32>> {
    if let Some(s) = e.arch.starts.borrow().get(&sec_rva) {
        return s.clone();
    }
    let inside = |t: u32| t >= sec_rva && t < sec_end;
    let mut starts: Vec<u32> = if e.image.functions.is_empty() {
        rel32(e)
            .raw
            .iter()
            .filter(|x| x.2 && inside(x.0))
            .map(|x| x.0)
            .collect()
    } else {
        e.image
            .functions
            .iter()
            .map(|f| f.end)
            .filter(|&t| inside(t))
            .collect()
    };
    starts.extend(
        e.image
            .functions
            .iter()
            .map(|f| f.begin)
            .filter(|&t| inside(t)),
    );
    starts.extend(e.image.exports.iter().map(|x| x.rva).filter(|&t| inside(t)));
    if inside(e.image.entry_point) {
        starts.push(e.image.entry_point);
    }
    starts.sort_unstable();
    starts.dedup();
    let starts = std::rc::Rc::new(starts);
    e.arch.starts.borrow_mut().insert(sec_rva, starts.clone());
    starts
}

/// The rel32 whose target is one of `targets` (sorted), as (target, source, is_call), in
/// source order.
fn rel_scan(e: E, targets: &[u32]) -> Vec<(u32, u32, bool)> {
    let (Some(&lo), Some(&hi)) = (targets.first(), targets.last()) else {
        return Vec::new();
    };
    rel32(e)
        .raw
        .iter()
        .filter(|r| r.0 >= lo && r.0 <= hi && targets.binary_search(&r.0).is_ok())
        .copied()
        .collect()
}

fn rel_callers(e: E, target: u32) -> Vec<(u32, bool)> {
    let r = rel32(e);
    let rel = r.by_target.get_or_init(|| {
        let mut v = r.raw.clone();
        v.sort_unstable();
        v
    });
    let i = rel.partition_point(|r| r.0 < target);
    rel[i..]
        .iter()
        .take_while(|r| r.0 == target)
        .map(|r| (r.1, r.2))
        .collect()
}

/// Whether a `jmp [slot]` at `t` nobody calls is an unused import thunk rather than a tail
/// call inside a function: it starts a `.pdata` function of its own, or has no function around
/// it and is preceded by padding, another thunk, or the section start.
fn standalone_jump(e: E, t: u32) -> bool {
    if let Some(f) = e.image.function_of(t) {
        return f.begin == t;
    }
    let Some(&(sec, bytes)) = e
        .code
        .iter()
        .find(|(s, b)| t >= s.rva && t - s.rva < b.len() as u32)
    else {
        return true;
    };
    let i = (t - sec.rva) as usize;
    if i == 0 || matches!(bytes[i - 1], 0xcc | 0x90 | 0xc3) {
        return true;
    }
    // A run of thunks: `FF 25 disp32` (6 bytes), possibly padded to 8 with two `nop`s.
    let thunk_at = |j: usize| bytes.get(j..j + 2) == Some(&[0xff, 0x25][..]);
    (i >= 6 && thunk_at(i - 6)) || (i >= 8 && thunk_at(i - 8))
}

/// The bounds of the function containing `rva`: `.pdata`, else the heuristic of the module
/// documentation.
fn function_bounds(e: E, rva: u32) -> Option<(u32, u32)> {
    if let Some(f) = e.image.function_of(rva) {
        return Some((f.begin, f.end.min(f.begin.saturating_add(MAX_FUNCTION))));
    }
    let &(sec, bytes) = e
        .code
        .iter()
        .find(|(s, b)| rva >= s.rva && rva - s.rva < b.len() as u32)?;
    let sec_end = sec.rva.wrapping_add(bytes.len() as u32);
    let starts = starts_in(e, sec.rva, sec_end);
    let i = starts.partition_point(|&s| s <= rva);
    let mut lo = i
        .checked_sub(1)
        .map(|j| starts[j])
        .filter(|&s| s >= sec.rva)
        .unwrap_or(sec.rva);
    if rva - lo > MAX_FUNCTION / 4 {
        lo = rva - MAX_FUNCTION / 4;
    }
    let hi = starts
        .get(i)
        .copied()
        .filter(|&s| s <= sec_end)
        .unwrap_or(sec_end)
        .min(rva.saturating_add(MAX_FUNCTION / 4));
    let cached = e.arch.cuts.borrow().get(&(lo, hi)).cloned();
    let cuts = match cached {
        Some(c) => c,
        None => {
            let c = region_cuts(e, lo, hi);
            e.arch.cuts.borrow_mut().insert((lo, hi), c.clone());
            c
        }
    };
    let j = cuts.partition_point(|&c| c <= rva);
    let start = cuts[j.checked_sub(1)?];
    let end = cuts.get(j).copied().unwrap_or(hi);
    Some((start, end))
}

/// The function starts in the heuristic region [`lo`, `hi`) (see [`function_bounds`]),
/// beginning with `lo`.
fn region_cuts(e: E, lo: u32, hi: u32) -> Vec<u32> {
    // Decode the region and cut it at code that follows an unconditional transfer (or
    // int3/nop padding) and that no branch in the region targets.
    let mut insns = Vec::new();
    X86::decode(e, lo, hi, &mut insns);
    let mut targets: Vec<u64> = insns
        .iter()
        .map(|i| &i.ins)
        .filter(|i| {
            matches!(
                i.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            )
        })
        .map(|i| i.near_branch_target())
        .collect();
    targets.sort_unstable();
    // A cut needs more than "follows a `ret`": MSVC places SEH filters and handlers
    // (`xor eax,eax; inc eax; ret` then `mov esp,[ebp-18h]`) straight after their function's
    // code. So the code must also follow padding, be a known start, or open with a prologue
    // (`mov edi,edi`, `push ebp`).
    let starts = e
        .code
        .iter()
        .find(|(s, b)| lo >= s.rva && lo - s.rva < b.len() as u32)
        .map(|(s, b)| starts_in(e, s.rva, s.rva.wrapping_add(b.len() as u32)))
        .unwrap_or_default();
    let mut cuts = vec![lo];
    let mut after_end = false;
    let mut padded = false;
    for ins in insns.iter().map(|i| &i.ins) {
        let pad = matches!(ins.mnemonic(), Mnemonic::Int3 | Mnemonic::Nop);
        let r = rva_of_ip(e, ins.ip());
        if after_end && pad {
            padded = true;
            continue;
        }
        if after_end && targets.binary_search(&ins.ip()).is_err() && r != lo {
            let prologue = (ins.mnemonic() == Mnemonic::Mov
                && ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == Register::EDI
                && ins.op1_register() == Register::EDI)
                || (ins.mnemonic() == Mnemonic::Push
                    && ins.op0_kind() == OpKind::Register
                    && matches!(ins.op0_register(), Register::EBP | Register::RBP));
            if padded || prologue || starts.binary_search(&r).is_ok() {
                cuts.push(r);
            }
        }
        padded = ins.mnemonic() == Mnemonic::Int3;
        after_end = matches!(
            ins.flow_control(),
            FlowControl::Return | FlowControl::UnconditionalBranch | FlowControl::IndirectBranch
        ) || ins.mnemonic() == Mnemonic::Int3
            || ins.is_invalid();
    }
    cuts
}

// ----- the transfer function -----------------------------------------------------------------

/// Which part of a full register an operand names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Full,
    Low(u8),
    High8,
}

fn reg_part(e: E, r: Register) -> Option<(usize, Part)> {
    let full = r.full_register();
    let n = full.number().checked_sub(Register::RAX.number())?;
    if n >= 16 {
        return None;
    }
    let size = r.size() as u8;
    let part = match r {
        Register::AH | Register::BH | Register::CH | Register::DH => Part::High8,
        _ if size >= X86::ptr(e) => Part::Full,
        _ => Part::Low(size),
    };
    Some((n, part))
}

fn get_reg(e: E, st: &State, r: Register) -> Val {
    let Some((n, part)) = reg_part(e, r) else {
        return Val::Unknown;
    };
    let v = st.regs[n];
    match part {
        Part::Full => v,
        Part::Low(z) => super::engine::state::view_in(v, z, X86::ptr(e), &e.sets),
        Part::High8 => e.sets.borrow_mut().map(v, |x| (x >> 8) & 0xff),
    }
}

fn set_reg(e: E, st: &mut State, r: Register, v: Val) {
    let Some((n, part)) = reg_part(e, r) else {
        return;
    };
    let new = match part {
        Part::Full if !e.arch.x64 => match v {
            Val::Const(..) | Val::Set(..) | Val::Runtime(..) => {
                super::engine::state::view_in(v, 4, 4, &e.sets)
            }
            v => v,
        },
        Part::Full => v,
        // A 32-bit write zero-extends on x64.
        Part::Low(4) => match v {
            Val::Const(..) | Val::Set(..) | Val::Runtime(..) => {
                super::engine::state::view_in(v, 4, 8, &e.sets)
            }
            Val::Param(p, _) => Val::Param(p, true),
            _ => Val::Unknown,
        },
        Part::Low(z) => {
            let m = mask(z);
            merge_bits(e, st.regs[n], v, m)
        }
        Part::High8 => {
            let shifted = e.sets.borrow_mut().map(v, |x| (x & 0xff) << 8);
            merge_bits(e, st.regs[n], shifted, 0xff00)
        }
    };
    st.set(n, new);
}

/// `old` with the bits of `m` replaced by those of `new` (a partial register write).
fn merge_bits(e: E, old: Val, new: Val, m: u64) -> Val {
    match (old, new) {
        (Val::Runtime(o, _), Val::Const(x, _)) => Val::Runtime((o & !m) | (x & m), NO_GLOBAL),
        (Val::Const(..) | Val::Set(..), Val::Const(..) | Val::Set(..)) => {
            e.sets
                .borrow_mut()
                .map2(old, new, |o, x| (o & !m) | (x & m))
        }
        _ => Val::Unknown,
    }
}

/// A memory operand's address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemAddr {
    /// A virtual address in the image (RIP-relative, absolute, or from a known pointer).
    Abs(u64),
    /// Several, from an index that is one of several constants (a lookup table).
    Many(Vec<u64>),
    Stack(u32, i32),
    Unknown,
}

fn displacement(e: E, ins: &Instruction) -> i64 {
    if e.arch.x64 {
        ins.memory_displacement64() as i64
    } else {
        i64::from(ins.memory_displacement32() as i32)
    }
}

fn mem_addr(e: E, st: &State, ins: &Instruction) -> MemAddr {
    let seg = ins.memory_segment();
    if seg == Register::FS || seg == Register::GS {
        return MemAddr::Unknown;
    }
    let base = ins.memory_base();
    let index = ins.memory_index();
    if base.is_ip() {
        return MemAddr::Abs(ins.memory_displacement64());
    }
    let x64 = e.arch.x64;
    let wrap = |va: u64| if x64 { va } else { va & 0xffff_ffff };
    let scale = u64::from(ins.memory_index_scale());
    let disp = displacement(e, ins);
    // The index as one offset or, from a set, several.
    let mut many: Option<Vec<u64>> = None;
    let one: u64 = if index == Register::None {
        0
    } else {
        match get_reg(e, st, index) {
            Val::Const(x, _) => x.wrapping_mul(scale),
            v @ Val::Set(..) => {
                let c = e
                    .sets
                    .borrow()
                    .constants(v)
                    .map(|c| c.0)
                    .unwrap_or_default();
                many = Some(c.iter().map(|&x| x.wrapping_mul(scale)).collect());
                0
            }
            v => {
                e.note_param(v);
                return MemAddr::Unknown;
            }
        }
    };
    let base_va: Option<u64> = if base == Register::None {
        Some(if x64 {
            disp as u64
        } else {
            u64::from(ins.memory_displacement32())
        })
    } else {
        match get_reg(e, st, base) {
            Val::Stack(ep, o) => {
                if many.is_some() {
                    return MemAddr::Unknown;
                }
                let off = i64::from(o).wrapping_add(disp).wrapping_add(one as i64);
                return match i32::try_from(off) {
                    Ok(off) => MemAddr::Stack(ep, off),
                    Err(_) => MemAddr::Unknown,
                };
            }
            Val::Const(b, _) => Some(b.wrapping_add(disp as u64)),
            Val::Addr(a) => Some(
                e.image
                    .image_base
                    .wrapping_add(a as u64)
                    .wrapping_add(disp as u64),
            ),
            _ => None,
        }
    };
    let Some(b) = base_va else {
        return MemAddr::Unknown;
    };
    match many {
        None => MemAddr::Abs(wrap(b.wrapping_add(one))),
        Some(idx) => MemAddr::Many(idx.iter().map(|&i| wrap(b.wrapping_add(i))).collect()),
    }
}

fn load(e: E, st: &State, addr: &MemAddr, size: usize) -> Val {
    let size = size.clamp(1, 8) as u8;
    match *addr {
        MemAddr::Stack(ep, o) => {
            let mut sets = e.sets.borrow_mut();
            st.load(ep, o, size, X86::param_base(e), X86::ptr(e), &mut sets)
                .copied()
        }
        MemAddr::Abs(va) => match e.rva_of(va) {
            Some(rva) => e.load_global(rva, size),
            None => Val::Unknown,
        },
        MemAddr::Many(ref vas) => {
            // A table in read-only data: the set of its entries.
            let mut vals = Vec::with_capacity(vas.len());
            for &va in vas {
                match e.rva_of(va).map(|r| e.load_global(r, size)) {
                    Some(Val::Const(v, _)) => vals.push(v),
                    _ => return Val::Unknown,
                }
            }
            e.sets.borrow_mut().make(vals, How::Global)
        }
        MemAddr::Unknown => Val::Unknown,
    }
}

fn store(e: E, st: &mut State, addr: &MemAddr, size: usize, v: Val) {
    let ptr = X86::ptr(e);
    match *addr {
        MemAddr::Stack(ep, o) => {
            let size = size.clamp(1, 8) as u8;
            let v = super::engine::state::view_in(v, size, ptr, &e.sets);
            st.store(ep, o, size, v);
        }
        MemAddr::Abs(_) | MemAddr::Many(_) => st.escape(v),
        MemAddr::Unknown => {
            st.escape(v);
            st.clobber_escaped();
        }
    }
}

fn op_size(e: E, ins: &Instruction, op: u32) -> usize {
    match ins.op_kind(op) {
        OpKind::Register => ins.op_register(op).size(),
        OpKind::Memory => ins.memory_size().size(),
        _ => X86::ptr(e) as usize,
    }
}

fn read_op(e: E, st: &State, i: &Insn, op: u32) -> Val {
    let ins = &i.ins;
    match ins.op_kind(op) {
        OpKind::Register => get_reg(e, st, ins.op_register(op)).copied(),
        OpKind::Memory => {
            let a = mem_addr(e, st, ins);
            load(e, st, &a, ins.memory_size().size())
        }
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => {
            let v = ins.immediate(op);
            if i.imm_addr {
                // A relocated immediate: the address of something in the image.
                match v.checked_sub(e.image.image_base) {
                    Some(r) => Val::Addr(r as i64),
                    None => Val::Unknown,
                }
            } else {
                Val::Const(v, How::Immediate)
            }
        }
        _ => Val::Unknown,
    }
}

fn write_op0(e: E, st: &mut State, ins: &Instruction, v: Val) {
    match ins.op0_kind() {
        OpKind::Register => {
            let r = ins.op0_register();
            let v = match v {
                Val::Const(..) | Val::Set(..) | Val::Runtime(..) => {
                    super::engine::state::view_in(v, r.size() as u8, 8, &e.sets)
                }
                v => v,
            };
            set_reg(e, st, r, v);
        }
        OpKind::Memory => {
            let a = mem_addr(e, st, ins);
            store(e, st, &a, ins.memory_size().size(), v);
        }
        _ => {}
    }
}

fn adjust_sp(st: &mut State, delta: i32) {
    if let Val::Stack(ep, o) = st.regs[RSP] {
        st.set(RSP, Val::Stack(ep, o.wrapping_add(delta)));
    }
}

/// The flags after `op` on `a` and `b` (`bytes` wide); `reg`: the register `a` was read from.
fn set_flags(st: &mut State, op: FlagOp, a: Val, b: Val, bytes: usize, reg: u8, same: bool) {
    st.flags = Flags {
        op,
        a,
        b,
        bytes: bytes.clamp(1, 8) as u8,
        reg,
        same,
        carry_is_borrow: true,
    };
}

/// Whether operands 0 and 1 are the same register (`test eax, eax`).
fn same_regs(ins: &Instruction) -> bool {
    ins.op_count() == 2
        && ins.op0_kind() == OpKind::Register
        && ins.op1_kind() == OpKind::Register
        && ins.op0_register() == ins.op1_register()
}

/// The register number of a register operand read as a whole 32- or 64-bit value (the only
/// views a branch refines).
fn whole_reg(e: E, ins: &Instruction, op: u32) -> u8 {
    if ins.op_kind(op) != OpKind::Register {
        return NO_REG;
    }
    match reg_part(e, ins.op_register(op)) {
        Some((n, Part::Full)) | Some((n, Part::Low(4))) if n != RSP => n as u8,
        _ => NO_REG,
    }
}

/// Applies one instruction; false when the path ends at it.
fn step_inner(e: E, st: &mut State, i: &Insn, k: u32) -> bool {
    let ins = &i.ins;
    let ptr = i32::from(X86::ptr(e));
    let m = ins.mnemonic();
    match m {
        Mnemonic::Nop | Mnemonic::Int3 => {}
        Mnemonic::Cmp | Mnemonic::Test => {
            let a = read_op(e, st, i, 0);
            let b = read_op(e, st, i, 1);
            let size = op_size(e, ins, 0);
            let op = if m == Mnemonic::Cmp {
                FlagOp::Sub
            } else {
                FlagOp::And
            };
            set_flags(st, op, a, b, size, whole_reg(e, ins, 0), same_regs(ins));
        }
        Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Retf => {}
        _ if ins.flow_control() == FlowControl::ConditionalBranch
            && !ins.is_loop()
            && !ins.is_loopcc() => {}
        Mnemonic::Mov if ins.op_count() == 2 => {
            if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
                return true;
            }
            if ins.op1_kind() == OpKind::Register && ins.op1_register().is_segment_register() {
                write_op0(e, st, ins, Val::Unknown);
                return true;
            }
            let v = read_op(e, st, i, 1);
            write_op0(e, st, ins, v);
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            let src = op_size(e, ins, 1) as u8;
            let signed = m != Mnemonic::Movzx && src < 8;
            let v = read_op(e, st, i, 1);
            let v = match v {
                Val::Const(..) | Val::Set(..) => e.sets.borrow_mut().map(v, |x| {
                    let x = x & mask(src);
                    if signed {
                        sign_extend(x, src)
                    } else {
                        x
                    }
                }),
                Val::Param(p, n) if src >= 4 => Val::Param(p, n || src == 4),
                _ => Val::Unknown,
            };
            write_op0(e, st, ins, v);
        }
        Mnemonic::Lea => {
            let v = lea_value(e, st, ins);
            // A 32-bit destination keeps the low half.
            write_op0(e, st, ins, v);
        }
        Mnemonic::Xor | Mnemonic::Sub
            if ins.op_count() == 2
                && ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == ins.op1_register() =>
        {
            write_op0(e, st, ins, Val::Const(0, How::Immediate));
            let z = Val::Const(0, How::Immediate);
            set_flags(st, FlagOp::And, z, z, op_size(e, ins, 0), NO_REG, true);
        }
        Mnemonic::Sbb
            if ins.op_count() == 2
                && ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == ins.op1_register() =>
        {
            // `sbb r, r` = -CF: 0 or all ones (gcc's branch-free select).
            let size = op_size(e, ins, 0) as u8;
            let all = Val::Const(mask(size), How::Propagated);
            let zero = Val::Const(0, How::Propagated);
            let v = e.select(st, Cond::Flags(Cc::C), all, zero);
            write_op0(e, st, ins, v);
            st.flags = Flags::NONE;
        }
        Mnemonic::Add
        | Mnemonic::Sub
        | Mnemonic::Or
        | Mnemonic::And
        | Mnemonic::Xor
        | Mnemonic::Shl
        | Mnemonic::Shr
        | Mnemonic::Sar
        | Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Bts
        | Mnemonic::Btr
        | Mnemonic::Btc
        | Mnemonic::Imul
            if ins.op_count() == 2 =>
        {
            let size = op_size(e, ins, 0);
            let a = read_op(e, st, i, 0);
            let b = read_op(e, st, i, 1);
            let r = arith(e, m, a, b, size);
            write_op0(e, st, ins, r);
            match m {
                Mnemonic::Sub => set_flags(st, FlagOp::Sub, a, b, size, NO_REG, false),
                Mnemonic::Add => set_flags(st, FlagOp::Add, a, b, size, NO_REG, false),
                Mnemonic::And | Mnemonic::Or | Mnemonic::Xor => {
                    set_flags(st, FlagOp::And, r, r, size, whole_reg(e, ins, 0), true)
                }
                _ => st.flags = Flags::NONE,
            }
        }
        Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Not | Mnemonic::Neg => {
            let size = op_size(e, ins, 0) as u8;
            let v = read_op(e, st, i, 0);
            let r = match v {
                Val::Const(..) | Val::Set(..) => e.sets.borrow_mut().map(v, |x| {
                    let y = match m {
                        Mnemonic::Inc => x.wrapping_add(1),
                        Mnemonic::Dec => x.wrapping_sub(1),
                        Mnemonic::Not => !x,
                        _ => x.wrapping_neg(),
                    };
                    y & mask(size)
                }),
                _ => Val::Unknown,
            };
            write_op0(e, st, ins, r);
            if m != Mnemonic::Not {
                st.flags = Flags::NONE;
            }
        }
        Mnemonic::Cmove
        | Mnemonic::Cmovne
        | Mnemonic::Cmova
        | Mnemonic::Cmovae
        | Mnemonic::Cmovb
        | Mnemonic::Cmovbe
        | Mnemonic::Cmovg
        | Mnemonic::Cmovge
        | Mnemonic::Cmovl
        | Mnemonic::Cmovle
        | Mnemonic::Cmovo
        | Mnemonic::Cmovno
        | Mnemonic::Cmovp
        | Mnemonic::Cmovnp
        | Mnemonic::Cmovs
        | Mnemonic::Cmovns => {
            let old = get_reg(e, st, ins.op0_register());
            let new = read_op(e, st, i, 1);
            let v = match cc(ins.condition_code()) {
                Some(c) => cmov(e, st, c, new, old),
                None => Val::Unknown,
            };
            set_reg(e, st, ins.op0_register(), v);
        }
        Mnemonic::Sete
        | Mnemonic::Setne
        | Mnemonic::Seta
        | Mnemonic::Setae
        | Mnemonic::Setb
        | Mnemonic::Setbe
        | Mnemonic::Setg
        | Mnemonic::Setge
        | Mnemonic::Setl
        | Mnemonic::Setle
        | Mnemonic::Seto
        | Mnemonic::Setno
        | Mnemonic::Sets
        | Mnemonic::Setns
        | Mnemonic::Setp
        | Mnemonic::Setnp => {
            let one = Val::Const(1, How::Propagated);
            let zero = Val::Const(0, How::Propagated);
            let v = match cc(ins.condition_code()) {
                Some(c) => e.select(st, Cond::Flags(c), one, zero),
                None => Val::Unknown,
            };
            write_op0(e, st, ins, v);
        }
        Mnemonic::Xchg
            if ins.op0_kind() == OpKind::Register && ins.op1_kind() == OpKind::Register =>
        {
            let a = get_reg(e, st, ins.op0_register());
            let b = get_reg(e, st, ins.op1_register());
            set_reg(e, st, ins.op0_register(), b);
            set_reg(e, st, ins.op1_register(), a);
        }
        Mnemonic::Push if ins.op_count() == 1 => {
            let v = read_op(e, st, i, 0);
            // `push` moves the stack by the operand size (a segment register is pushed as a
            // whole slot): exactly what iced reports.
            let inc = ins.stack_pointer_increment();
            adjust_sp(st, inc);
            if let Val::Stack(ep, o) = st.regs[RSP] {
                let size = inc.unsigned_abs().clamp(1, 8) as u8;
                let v = if ins.op0_kind() == OpKind::Register
                    && ins.op0_register().is_segment_register()
                {
                    Val::Unknown
                } else {
                    super::engine::state::view_in(v, size, X86::ptr(e), &e.sets)
                };
                st.store(ep, o, size, v);
            }
        }
        Mnemonic::Pop if ins.op_count() == 1 => {
            let inc = ins.stack_pointer_increment();
            let v = match st.regs[RSP] {
                Val::Stack(ep, o) => {
                    let mut sets = e.sets.borrow_mut();
                    let size = inc.unsigned_abs().clamp(1, 8) as u8;
                    st.load(ep, o, size, X86::param_base(e), X86::ptr(e), &mut sets)
                        .copied()
                }
                _ => Val::Unknown,
            };
            adjust_sp(st, inc);
            if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
                return true;
            }
            write_op0(e, st, ins, v);
        }
        Mnemonic::Pushfd
        | Mnemonic::Pushfq
        | Mnemonic::Pushf
        | Mnemonic::Pushad
        | Mnemonic::Pusha => {
            // Flags or every register: their values are not tracked, the stack is.
            let inc = ins.stack_pointer_increment();
            adjust_sp(st, inc);
            if let Val::Stack(ep, o) = st.regs[RSP] {
                let slot = if matches!(m, Mnemonic::Pushad | Mnemonic::Pusha) {
                    inc.unsigned_abs() / 8
                } else {
                    inc.unsigned_abs()
                };
                let mut at = 0;
                while at < inc.unsigned_abs() && slot > 0 {
                    st.store(
                        ep,
                        o.wrapping_add(at as i32),
                        slot.min(8) as u8,
                        Val::Unknown,
                    );
                    at += slot;
                }
            }
        }
        Mnemonic::Popfd | Mnemonic::Popfq | Mnemonic::Popf => {
            adjust_sp(st, ins.stack_pointer_increment());
            st.flags = Flags::NONE;
        }
        Mnemonic::Popad | Mnemonic::Popa => {
            for r in [RAX, RCX, RDX, 3, RBP, RSI, RDI] {
                st.set(r, Val::Unknown);
            }
            adjust_sp(st, ins.stack_pointer_increment());
        }
        Mnemonic::Leave => {
            let v_sp = st.regs[RBP];
            st.set(RSP, v_sp);
            let v = match st.regs[RSP] {
                Val::Stack(ep, o) => {
                    let mut sets = e.sets.borrow_mut();
                    st.load(
                        ep,
                        o,
                        X86::ptr(e),
                        X86::param_base(e),
                        X86::ptr(e),
                        &mut sets,
                    )
                }
                _ => Val::Unknown,
            };
            st.set(RBP, v);
            if matches!(st.regs[RSP], Val::Stack(..)) {
                adjust_sp(st, ptr);
            } else {
                st.set(RSP, Val::Stack(EPOCH_CALL + k, 0));
            }
        }
        Mnemonic::Enter => {
            // `enter N, 0`: push ebp; ebp = esp; esp -= N.
            let old_bp = st.regs[RBP];
            adjust_sp(st, -ptr);
            if let Val::Stack(ep, o) = st.regs[RSP] {
                st.store(ep, o, X86::ptr(e), old_bp);
            }
            let frame = st.regs[RSP];
            st.set(RBP, frame);
            if ins.immediate8_2nd() != 0 {
                st.set(RSP, Val::Stack(EPOCH_CALL + k, 0));
            } else {
                adjust_sp(st, -i32::from(ins.immediate16()));
            }
        }
        Mnemonic::Call => return after_call(e, st, i, k),
        _ if ins.is_string_instruction() => string_op(st, ins),
        _ => clobber(e, st, ins, k),
    }
    true
}

/// What `lea` computes: base + index × scale + displacement over whatever the registers hold.
/// An address in the image stays an address (a RIP-relative or absolute operand names one);
/// from a constant base it is a number (`lea r8d, [rdx+0x38747354]`, `lea ecx, [rax+1]`); a
/// plain copy (`lea esi, [esi+0]`, an alignment `nop`) keeps any value.
fn lea_value(e: E, st: &State, ins: &Instruction) -> Val {
    let base = ins.memory_base();
    let index = ins.memory_index();
    let disp = displacement(e, ins);
    let mut sets = e.sets.borrow_mut();
    let b = if base.is_ip() {
        return match e.rva_of(ins.memory_displacement64()) {
            Some(r) => Val::Addr(i64::from(r)),
            None => Val::Const(ins.memory_displacement64(), How::Propagated),
        };
    } else if base == Register::None {
        let va = if e.arch.x64 {
            disp as u64
        } else {
            u64::from(ins.memory_displacement32())
        };
        if index == Register::None {
            return match e.rva_of(va) {
                Some(r) if !e.relocs.is_empty() || !e.arch.x64 => Val::Addr(i64::from(r)),
                _ => Val::Const(va, How::Propagated),
            };
        }
        Val::Const(va, How::Propagated)
    } else {
        drop(sets);
        let v = get_reg(e, st, base);
        sets = e.sets.borrow_mut();
        v
    };
    let scaled = if index == Register::None {
        Val::Const(0, How::Propagated)
    } else {
        drop(sets);
        let v = get_reg(e, st, index);
        sets = e.sets.borrow_mut();
        let scale = u64::from(ins.memory_index_scale());
        sets.map(v, |x| x.wrapping_mul(scale))
    };
    let disp_added = |sets: &mut super::engine::value::Sets, v: Val| -> Val {
        match v {
            Val::Stack(ep, o) => Val::Stack(ep, o.wrapping_add(disp as i32)),
            Val::Addr(a) => Val::Addr(a.wrapping_add(disp)),
            Val::Const(..) | Val::Set(..) => sets.map(v, |x| x.wrapping_add(disp as u64)),
            v if disp == 0 => v,
            _ => Val::Unknown,
        }
    };
    let sum = match (b, scaled) {
        (v, Val::Const(0, _)) => v,
        (Val::Stack(ep, o), Val::Const(c, _)) => Val::Stack(ep, o.wrapping_add(c as i32)),
        (Val::Addr(a), Val::Const(c, _)) => Val::Addr(a.wrapping_add(c as i64)),
        (Val::Const(..) | Val::Set(..), Val::Const(..) | Val::Set(..)) => {
            sets.map2(b, scaled, |x, y| x.wrapping_add(y))
        }
        _ => return Val::Unknown,
    };
    let v = disp_added(&mut sets, sum);
    if e.arch.x64 {
        v
    } else {
        match v {
            Val::Const(..) | Val::Set(..) => sets.map(v, |x| x & 0xffff_ffff),
            v => v,
        }
    }
}

/// `cmov` chooses `new` when the condition holds, else keeps `old`.
fn cmov(e: E, st: &State, c: Cc, new: Val, old: Val) -> Val {
    e.select(st, Cond::Flags(c), new, old)
}

/// An arithmetic instruction on two values.
fn arith(e: E, m: Mnemonic, a: Val, b: Val, size: usize) -> Val {
    let bits = (size * 8) as u32;
    let sz = size as u8;
    match (m, a, b) {
        (Mnemonic::Add, Val::Stack(ep, o), Val::Const(c, _)) => {
            Val::Stack(ep, o.wrapping_add(c as i32))
        }
        (Mnemonic::Sub, Val::Stack(ep, o), Val::Const(c, _)) => {
            Val::Stack(ep, o.wrapping_sub(c as i32))
        }
        (Mnemonic::Add, Val::Addr(x), Val::Const(c, _)) => Val::Addr(x.wrapping_add(c as i64)),
        (Mnemonic::Sub, Val::Addr(x), Val::Const(c, _)) => Val::Addr(x.wrapping_sub(c as i64)),
        (Mnemonic::Sub, Val::Addr(x), Val::Addr(y)) => {
            Val::Const((x.wrapping_sub(y) as u64) & mask(sz), How::Propagated)
        }
        (Mnemonic::And, _, Val::Const(0, _)) => Val::Const(0, How::Propagated),
        (_, Val::Runtime(x, _), Val::Const(y, _)) => match alu(m, x, y, size, bits) {
            Some(v) => Val::Runtime(v, NO_GLOBAL),
            None => Val::Unknown,
        },
        (_, Val::Const(..) | Val::Set(..), Val::Const(..) | Val::Set(..)) => {
            let v = e
                .sets
                .borrow_mut()
                .map2(a, b, |x, y| alu(m, x, y, size, bits).unwrap_or(0));
            if alu(m, 0, 0, size, bits).is_none() {
                Val::Unknown
            } else {
                v
            }
        }
        _ => Val::Unknown,
    }
}

/// The result of an ALU operation on constants, `size` bytes wide.
fn alu(m: Mnemonic, x: u64, y: u64, size: usize, bits: u32) -> Option<u64> {
    let sz = size as u8;
    let sh = (y as u32) & if size == 8 { 63 } else { 31 };
    let v = match m {
        Mnemonic::Add => x.wrapping_add(y),
        Mnemonic::Sub => x.wrapping_sub(y),
        Mnemonic::Or => x | y,
        Mnemonic::And => x & y,
        Mnemonic::Xor => x ^ y,
        Mnemonic::Shl => x.wrapping_shl(sh),
        Mnemonic::Shr => (x & mask(sz)).wrapping_shr(sh),
        Mnemonic::Sar => (sign_extend(x, sz) as i64 >> sh) as u64,
        Mnemonic::Rol | Mnemonic::Ror => {
            let x = x & mask(sz);
            let s = sh % bits.max(1);
            if s == 0 {
                x
            } else if m == Mnemonic::Rol {
                (x << s) | (x >> (bits - s))
            } else {
                (x >> s) | (x << (bits - s))
            }
        }
        Mnemonic::Bts => x | (1u64 << (y as u32 % bits.max(1))),
        Mnemonic::Btr => x & !(1u64 << (y as u32 % bits.max(1))),
        Mnemonic::Btc => x ^ (1u64 << (y as u32 % bits.max(1))),
        Mnemonic::Imul => x.wrapping_mul(y),
        _ => return None,
    };
    Some(v & mask(sz))
}

/// A string instruction (`movs`, `stos`, `lods`, `scas`, `cmps`, with or without `rep`): it
/// writes ecx (with a repeat prefix), esi/edi, eax for `lods`, the flags for `scas`/`cmps`,
/// and the memory at edi for `movs`/`stos` — upwards (the direction flag is clear at every
/// call and return, Microsoft Learn "x64 software conventions"; x86 the same). The memory
/// written is forgotten only where edi points into the stack; the argument slots pushed
/// below it are not touched.
fn string_op(st: &mut State, ins: &Instruction) {
    let m = ins.mnemonic();
    let writes_mem = matches!(
        m,
        Mnemonic::Movsb
            | Mnemonic::Movsw
            | Mnemonic::Movsd
            | Mnemonic::Movsq
            | Mnemonic::Stosb
            | Mnemonic::Stosw
            | Mnemonic::Stosd
            | Mnemonic::Stosq
    );
    let unit = match m {
        Mnemonic::Movsb | Mnemonic::Stosb | Mnemonic::Lodsb | Mnemonic::Scasb | Mnemonic::Cmpsb => {
            1
        }
        Mnemonic::Movsw | Mnemonic::Stosw | Mnemonic::Lodsw | Mnemonic::Scasw | Mnemonic::Cmpsw => {
            2
        }
        Mnemonic::Movsq | Mnemonic::Stosq | Mnemonic::Lodsq | Mnemonic::Scasq | Mnemonic::Cmpsq => {
            8
        }
        _ => 4,
    };
    let rep = ins.has_rep_prefix() || ins.has_repe_prefix() || ins.has_repne_prefix();
    if writes_mem {
        match st.regs[RDI] {
            Val::Stack(ep, o) => {
                let lo = i64::from(o);
                let hi = match (rep, st.regs[RCX]) {
                    (false, _) => lo + unit,
                    (true, Val::Const(n, _)) if n < (1 << 24) => lo + unit * n as i64,
                    _ => i64::MAX,
                };
                st.forget(ep, lo, hi);
            }
            // Through an unknown pointer: only escaped stack slots may be hit.
            _ => st.clobber_escaped(),
        }
    }
    if rep {
        st.set(RCX, Val::Unknown);
    }
    if !matches!(
        m,
        Mnemonic::Stosb
            | Mnemonic::Stosw
            | Mnemonic::Stosd
            | Mnemonic::Stosq
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
    ) {
        st.set(RSI, Val::Unknown);
    }
    if !matches!(
        m,
        Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd | Mnemonic::Lodsq
    ) {
        st.set(RDI, Val::Unknown);
    } else {
        st.set(RAX, Val::Unknown);
    }
    if matches!(
        m,
        Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
            | Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
    ) {
        st.flags = Flags::NONE;
    }
}

/// The effect of a call on the caller's state (by the ABI); false when it does not return.
fn after_call(e: E, st: &mut State, i: &Insn, k: u32) -> bool {
    let ins = &i.ins;
    let (callee, no_return) = callee_of(e, st, ins);
    if no_return {
        return false;
    }
    let ptr = i32::from(X86::ptr(e));
    // What the callee can see: its argument registers and the stack slots just above the
    // stack pointer (its stack arguments). A stack address among them lets it write the
    // caller's frame from there up.
    let args: &[usize] = if e.arch.x64 { &X64_ARGS } else { &[RCX, RDX] };
    for &r in args {
        let v = st.regs[r];
        st.escape(v);
    }
    if let Val::Stack(ep, o) = st.regs[RSP] {
        let mut k = 0;
        while k < st.slots.len() {
            let s = st.slots[k];
            if s.epoch == ep && s.off >= o && i64::from(s.off) < i64::from(o) + 0x60 {
                st.escape(s.val);
            }
            k += 1;
        }
    }
    st.clobber_escaped();
    st.flags = Flags::NONE;
    if e.arch.x64 {
        for r in X64_VOLATILE {
            st.set(r, Val::Unknown);
        }
        // The callee owns its home area and stack arguments, and everything below them.
        if let Val::Stack(ep, o) = st.regs[RSP] {
            st.forget(ep, i64::MIN, i64::from(o) + 0x60);
        }
    } else {
        for r in X86_VOLATILE {
            st.set(r, Val::Unknown);
        }
        // stdcall callees pop their arguments, cdecl ones do not; a known API pops its
        // declared slots, anything else starts a new stack epoch (slots written after the
        // call are still tracked, gcc's `sub esp,4; mov [esp],tag` reuse included).
        match (callee, st.regs[RSP]) {
            (Some(api), Val::Stack(ep, o)) => {
                let bytes: i32 = api.params.iter().map(|p| if p.wide { 8 } else { 4 }).sum();
                let o2 = o.wrapping_add(bytes);
                st.forget(ep, i64::MIN, i64::from(o2));
                st.set(RSP, Val::Stack(ep, o2));
            }
            (_, Val::Stack(ep, o)) => {
                st.forget(ep, i64::MIN, i64::from(o));
                st.set(RSP, Val::Stack(EPOCH_CALL + k, 0));
            }
            _ => st.set(RSP, Val::Stack(EPOCH_CALL + k, 0)),
        }
        st.collect_garbage();
    }
    let _ = ptr;
    true
}

/// The pool API a call reaches (for its stack adjustment), and whether the callee is known
/// not to return.
fn callee_of(e: E, st: &State, ins: &Instruction) -> (Option<&'static ApiSpec>, bool) {
    let import = match ins.op0_kind() {
        OpKind::Memory => {
            let a = mem_addr(e, st, ins);
            match a {
                MemAddr::Abs(va) => match e.rva_of(va).and_then(|r| e.imports.at(r)) {
                    Some(i) => Some(i),
                    None => match load(e, st, &a, X86::ptr(e) as usize) {
                        Val::Import(i) => Some(i),
                        _ => None,
                    },
                },
                _ => match load(e, st, &a, X86::ptr(e) as usize) {
                    Val::Import(i) => Some(i),
                    _ => None,
                },
            }
        }
        OpKind::Register => match get_reg(e, st, ins.op0_register()) {
            Val::Import(i) => Some(i),
            _ => None,
        },
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            let t = e.rva_of(ins.near_branch_target());
            if t.is_some_and(|t| e.no_return_call(t, |t| thunk_no_return(e, t))) {
                return (None, true);
            }
            t.and_then(|t| e.arch.thunks.borrow().get(&t).copied())
        }
        _ => None,
    };
    match import.and_then(|i| e.imports.get(i)) {
        Some(s) => (s.api, s.no_return),
        None => (None, false),
    }
}

/// Any other instruction: every register it writes becomes unknown, and any stack slot it
/// writes too.
fn clobber(e: E, st: &mut State, ins: &Instruction, k: u32) {
    let Writes {
        regs: written,
        memory: mem_write,
        implicit_memory: implicit_write,
    } = writes_of(e, ins);
    let sp_written = written & (1 << RSP) != 0;
    for n in 0..16 {
        if n != RSP && written & (1 << n) != 0 {
            st.set(n, Val::Unknown);
        }
    }
    // Any instruction interpreted nowhere above may change the flags.
    st.flags = Flags::NONE;
    if mem_write {
        if implicit_write {
            // An instruction writing memory it does not name (`xsave`, …): escaped slots.
            st.clobber_escaped();
        } else {
            match mem_addr(e, st, ins) {
                MemAddr::Stack(ep, o) => st.store(
                    ep,
                    o,
                    ins.memory_size().size().clamp(1, 8) as u8,
                    Val::Unknown,
                ),
                MemAddr::Unknown => st.clobber_escaped(),
                _ => {}
            }
        }
    }
    if sp_written {
        st.set(RSP, Val::Stack(EPOCH_CALL + k, 0));
    }
}

/// If `ins` transfers control to a pool API (directly, through a register or stack slot
/// holding its import pointer, or through a thunk), the API and how.
fn transfer_target(e: E, st: &State, ins: &Instruction) -> Option<(&'static ApiSpec, Reach)> {
    let tail = match ins.flow_control() {
        FlowControl::IndirectCall | FlowControl::Call => false,
        FlowControl::IndirectBranch | FlowControl::UnconditionalBranch => true,
        _ => return None,
    };
    let through = |v: Val| match v {
        Val::Import(i) => e.imports.get(i).and_then(|s| s.api).map(|api| {
            (
                api,
                if tail {
                    Reach::TailJump
                } else {
                    Reach::RegisterCall
                },
            )
        }),
        _ => None,
    };
    match ins.op0_kind() {
        OpKind::Memory => {
            let a = mem_addr(e, st, ins);
            if let MemAddr::Abs(va) = a {
                if let Some(api) = e.rva_of(va).and_then(|r| e.imports.pool_api_at(r)) {
                    let reach = if tail {
                        Reach::TailJump
                    } else {
                        Reach::IndirectCall
                    };
                    return Some((api, reach));
                }
            }
            through(load(e, st, &a, X86::ptr(e) as usize))
        }
        OpKind::Register => through(get_reg(e, st, ins.op0_register())),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            let t = e.rva_of(ins.near_branch_target())?;
            let i = *e.arch.thunks.borrow().get(&t)?;
            let api = e.imports.get(i)?.api?;
            Some((api, if tail { Reach::TailJump } else { Reach::Thunk }))
        }
        _ => None,
    }
}

/// What an instruction writes.
struct Writes {
    /// The registers, as a bit set of register numbers (no allocation per instruction).
    regs: u32,
    /// Memory, through an operand or implicitly.
    memory: bool,
    /// Memory no operand names (`stos`, `push`, …).
    implicit_memory: bool,
}

fn writes_of(e: E, ins: &Instruction) -> Writes {
    let mut f = e.arch.info.borrow_mut();
    let info = f.info(ins);
    let mut w = Writes {
        regs: 0,
        memory: false,
        implicit_memory: false,
    };
    for u in info.used_registers().iter().filter(|u| writes(u.access())) {
        if let Some((n, _)) = reg_part(e, u.register()) {
            w.regs |= 1 << n;
        }
    }
    for m in info.used_memory() {
        if writes(m.access()) {
            w.memory = true;
            if !(0..ins.op_count()).any(|n| ins.op_kind(n) == OpKind::Memory) {
                w.implicit_memory = true;
            }
        }
    }
    w
}

/// How far back from a `jmp reg` the instructions that compute it are looked for.
const TABLE_WINDOW: usize = 16;

/// An x64 switch, `jmp reg` at `insns[k]`. Its table holds 32-bit offsets that no base
/// relocation covers, so both its place and its length come from the code before the jump:
///
/// - MSVC: `lea rB, [__ImageBase]; mov eT, [rB + rI*4 + table]; add rT, rB; jmp rT`, each
///   entry an RVA (`__ImageBase` is RVA 0); for a sparse switch the index is first looked up
///   in a byte table, `movzx eI, byte [rB + rJ + bytes]`, and the case table has as many
///   entries as the largest byte plus one;
/// - gcc and clang: `lea rB, [table]; movsxd rT, dword [rB + rI*4]; add rT, rB; jmp rT`, each
///   entry signed and relative to the table;
///
/// and the length from the bound check on the index ([`x64_table_bound`]). Any other shape,
/// or a register rewritten between these instructions, leaves the table unknown.
fn x64_table_targets(e: E, insns: &[Insn], k: usize) -> Option<Vec<u32>> {
    let lo = k.saturating_sub(TABLE_WINDOW);
    let reg = |r: Register| reg_part(e, r).map(|(n, _)| n);
    let def = |before: usize, n: usize| last_write(e, insns, lo, before, n);
    let jmp = &insns[k].ins;
    if jmp.op0_kind() != OpKind::Register {
        return None;
    }
    let target = reg(jmp.op0_register())?;
    let a = def(k, target)?;
    let add = &insns[a].ins;
    if add.mnemonic() != Mnemonic::Add
        || add.op1_kind() != OpKind::Register
        || add.op0_register().size() != 8
    {
        return None;
    }
    let base = reg(add.op1_register())?;
    let l = def(a, target)?;
    let load = &insns[l].ins;
    let signed = match (load.mnemonic(), load.op0_register().size()) {
        (Mnemonic::Movsxd, 8) => true,
        (Mnemonic::Mov, 4) => false,
        _ => return None,
    };
    if load.op1_kind() != OpKind::Memory
        || load.memory_size().size() != 4
        || reg(load.memory_base()) != Some(base)
        || load.memory_index_scale() != 4
    {
        return None;
    }
    // The base is set before the load and kept until the add.
    let b = def(a, base)?;
    if b >= l {
        return None;
    }
    let lea = &insns[b].ins;
    if lea.mnemonic() != Mnemonic::Lea
        || !lea.memory_base().is_ip()
        || lea.op0_register().size() != 8
    {
        return None;
    }
    let base_rva = rva_of_ip(e, lea.memory_displacement64());
    let index = reg(load.memory_index())?;
    let count = match def(l, index).filter(|&m| m > b) {
        // MSVC's byte table: the index it gives is at most its largest entry.
        Some(m) if is_byte_lookup(e, &insns[m].ins, base) => {
            let lookup = &insns[m].ins;
            let n = x64_table_bound(e, insns, lo, m, reg(lookup.memory_index())?)?;
            let bytes = base_rva.wrapping_add(lookup.memory_displacement32());
            // The byte reads count against the image's budget like the entries.
            e.take_table_reads(n)?;
            let mut largest = 0u32;
            for j in 0..n {
                let at = bytes.checked_add(j)?;
                largest = largest.max(u32::from(e.image.bytes_at(e.data, at)?.first().copied()?));
            }
            largest + 1
        }
        _ => x64_table_bound(e, insns, lo, l, index)?,
    };
    let table = base_rva.wrapping_add(load.memory_displacement32());
    let mut targets = Vec::new();
    for j in 0..count {
        e.take_table_reads(1)?;
        let entry = e.image.read_u32(e.data, table.checked_add(4 * j)?)?;
        let offset = if signed { entry as i32 as u32 } else { entry };
        targets.push(base_rva.wrapping_add(offset));
    }
    Some(targets)
}

/// The last instruction in `lo..before` that writes register `n`.
fn last_write(e: E, insns: &[Insn], lo: usize, before: usize, n: usize) -> Option<usize> {
    (lo..before)
        .rev()
        .find(|&m| writes_of(e, &insns[m].ins).regs & (1 << n) != 0)
}

/// `movzx r32, byte [rB + rJ + disp]` (MSVC's byte table of a sparse switch).
fn is_byte_lookup(e: E, ins: &Instruction, base: usize) -> bool {
    ins.mnemonic() == Mnemonic::Movzx
        && ins.op1_kind() == OpKind::Memory
        && ins.memory_size().size() == 1
        && ins.memory_index_scale() == 1
        && ins.memory_index() != Register::None
        && reg_part(e, ins.memory_base()).map(|(n, _)| n) == Some(base)
}

/// Where the index value was last copied from, walking back (see [`x64_table_bound`]).
#[derive(Clone, Copy, PartialEq)]
enum IndexFrom {
    /// A register (its number), holding the index in its low `bytes` bytes.
    Reg { n: usize, bytes: u32 },
    /// A memory operand (the instruction that read it), `bytes` wide.
    Mem { at: usize, bytes: u32 },
}

/// The number of table entries the bound check before `insns[load]` allows its index register
/// `index`. Walking back over copies of the index — `mov`, `movsxd`, `movzx` from a register
/// or from memory, `cdqe` — to `cmp X, N` on the register or memory the index came from, at
/// least as wide as the copy (or 32 bits: a 32-bit write clears the upper half), followed by
/// `ja` (N + 1 entries) or `jae` (N) with nothing that writes the flags between. Between a
/// copy from memory and its `cmp`, no memory may be written nor the address's registers.
fn x64_table_bound(e: E, insns: &[Insn], lo: usize, load: usize, index: usize) -> Option<u32> {
    let reg = |r: Register| reg_part(e, r).map(|(n, _)| n);
    let mut from = IndexFrom::Reg { n: index, bytes: 8 };
    for m in (lo..load).rev() {
        let ins = &insns[m].ins;
        let immediate = matches!(
            ins.op1_kind(),
            OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32to64
        );
        if ins.mnemonic() == Mnemonic::Cmp && immediate {
            let (matches, wide) = match from {
                IndexFrom::Reg { n, bytes } => {
                    let size = ins.op0_register().size() as u32;
                    (
                        ins.op0_kind() == OpKind::Register && reg(ins.op0_register()) == Some(n),
                        size >= bytes.min(4),
                    )
                }
                IndexFrom::Mem { at, bytes } => (
                    ins.op0_kind() == OpKind::Memory && same_memory(ins, &insns[at].ins),
                    ins.memory_size().size() as u32 >= bytes.min(4),
                ),
            };
            if matches {
                return wide.then(|| bound_of(insns, m)).flatten();
            }
        }
        let written = writes_of(e, ins);
        match from {
            IndexFrom::Reg { n, .. } if written.regs & (1 << n) == 0 => continue,
            IndexFrom::Mem { at, .. } => {
                let a = &insns[at].ins;
                let address = [a.memory_base(), a.memory_index()]
                    .into_iter()
                    .filter_map(reg)
                    .fold(0u32, |set, n| set | 1 << n);
                if written.regs & address != 0 || written.memory {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        // The index register is written here: only a copy of the index is followed.
        let to_reg = ins.op0_kind() == OpKind::Register;
        from = match (ins.mnemonic(), ins.op1_kind()) {
            (Mnemonic::Cdqe, _) => from,
            (Mnemonic::Mov | Mnemonic::Movsxd | Mnemonic::Movzx, OpKind::Register) if to_reg => {
                IndexFrom::Reg {
                    n: reg(ins.op1_register())?,
                    bytes: ins.op1_register().size() as u32,
                }
            }
            (Mnemonic::Mov | Mnemonic::Movsxd | Mnemonic::Movzx, OpKind::Memory) if to_reg => {
                IndexFrom::Mem {
                    at: m,
                    bytes: ins.memory_size().size() as u32,
                }
            }
            _ => return None,
        };
    }
    None
}

/// Whether two instructions' memory operands are the same address expression.
fn same_memory(a: &Instruction, b: &Instruction) -> bool {
    a.memory_base() == b.memory_base()
        && a.memory_index() == b.memory_index()
        && a.memory_index_scale() == b.memory_index_scale()
        && a.memory_displacement64() == b.memory_displacement64()
        && a.memory_segment() == b.memory_segment()
}

/// The entries allowed by the `cmp X, N` at `insns[cmp]`: the first later instruction that
/// writes the flags or branches must be `ja` (N + 1) or `jae` (N).
fn bound_of(insns: &[Insn], cmp: usize) -> Option<u32> {
    let n = u32::try_from(insns[cmp].ins.immediate(1)).ok()?;
    let next = insns[cmp + 1..]
        .iter()
        .take(TABLE_WINDOW)
        .map(|i| &i.ins)
        .find(|i| i.rflags_modified() != 0 || i.flow_control() != FlowControl::Next)?;
    let count = match next.condition_code() {
        ConditionCode::a if next.is_jcc_short_or_near() => n.checked_add(1)?,
        ConditionCode::ae if next.is_jcc_short_or_near() => n,
        _ => return None,
    };
    (count > 0 && count <= MAX_TABLE_ENTRIES).then_some(count)
}

/// Whether an operand access stores to its register or memory (possibly conditionally).
fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callsite::engine::STEPS;
    use crate::pool::apis::Role;

    /// 23,829 calls of a wrapper in one basic block of one 256 KiB function (built by
    /// testdata/regress/make_hostile.py): every call is a site through the wrapper with its
    /// own tag, and the block is interpreted once for all of them, not once per call
    /// (quadratic before the callers were stepped to one after the other).
    #[test]
    fn wrapper_callers_in_one_block_are_interpreted_once() {
        let bytes = include_bytes!("../../testdata/regress/pe_file/wrapper-callers.sys");
        let image = Image::parse(bytes, crate::pe::Layout::File).unwrap();
        STEPS.set(0);
        let sites = analyze(&image, bytes, true);
        let steps = STEPS.get();
        let callers = sites.iter().filter(|s| s.via.is_some()).count();
        assert_eq!(callers, 23_829);
        let tags: std::collections::HashSet<_> = sites
            .iter()
            .filter_map(|s| s.args.iter().find(|(r, _)| *r == Role::Tag))
            .map(|(_, a)| format!("{a:?}"))
            .collect();
        assert_eq!(
            tags.len(),
            23_829 + 1,
            "each caller its own tag, the wrapper's unknown"
        );
        // Two instructions per caller; each interpreted a small number of times.
        assert!(steps < 8 * 2 * 23_829, "{steps} instructions interpreted");
    }
}
