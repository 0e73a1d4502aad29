//! Stage planning: which operations fuse into which stage, and in what
//! order the stages run.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Root {
    /// Impulse, ReadText, or a shuffle's reader (GroupByKey, stateful ParDo).
    Op(usize),
    /// A ParDo whose side input is produced by its own stage: it runs in a
    /// stage of its own, over its collected main input.
    Deferred(usize),
}

pub(super) struct Stage {
    pub(super) root: Root,
    /// Element-wise ops inside the stage.
    pub(super) ops: BTreeSet<usize>,
    /// PCollections produced inside the stage (including the root's).
    pub(super) produced: HashSet<PcId>,
    /// Shuffles written (by the op that reads them).
    pub(super) writes_gbk: HashSet<usize>,
    pub(super) name: String,
}

pub(super) struct Planner<'g> {
    pub(super) g: &'g Graph,
    pub(super) consumers: Vec<Vec<usize>>,
    pub(super) side_pcs: HashSet<PcId>,
    pub(super) deferred: HashSet<usize>,
}

impl<'g> Planner<'g> {
    pub(super) fn new(g: &'g Graph) -> Result<Self, EngineError> {
        let mut consumers = vec![Vec::new(); g.pcollections.len()];
        let mut side_pcs = HashSet::new();
        for (i, op) in g.ops.iter().enumerate() {
            for &pc in &op.inputs {
                let list = consumers
                    .get_mut(pc)
                    .ok_or_else(|| EngineError::Plan(format!("{}: unknown input", op.name)))?;
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            side_pcs.extend(op.kind.side_inputs().iter().map(|(_, pc)| *pc));
        }
        Ok(Planner {
            g,
            consumers,
            side_pcs,
            deferred: HashSet::new(),
        })
    }

    pub(super) fn is_root_op(kind: &OpKind) -> bool {
        matches!(kind, OpKind::Impulse | OpKind::ReadText { .. }) || kind.is_shuffled()
    }

    pub(super) fn build_stage(&self, root: Root) -> Stage {
        let mut st = Stage {
            root,
            ops: BTreeSet::new(),
            produced: HashSet::new(),
            writes_gbk: HashSet::new(),
            name: match root {
                Root::Op(o) => self.g.ops[o].name.clone(),
                Root::Deferred(o) => self.g.ops[o].name.clone(),
            },
        };
        let mut frontier: Vec<PcId> = self.g.ops[match root {
            Root::Op(o) | Root::Deferred(o) => o,
        }]
        .outputs
        .clone();
        if let Root::Deferred(o) = root {
            st.ops.insert(o);
        }
        while let Some(pc) = frontier.pop() {
            if !st.produced.insert(pc) {
                continue;
            }
            for &c in &self.consumers[pc] {
                let op = &self.g.ops[c];
                if op.kind.is_shuffled() {
                    st.writes_gbk.insert(c);
                } else if !Self::is_root_op(&op.kind)
                    && !self.deferred.contains(&c)
                    && st.ops.insert(c)
                {
                    frontier.extend(op.outputs.iter().copied());
                }
            }
        }
        st
    }

    pub(super) fn reads(&self, st: &Stage) -> HashSet<PcId> {
        let mut r = HashSet::new();
        for &o in &st.ops {
            r.extend(self.g.ops[o].kind.side_inputs().iter().map(|(_, pc)| *pc));
        }
        if let Root::Op(o) = st.root {
            r.extend(self.g.ops[o].kind.side_inputs().iter().map(|(_, pc)| *pc));
        }
        if let Root::Deferred(o) = st.root {
            r.insert(self.g.ops[o].inputs[0]);
        }
        r
    }

    /// Stages in an order that respects their dependencies.
    /// Returns the stages, the PCollections to collect (side inputs and the
    /// main inputs of deferred ParDos), and the consumer lists.
    #[allow(clippy::type_complexity)]
    pub(super) fn plan(
        mut self,
    ) -> Result<(Vec<Stage>, HashSet<PcId>, Vec<Vec<usize>>), EngineError> {
        for _ in 0..=self.g.ops.len() {
            let mut roots: Vec<Root> = self
                .g
                .ops
                .iter()
                .enumerate()
                .filter(|(_, o)| Self::is_root_op(&o.kind))
                .map(|(i, _)| Root::Op(i))
                .collect();
            let mut deferred: Vec<_> = self.deferred.iter().copied().collect();
            deferred.sort();
            roots.extend(deferred.into_iter().map(Root::Deferred));
            let stages: Vec<Stage> = roots.into_iter().map(|r| self.build_stage(r)).collect();
            // A ParDo that reads a side input produced in its own stage is
            // deferred to a stage of its own.
            let mut cut = None;
            'outer: for st in &stages {
                for &o in &st.ops {
                    if let OpKind::ParDo { side_inputs, .. } = &self.g.ops[o].kind {
                        if side_inputs.iter().any(|(_, pc)| st.produced.contains(pc))
                            && !self.deferred.contains(&o)
                        {
                            cut = Some(o);
                            break 'outer;
                        }
                    }
                }
            }
            if let Some(o) = cut {
                self.deferred.insert(o);
                continue;
            }
            // Order: Kahn over "writes before reads".
            let n = stages.len();
            let mut deps: Vec<HashSet<usize>> = vec![HashSet::new(); n];
            for (i, s) in stages.iter().enumerate() {
                let reads = self.reads(s);
                for (j, t) in stages.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let gbk_dep = matches!(s.root, Root::Op(o) if t.writes_gbk.contains(&o));
                    if gbk_dep
                        || reads
                            .iter()
                            .any(|pc| t.produced.contains(pc) && !s.produced.contains(pc))
                    {
                        deps[i].insert(j);
                    }
                    if let Root::Deferred(o) = s.root {
                        if t.produced.contains(&self.g.ops[o].inputs[0]) {
                            deps[i].insert(j);
                        }
                    }
                }
            }
            let mut order = Vec::with_capacity(n);
            let mut done = vec![false; n];
            while order.len() < n {
                let ready = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
                match ready {
                    Some(i) => {
                        done[i] = true;
                        order.push(i);
                    }
                    None => {
                        // A stage that feeds a side input also waits for
                        // it (its ParDo reads a side input computed
                        // downstream of the stage's own output): run that
                        // ParDo in a stage of its own, after both.
                        let stuck = (0..n).filter(|&i| !done[i]).find_map(|i| {
                            stages[i].ops.iter().copied().find(|&o| {
                                matches!(self.g.ops[o].kind, OpKind::ParDo { .. })
                                    && !self.g.ops[o].kind.side_inputs().is_empty()
                                    && !self.deferred.contains(&o)
                            })
                        });
                        match stuck {
                            Some(o) => {
                                self.deferred.insert(o);
                                cut = Some(o);
                                break;
                            }
                            None => {
                                return Err(EngineError::Plan(
                                    "the pipeline's stages depend on each other in a cycle".into(),
                                ))
                            }
                        }
                    }
                }
            }
            if cut.is_some() {
                continue;
            }
            let mut stages: Vec<Option<Stage>> = stages.into_iter().map(Some).collect();
            let ordered = order.into_iter().filter_map(|i| stages[i].take()).collect();
            let mut collect = self.side_pcs.clone();
            collect.extend(self.deferred.iter().map(|&o| self.g.ops[o].inputs[0]));
            return Ok((ordered, collect, self.consumers));
        }
        Err(EngineError::Plan(
            "could not separate side inputs from their consumers".into(),
        ))
    }
}
