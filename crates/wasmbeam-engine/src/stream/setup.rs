//! Building the streaming executor for a graph: topological order,
//! consumers, the state of every operation, and the checks that refuse a
//! graph it cannot run.

use super::*;

impl<'g> Streamer<'g> {
    pub(super) fn new(g: &'g Graph, opts: &'g EngineOptions) -> Result<Self, EngineError> {
        let n = g.pcollections.len();
        let mut consumers = vec![Vec::new(); n];
        let mut side_pcs = vec![false; n];
        let mut producer = vec![None; n];
        for (i, op) in g.ops.iter().enumerate() {
            for &pc in op
                .inputs
                .iter()
                .chain(op.kind.side_inputs().iter().map(|(_, p)| p))
            {
                if pc >= n {
                    return Err(EngineError::Plan(format!("{}: unknown input", op.name)));
                }
                if !consumers[pc].contains(&i) {
                    consumers[pc].push(i);
                }
            }
            for (_, pc) in op.kind.side_inputs() {
                side_pcs[*pc] = true;
            }
            for &pc in &op.outputs {
                let slot = producer
                    .get_mut(pc)
                    .ok_or_else(|| EngineError::Plan(format!("{}: unknown output", op.name)))?;
                *slot = Some(i);
            }
        }
        let order = topological(g, &producer)?;
        // Side inputs are read whole, once complete: one fed by an
        // unbounded source would hold its ParDo's main input forever.
        let mut unbounded = vec![false; n];
        for &i in &order {
            let op = &g.ops[i];
            let from_stream = match &op.kind {
                OpKind::GenerateSequence { stop, .. } => stop.is_none(),
                OpKind::WatchText { .. } => true,
                _ => op.inputs.iter().any(|&pc| unbounded[pc]),
            };
            for &pc in &op.outputs {
                unbounded[pc] |= from_stream;
            }
            if let Some((tag, pc)) = op.kind.side_inputs().iter().find(|(_, pc)| unbounded[*pc]) {
                return Err(EngineError::Plan(format!(
                    "{}: its side input {tag:?} ({}) comes from an unbounded source; side inputs that never complete are not supported yet (read the side input from a bounded source)",
                    op.name, g.pcollections[*pc].name
                )));
            }
        }
        let mut sinks = BTreeMap::new();
        let mut states = Vec::with_capacity(g.ops.len());
        for (i, op) in g.ops.iter().enumerate() {
            let st = match &op.kind {
                OpKind::TestStream(events) => OpState::Source {
                    events: events.iter().cloned().collect(),
                    watermarks: vec![MIN_TIMESTAMP; op.outputs.len()],
                },
                OpKind::Impulse => {
                    let mut b = Batch::default();
                    b.push_global(&[], MIN_TIMESTAMP);
                    OpState::Source {
                        events: VecDeque::from([StreamEvent::Elements(b)]),
                        watermarks: vec![MIN_TIMESTAMP; op.outputs.len()],
                    }
                }
                OpKind::ReadText { patterns } => {
                    let mut events = VecDeque::new();
                    let splits = plan_splits(patterns).map_err(|m| op_err(g, i, m))?;
                    for split in &splits {
                        read_split(split, |b| {
                            events.push_back(StreamEvent::Elements(b));
                            Ok(())
                        })
                        .map_err(|m| op_err(g, i, m))?;
                    }
                    OpState::Source {
                        events,
                        watermarks: vec![MIN_TIMESTAMP; op.outputs.len()],
                    }
                }
                OpKind::GenerateSequence {
                    start,
                    stop,
                    period_ms,
                } => OpState::Generator {
                    start: *start,
                    next: *start,
                    stop: *stop,
                    period: (*period_ms).max(1),
                    started: wall_ms(),
                    watermark: MIN_TIMESTAMP,
                },
                OpKind::WatchText { poll_ms, .. } => OpState::Watch {
                    watcher: Watcher::default(),
                    next_poll: wall_ms(),
                    poll: (*poll_ms).max(1),
                    stopped: false,
                    watermark: MIN_TIMESTAMP,
                },
                OpKind::ParDo { .. } => OpState::ParDo { prepared: false },
                OpKind::GroupByKey {
                    window_fn,
                    triggering,
                    ..
                } => {
                    let windowing = triggering.with_window_fn(window_fn.clone());
                    windowing.trigger.check().map_err(|m| op_err(g, i, m))?;
                    OpState::Group {
                        windowing,
                        drivers: HashMap::new(),
                        input_watermark: MIN_TIMESTAMP,
                        dropped: 0,
                    }
                }
                OpKind::StatefulParDo { .. } => OpState::Keyed {
                    run: None,
                    input_watermark: MIN_TIMESTAMP,
                },
                OpKind::WriteText(sink) => {
                    let staged = PaneText::new(sink.clone()).map_err(|m| op_err(g, i, m))?;
                    sinks.insert(i, staged);
                    OpState::None
                }
                _ => OpState::None,
            };
            states.push(st);
        }
        Ok(Streamer {
            next_source: 0,
            real_clock: !g
                .ops
                .iter()
                .any(|o| matches!(o.kind, OpKind::TestStream(_))),
            drained: false,
            g,
            opts,
            order,
            consumers,
            side_pcs,
            queues: (0..g.ops.len()).map(|_| VecDeque::new()).collect(),
            watermarks: vec![MIN_TIMESTAMP; n],
            states,
            collected: HashMap::new(),
            sinks,
            counts: vec![0; n],
            clock: wall_ms(),
        })
    }
}

/// Operations in an order where every producer comes before its consumers.
fn topological(g: &Graph, producer: &[Option<usize>]) -> Result<Vec<usize>, EngineError> {
    let n = g.ops.len();
    let mut state = vec![0u8; n]; // 0 new, 1 visiting, 2 done
    let mut order = Vec::with_capacity(n);
    fn visit(
        g: &Graph,
        producer: &[Option<usize>],
        i: usize,
        state: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<(), EngineError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(EngineError::Plan(format!(
                    "{} is part of a cycle",
                    g.ops[i].name
                )))
            }
            _ => {}
        }
        state[i] = 1;
        let op = &g.ops[i];
        for &pc in op
            .inputs
            .iter()
            .chain(op.kind.side_inputs().iter().map(|(_, p)| p))
        {
            if let Some(p) = producer.get(pc).copied().flatten() {
                visit(g, producer, p, state, order)?;
            }
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..n {
        visit(g, producer, i, &mut state, &mut order)?;
    }
    Ok(order)
}
