//! Control-flow graph of one decoded function (or heuristic region): basic blocks, edges with
//! the branch they depend on, entry and root blocks, and a reverse post-order for the solver.
//!
//! Blocks are contiguous runs of instructions. A block ends at a branch, a return, an indirect
//! jump, a path end (invalid code, a trap, a call that is known not to return) or before an
//! instruction that a branch targets. Calls do not end blocks: their effect is part of the
//! transfer function. A jump leaving the function (or landing on another entry of a multi-entry
//! region) is a tail call, not an edge.

use super::flow::Flow;

/// An edge's kind: the fall-through of a conditional branch or plain code, or the branch taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    Fall,
    Taken,
}

/// A basic block: instructions `start..end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub start: u32,
    pub end: u32,
}

pub(crate) struct Cfg {
    pub blocks: Vec<Block>,
    /// Successors of block `b`: `succ[sstart[b]..sstart[b + 1]]`.
    sstart: Vec<u32>,
    succ: Vec<(u32, Edge)>,
    /// Predecessors of block `b`: `pred[pstart[b]..pstart[b + 1]]`, in increasing order.
    pstart: Vec<u32>,
    pred: Vec<(u32, Edge)>,
    /// Blocks that start at an entry of the function (parameters hold there).
    pub is_entry: Vec<bool>,
    /// Blocks that nothing visible reaches and that are not entries (code after a `ret`,
    /// exception handlers, jump-table targets): they start with nothing known.
    pub is_root: Vec<bool>,
    /// Position of each block in a reverse post-order from the entries, then the roots.
    pub rpo: Vec<u32>,
    /// The function has an indirect jump whose targets are not known (a jump table): some
    /// blocks have predecessors the graph does not show, so constants never cross a merge.
    pub unknown_edges: bool,
}

