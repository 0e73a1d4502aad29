//! Unit tests of the keyed state store.

use super::cell::varint;
use super::*;

fn info() -> Arc<DoFnInfo> {
    Arc::new(DoFnInfo {
        cells: vec![
            CellSpec {
                name: "v".into(),
                kind: CellKind::Value,
            },
            CellSpec {
                name: "bag".into(),
                kind: CellKind::Bag,
            },
            CellSpec {
                name: "sum".into(),
                kind: CellKind::Combining(BuiltinCombine::SumInt64),
            },
            CellSpec {
                name: "m".into(),
                kind: CellKind::Map,
            },
            CellSpec {
                name: "s".into(),
                kind: CellKind::Set,
            },
            CellSpec {
                name: "o".into(),
                kind: CellKind::OrderedList,
            },
        ],
        timers: vec![
            TimerSpec {
                name: "et".into(),
                domain: TimeDomain::EventTime,
            },
            TimerSpec {
                name: "pt".into(),
                domain: TimeDomain::ProcessingTime,
            },
        ],
        window_expiration: true,
    })
}

fn scope(k: &[u8], w: Window) -> Scope {
    (Arc::from(k), w)
}

fn read(s: &KeyedState, cell: u32, sc: &Scope) -> Vec<Vec<u8>> {
    let mut out = Values::default();
    s.read(cell, sc, &mut out).unwrap();
    out.iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn cells_keep_per_key_and_window_contents() {
    let mut s = KeyedState::new(info(), 0);
    let a = scope(b"a", Window::GLOBAL);
    let b = scope(b"b", Window::GLOBAL);
    s.write(0, &a, b"x".to_vec()).unwrap();
    s.add(1, &a, b"1".to_vec()).unwrap();
    s.add(1, &a, b"2".to_vec()).unwrap();
    s.add(2, &a, varint(40)).unwrap();
    s.add(2, &a, varint(2)).unwrap();
    s.put(3, &a, b"k2".to_vec(), b"v2".to_vec()).unwrap();
    s.put(3, &a, b"k1".to_vec(), b"v1".to_vec()).unwrap();
    s.add(4, &a, b"z".to_vec()).unwrap();
    s.add(4, &a, b"y".to_vec()).unwrap();
    s.add(4, &a, b"z".to_vec()).unwrap();
    s.add_at(5, &a, 20, b"late".to_vec()).unwrap();
    s.add_at(5, &a, 10, b"early".to_vec()).unwrap();
    assert_eq!(read(&s, 0, &a), vec![b"x".to_vec()]);
    assert_eq!(read(&s, 1, &a), vec![b"1".to_vec(), b"2".to_vec()]);
    assert_eq!(read(&s, 2, &a), vec![varint(42)]);
    assert_eq!(
        read(&s, 3, &a),
        [b"k1", b"v1", b"k2", b"v2"].map(|x| x.to_vec())
    );
    assert_eq!(read(&s, 4, &a), vec![b"y".to_vec(), b"z".to_vec()]);
    let mut r = Values::default();
    s.read_range(5, &a, 15, 30, &mut r).unwrap();
    let r: Vec<Vec<u8>> = r.iter().map(<[u8]>::to_vec).collect();
    assert_eq!(r, vec![20i64.to_le_bytes().to_vec(), b"late".to_vec()]);
    assert!(read(&s, 0, &b).is_empty(), "another key sees nothing");
    s.clear(1, &a).unwrap();
    assert!(read(&s, 1, &a).is_empty());
    let e = s.write(1, &a, vec![]).unwrap_err();
    assert!(e.contains("\"bag\""), "{e}");
    assert!(s
        .read(9, &a, &mut Values::default())
        .unwrap_err()
        .contains("cell 9"));
}

#[test]
fn timers_fire_by_domain_and_the_last_set_wins() {
    let mut s = KeyedState::new(info(), 0);
    let w = Window { start: 0, end: 100 };
    let a = scope(b"a", w);
    s.set_timer(0, &a, "".into(), 50, 50).unwrap();
    s.set_timer(0, &a, "".into(), 60, 60).unwrap();
    s.set_timer(1, &a, "p".into(), 1_000, 5).unwrap();
    assert_eq!(s.hold(), Some(5));
    assert_eq!(s.next_processing_timer(), Some(1_000));
    assert!(s.take_due(55, 0).is_empty(), "reset to 60");
    let f = s.take_due(60, 0);
    assert_eq!((f.len(), f[0].fire, f[0].family), (1, 60, 0));
    assert_eq!(s.take_due(60, 999).len(), 0);
    assert_eq!(s.take_due(60, 1_000)[0].tag, "p");
    assert_eq!(s.hold(), None);
    let e = s.set_timer(0, &a, "".into(), 100, 100).unwrap_err();
    assert!(e.contains("expires at 99"), "{e}");
}

#[test]
fn windows_expire_after_the_allowed_lateness() {
    let mut s = KeyedState::new(info(), 10);
    let a = scope(b"a", Window { start: 0, end: 100 });
    let g = scope(b"a", Window::GLOBAL);
    s.add(1, &a, b"x".to_vec()).unwrap();
    s.add(1, &g, b"y".to_vec()).unwrap();
    s.set_timer(1, &a, "".into(), 5, 5).unwrap();
    assert!(s.take_expired(109).is_empty());
    let e = s.take_expired(110);
    assert_eq!(e, vec![a.clone()]);
    assert!(s.has_state(&a));
    s.drop_scope(&a);
    assert!(!s.has_state(&a));
    assert_eq!(s.pending_timers(), 0, "its timers go with it");
    assert_eq!(s.take_expired(MAX_TIMESTAMP), vec![g]);
}

#[test]
fn held_bytes_are_charged_to_the_budget_and_given_back() {
    let budget = crate::MemoryBudget::new(4096);
    let mut s = KeyedState::new(info(), 0).with_budget(Some(budget.clone()));
    let a = scope(b"a", Window::GLOBAL);
    s.add(1, &a, vec![7; 1000]).unwrap();
    s.settle().unwrap();
    let held = budget.used();
    assert!(held >= 1000, "{held}");
    s.add(1, &a, vec![7; 4000]).unwrap();
    let (bytes, cap) = s.settle().unwrap_err();
    assert!(bytes > 4096 && cap == 4096);
    assert_eq!(budget.used(), held, "a refused growth reserves nothing");
    s.clear(1, &a).unwrap();
    s.settle().unwrap();
    assert!(budget.used() < held, "a clear gives bytes back");
    drop(s);
    assert_eq!(budget.used(), 0, "dropping the state gives back the rest");
}