impl Cfg {
    /// Builds the graph of `n` instructions at `rvas` (sorted) with flows `flow(k)`; `inside`
    /// tells whether a target RVA is code of this function (else a jump there is a tail call);
    /// `entries` are the entry RVAs; `table(k)` the targets of the jump table at instruction
    /// `k` when the architecture could read them all.
    pub(crate) fn build(
        rvas: &[u32],
        flow: impl Fn(usize) -> Flow,
        inside: impl Fn(u32) -> bool,
        table: impl Fn(usize) -> Option<Vec<u32>>,
        entries: &[u32],
    ) -> Cfg {
        let n = rvas.len();
        let index = |rva: u32| rvas.binary_search(&rva).ok();
        let mut leader: Vec<bool> = super::pool::filled(n, false);
        if n > 0 {
            leader[0] = true;
        }
        let entry_idx: Vec<usize> = entries.iter().filter_map(|&e| index(e)).collect();
        for &e in &entry_idx {
            leader[e] = true;
        }
        let mut unknown_edges = false;
        // Jump tables whose every target is an instruction of this function: (instruction,
        // target instructions). Any other table hides edges.
        let mut tables: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut flows: Vec<Flow> = super::pool::take_with(n);
        flows.extend((0..n).map(&flow));
        for (k, f) in flows.iter().enumerate() {
            let ends = match *f {
                Flow::Next | Flow::Call { .. } => false,
                Flow::Branch { target }
                | Flow::Jump {
                    target: Some(target),
                } => {
                    if inside(target) {
                        if let Some(t) = index(target) {
                            leader[t] = true;
                        }
                    }
                    true
                }
                Flow::Table => {
                    let known = table(k).and_then(|ts| {
                        ts.iter()
                            .map(|&t| index(t).filter(|_| inside(t)))
                            .collect::<Option<Vec<usize>>>()
                    });
                    match known {
                        Some(ts) if !ts.is_empty() => {
                            for &t in &ts {
                                leader[t] = true;
                            }
                            tables.push((k, ts));
                        }
                        _ => unknown_edges = true,
                    }
                    true
                }
                Flow::Jump { target: None } | Flow::Return | Flow::Stop => true,
            };
            if ends && k + 1 < n {
                leader[k + 1] = true;
            }
        }
        let mut blocks: Vec<Block> = Vec::new();
        for (k, _) in leader.iter().enumerate().take(n).filter(|(_, l)| **l) {
            if let Some(last) = blocks.last_mut() {
                last.end = k as u32;
            }
            blocks.push(Block {
                start: k as u32,
                end: n as u32,
            });
        }
        super::pool::give(leader);
        let nb = blocks.len();
        // The block starting at instruction `t` (a leader).
        let block_of = |t: usize| blocks.partition_point(|b| (b.start as usize) < t) as u32;
        // Which entry segment an instruction belongs to (multi-entry regions): a jump onto
        // another entry is a tail call.
        let mut sorted_entries = entry_idx.clone();
        sorted_entries.sort_unstable();
        sorted_entries.dedup();
        let segment = |k: usize| sorted_entries.partition_point(|&e| e <= k);
        let mut sstart = vec![0u32; nb + 1];
        let mut succ: Vec<(u32, Edge)> = Vec::with_capacity(nb * 2);
        for b in 0..nb {
            let last = blocks[b].end as usize - 1;
            let add = |t: u32, e: Edge, succ: &mut Vec<(u32, Edge)>| {
                if !succ[sstart[b] as usize..].iter().any(|&(x, _)| x == t) {
                    succ.push((t, e));
                }
            };
            let fall = b + 1 < nb;
            match flows[last] {
                Flow::Next | Flow::Call { .. } => {
                    if fall {
                        add(b as u32 + 1, Edge::Fall, &mut succ);
                    }
                }
                Flow::Branch { target } => {
                    if fall {
                        add(b as u32 + 1, Edge::Fall, &mut succ);
                    }
                    if inside(target) {
                        if let Some(t) = index(target) {
                            add(block_of(t), Edge::Taken, &mut succ);
                        }
                    }
                }
                Flow::Jump {
                    target: Some(target),
                } => {
                    if inside(target) {
                        if let Some(t) = index(target) {
                            let tail = sorted_entries.binary_search(&t).is_ok()
                                && segment(t) != segment(last);
                            if !tail {
                                add(block_of(t), Edge::Taken, &mut succ);
                            }
                        }
                    }
                }
                Flow::Table => {
                    if let Ok(i) = tables.binary_search_by_key(&last, |t| t.0) {
                        for &t in &tables[i].1 {
                            add(block_of(t), Edge::Taken, &mut succ);
                        }
                    }
                }
                Flow::Jump { target: None } | Flow::Return | Flow::Stop => {}
            }
            sstart[b + 1] = succ.len() as u32;
        }
        let mut pstart = vec![0u32; nb + 1];
        for &(t, _) in &succ {
            pstart[t as usize + 1] += 1;
        }
        for b in 0..nb {
            pstart[b + 1] += pstart[b];
        }
        let mut pred = vec![(0u32, Edge::Fall); succ.len()];
        let mut fill = pstart.clone();
        for b in 0..nb {
            for &(t, e) in &succ[sstart[b] as usize..sstart[b + 1] as usize] {
                pred[fill[t as usize] as usize] = (b as u32, e);
                fill[t as usize] += 1;
            }
        }
        super::pool::give(flows);
        let mut is_entry = vec![false; nb];
        for &e in &entry_idx {
            is_entry[block_of(e) as usize] = true;
        }
        let mut cfg = Cfg {
            blocks,
            sstart,
            succ,
            pstart,
            pred,
            is_entry,
            is_root: vec![false; nb],
            rpo: vec![0; nb],
            unknown_edges,
        };
        cfg.order();
        cfg
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn succs(&self, b: usize) -> &[(u32, Edge)] {
        &self.succ[self.sstart[b] as usize..self.sstart[b + 1] as usize]
    }

    pub(crate) fn preds(&self, b: usize) -> &[(u32, Edge)] {
        &self.pred[self.pstart[b] as usize..self.pstart[b + 1] as usize]
    }

    /// The block holding instruction `k`.
    pub(crate) fn block_of(&self, k: usize) -> usize {
        self.blocks
            .partition_point(|b| b.start as usize <= k)
            .saturating_sub(1)
    }

    /// Reverse post-order of a depth-first search from the entries, then from each block
    /// nothing reached yet (in address order), which becomes a root: nothing visible enters it
    /// from the entries (no predecessor at all, or only blocks as unreachable as itself). The
    /// order is the reverse of the whole search's post-order, so a block reached from several
    /// trees (the common exit of a jump table's cases, which are roots) comes after every
    /// predecessor outside a cycle, whichever tree it was first found in.
    fn order(&mut self) {
        let nb = self.blocks.len();
        let mut seen = vec![false; nb];
        let mut post: Vec<u32> = Vec::with_capacity(nb);
        let mut stack: Vec<(u32, u32)> = Vec::new();
        let starts: Vec<usize> = (0..nb).filter(|&b| self.is_entry[b]).chain(0..nb).collect();
        for s in starts {
            if seen[s] {
                continue;
            }
            if !self.is_entry[s] {
                self.is_root[s] = true;
            }
            seen[s] = true;
            stack.push((s as u32, 0));
            while let Some(&mut (b, ref mut i)) = stack.last_mut() {
                let next = self.succs(b as usize).get(*i as usize).copied();
                match next {
                    Some((t, _)) => {
                        *i += 1;
                        if !seen[t as usize] {
                            seen[t as usize] = true;
                            stack.push((t, 0));
                        }
                    }
                    None => {
                        post.push(b);
                        stack.pop();
                    }
                }
            }
        }
        for (pos, &b) in post.iter().rev().enumerate() {
            self.rpo[b as usize] = pos as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five one-byte instructions: 0 falls into 1, a table jump; 2 returns; 3 and 4 are the
    /// cases (3 returns, 4 falls off the end).
    fn table_graph(targets: Option<Vec<u32>>) -> Cfg {
        let rvas = [0u32, 1, 2, 3, 4];
        let flows = [
            Flow::Next,
            Flow::Table,
            Flow::Return,
            Flow::Return,
            Flow::Next,
        ];
        Cfg::build(
            &rvas,
            |k| flows[k],
            |t| t < 5,
            |k| (k == 1).then(|| targets.clone()).flatten(),
            &[0],
        )
    }

    #[test]
    fn a_read_jump_table_gives_its_edges() {
        let cfg = table_graph(Some(vec![3, 4, 3]));
        assert!(!cfg.unknown_edges);
        let starts: Vec<u32> = cfg.blocks.iter().map(|b| b.start).collect();
        assert_eq!(starts, [0, 2, 3, 4]);
        assert_eq!(cfg.succs(0), [(2, Edge::Taken), (3, Edge::Taken)]);
        assert_eq!(cfg.preds(3), [(0, Edge::Taken)]);
        // The cases are reached from the entry now; only the code after the jump is a root.
        assert_eq!(cfg.is_root, [false, true, false, false]);
    }

    #[test]
    fn a_table_that_cannot_be_read_whole_hides_edges() {
        for targets in [None, Some(vec![]), Some(vec![3, 9]), Some(vec![3, 5])] {
            let cfg = table_graph(targets.clone());
            assert!(cfg.unknown_edges, "{targets:?}");
            assert!(cfg.succs(0).is_empty(), "{targets:?}");
        }
    }
}
