//! The WASM harness against real components built from `tests/udfs`.

mod common;

use std::time::{Duration, Instant};

use wasmbeam_wasm_host::*;

fn host(cache: &std::path::Path) -> UdfHost {
    UdfHost::new(HostConfig {
        cache_dir: Some(cache.to_path_buf()),
        ..HostConfig::default()
    })
    .unwrap()
}

fn modes(h: &UdfHost) -> UdfComponent {
    h.load_file(&common::build_udf("modes")).unwrap()
}

fn spec(mode: &str) -> DoFnSpec {
    DoFnSpec {
        config: mode.as_bytes().to_vec(),
        outputs: vec!["main".into()],
        ..DoFnSpec::default()
    }
}

fn batch(values: &[&[u8]]) -> Batch {
    let mut b = Batch::default();
    for (i, v) in values.iter().enumerate() {
        b.push_global(v, 1000 + i as i64);
    }
    b
}

/// An identity DoFn gives back every element, each from its own source,
/// to the main output, keeping its timestamp; finish-bundle emits nothing.
fn assert_identity(pool: &DoFnPool) {
    let (out, fin) = pool.run_bundle(&batch(&[b"a", b"", b"ccc"])).unwrap();
    assert_eq!(strings(&out.values), ["a", "", "ccc"]);
    assert_eq!(out.sources, [0, 1, 2]);
    for i in 0..3 {
        assert_eq!((out.tag(i), out.timestamp(i)), (0, INHERIT_TIMESTAMP));
    }
    assert!(fin.values.is_empty());
}

fn strings(v: &Values) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn identity_dofn_returns_every_element_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("identity")).unwrap();
    assert_identity(&pool);
    // The same instance serves the next bundle.
    let (out, _) = pool.run_bundle(&batch(&[b"x"])).unwrap();
    assert_eq!(strings(&out.values), ["x"]);
}

#[test]
fn multiple_outputs_go_to_their_tags() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let spec = DoFnSpec {
        config: b"parity".to_vec(),
        outputs: vec!["even".into(), "odd".into()],
        ..DoFnSpec::default()
    };
    let pool = DoFnPool::new(modes(&h), spec).unwrap();
    // varint encodings of 1..=5
    let (out, _) = pool
        .run_bundle(&batch(&[&[1], &[2], &[3], &[4], &[5]]))
        .unwrap();
    let even: Vec<_> = out
        .tags
        .iter()
        .zip(out.values.iter())
        .filter(|(t, _)| **t == 0)
        .map(|(_, v)| v[0])
        .collect();
    let odd: Vec<_> = out
        .tags
        .iter()
        .zip(out.values.iter())
        .filter(|(t, _)| **t == 1)
        .map(|(_, v)| v[0])
        .collect();
    assert_eq!(even, [2, 4]);
    assert_eq!(odd, [1, 3, 5]);
    // Asking for an output the transform lacks fails in setup, with the guest's message.
    let bad = DoFnSpec {
        config: b"parity".to_vec(),
        outputs: vec!["even".into()],
        ..DoFnSpec::default()
    };
    let err = DoFnPool::new(modes(&h), bad).err().unwrap().to_string();
    assert!(err.contains("no output tagged \"odd\""), "{err}");
}

#[test]
fn typed_coders_timestamps_and_windows_cross_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("upper")).unwrap();
    let (out, _) = pool.run_bundle(&batch(&[b"hello"])).unwrap();
    // kv<utf8, varint>: nested "HELLO" then varint 5.
    assert_eq!(out.values.get(0), b"\x05HELLO\x05");
    assert_eq!(out.timestamps, [2000]);

    let pool = DoFnPool::new(modes(&h), spec("windows")).unwrap();
    let mut b = Batch::default();
    b.push(
        b"e",
        5,
        [Window { start: 0, end: 10 }, Window { start: 5, end: 15 }],
        0b0111,
    );
    b.push_global(b"g", 7);
    let (out, _) = pool.run_bundle(&b).unwrap();
    assert_eq!(strings(&out.values)[..2], ["e@[0,10)", "e@[5,15)"]);
    assert!(
        strings(&out.values)[2].ends_with("G"),
        "{:?}",
        strings(&out.values)
    );
}

#[test]
fn finish_bundle_outputs_carry_their_own_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("finish")).unwrap();
    let (_, fin) = pool.run_bundle(&batch(&[b"a", b"b"])).unwrap();
    assert_eq!(strings(&fin.values), ["count=2"]);
    assert_eq!(fin.sources, [NO_SOURCE]);
    assert_eq!(fin.timestamps, [42]);
}

#[test]
fn side_inputs_reach_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let spec = DoFnSpec {
        config: b"side".to_vec(),
        outputs: vec!["main".into()],
        side_inputs: vec![SideInput {
            tag: "words".into(),
            kind: SideInputKind::Iterable,
            elements: batch(&[b"x", b"y"]),
        }],
        ..DoFnSpec::default()
    };
    let pool = DoFnPool::new(modes(&h), spec).unwrap();
    let (out, _) = pool.run_bundle(&batch(&[b"a"])).unwrap();
    assert_eq!(strings(&out.values), ["a|words:x", "a|words:y"]);
}

#[test]
fn combinefn_adds_merges_and_extracts_over_groups() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let c = h.load_file(&common::build_udf("sum")).unwrap();
    assert_eq!(c.kind(), UdfKind::CombineFn);
    let pool = CombineFnPool::new(c, Vec::new(), Limits::default(), Grants::default()).unwrap();
    let mut f = pool.acquire().unwrap();
    let empty = f.create_accumulator().unwrap();
    // Two groups: [1,2,3] and [10].
    let accs = Values::from_slices([empty.as_slice(), empty.as_slice()]);
    let inputs = Values::from_slices([&[1u8][..], &[2], &[3], &[10]]);
    let partial = f.add_inputs(&accs, &inputs, &[3, 4]).unwrap();
    // Merge both partials of group 0 with group 1's, as after a shuffle.
    let all = Values::from_slices([partial.get(0), partial.get(1), partial.get(0)]);
    let merged = f.merge_accumulators(&all, &[2, 3]).unwrap();
    let out = f.extract_outputs(&merged).unwrap();
    assert_eq!(strings(&out), ["16/4", "6/3"]);
    pool.release(f);
    // A DoFn component is refused where a CombineFn is needed.
    let err = CombineFnPool::new(modes(&h), Vec::new(), Limits::default(), Grants::default())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("is a DoFn, but the transform needs a CombineFn"),
        "{err}"
    );
}

#[test]
fn guest_error_names_the_element_and_keeps_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("fail-on-bad")).unwrap();
    let err = pool.run_bundle(&batch(&[b"ok", b"bad"])).unwrap_err();
    assert_eq!(
        err,
        UdfError::Guest {
            name: pool.component().name().into(),
            message: "refusing the value \"bad\"".into(),
            element: Some(1)
        }
    );
    assert!(
        err.to_string().contains("on element 1 of the bundle"),
        "{err}"
    );
    let (out, _) = pool.run_bundle(&batch(&[b"fine"])).unwrap();
    assert_eq!(strings(&out.values), ["fine"]);
}

#[test]
fn python_guest_packs_outputs_and_names_the_element_of_a_non_bytes_output() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let py = h.load_file(&common::build_udf("identity-py")).unwrap();
    // Packed offsets, sources and the omitted tags and timestamps round-trip.
    let pool = DoFnPool::new(py.clone(), spec("")).unwrap();
    assert_identity(&pool);
    // A str where bytes belong fails the bundle and names its element.
    let pool = DoFnPool::new(py, spec("emit-str")).unwrap();
    let err = pool
        .run_bundle(&batch(&[b"a", b"b", b"c", b"d"]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            UdfError::Guest {
                element: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains("output 2 is a str, not bytes"), "{msg}");
}

#[test]
fn trap_gives_the_guest_message_and_the_next_bundle_gets_a_fresh_instance() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("trap-on-boom")).unwrap();
    let err = pool.run_bundle(&batch(&[b"a", b"boom"])).unwrap_err();
    assert!(matches!(err, UdfError::Trap { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("the guest panicked on purpose: boom"), "{msg}");
    let (out, _) = pool.run_bundle(&batch(&[b"after"])).unwrap();
    assert_eq!(strings(&out.values), ["after"]);
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline_within_twice_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let deadline = Duration::from_millis(300);
    let spec = DoFnSpec {
        limits: Limits {
            bundle_deadline: deadline,
            ..Limits::default()
        },
        ..spec("loop")
    };
    let pool = DoFnPool::new(modes(&h), spec).unwrap();
    let started = Instant::now();
    let err = pool.run_bundle(&batch(&[b"spin"])).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UdfError::Deadline { .. }), "{err:?}");
    assert!(
        took >= deadline && took < deadline * 2,
        "stopped after {took:?} for a {deadline:?} deadline"
    );
    assert!(
        err.to_string()
            .contains("exceeded the bundle deadline of 300ms"),
        "{err}"
    );
}

#[test]
fn an_instance_that_leaks_is_retired_before_it_reaches_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(
        modes(&h),
        DoFnSpec {
            limits: Limits {
                memory_bytes: 32 << 20,
                ..Limits::default()
            },
            ..spec("leak")
        },
    )
    .unwrap();
    // 1 MiB lost per bundle: one instance would hit the 32 MiB cap within
    // about 30 bundles; retired instances keep 100 bundles going.
    for i in 0..100 {
        let (out, _) = pool
            .run_bundle(&batch(&[b"x"]))
            .unwrap_or_else(|e| panic!("bundle {i}: {e}"));
        assert_eq!(out.values.get(0), b"x");
    }
}

#[test]
fn memory_bomb_is_stopped_at_the_cap_and_the_host_is_unharmed() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let pool = DoFnPool::new(
        modes(&h),
        DoFnSpec {
            limits: limits.clone(),
            ..spec("membomb")
        },
    )
    .unwrap();
    let err = pool.run_bundle(&batch(&[b"grow"])).unwrap_err();
    assert!(
        matches!(err, UdfError::MemoryCap { cap_bytes, .. } if cap_bytes == 32 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory cap of 32 MiB"), "{err}");
    // The host and other UDFs carry on.
    let ok = DoFnPool::new(
        modes(&h),
        DoFnSpec {
            limits,
            ..spec("identity")
        },
    )
    .unwrap();
    assert_eq!(
        strings(&ok.run_bundle(&batch(&[b"alive"])).unwrap().0.values),
        ["alive"]
    );
}

#[test]
fn sandbox_denies_files_env_and_network_unless_granted() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), b"hello").unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("probe")).unwrap();
    // A host file by absolute path, with HOME set in the host process.
    let host_file = data.path().join("hello.txt");
    let (out, _) = pool
        .run_bundle(&batch(&[host_file.to_str().unwrap().as_bytes()]))
        .unwrap();
    let got = strings(&out.values);
    assert!(got[0].starts_with("fs:denied"), "{got:?}");
    assert!(got[1].starts_with("write:denied"), "{got:?}");
    assert_eq!(got[2], "env:none");
    assert_eq!(got[3], "vars:0");
    assert!(got[4].starts_with("net:denied"), "{got:?}");

    // Granted read-only: reads work, writes do not.
    let grants = Grants {
        read_only_dirs: vec![(data.path().to_path_buf(), "/data".into())],
    };
    let pool = DoFnPool::new(
        modes(&h),
        DoFnSpec {
            grants,
            ..spec("probe")
        },
    )
    .unwrap();
    let (out, _) = pool.run_bundle(&batch(&[b"/data/hello.txt"])).unwrap();
    let got = strings(&out.values);
    assert_eq!(got[0], "fs:read 5 bytes");
    assert!(got[1].starts_with("write:denied"), "{got:?}");
    assert!(!data.path().join("hello.txt.written").exists());
}

#[test]
fn wrong_contract_version_is_refused_with_the_version_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let err = h
        .load_file(&common::build_udf("wrong-version"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, UdfError::Contract { .. }), "{err:?}");
    assert!(
        msg.contains("built for the UDF contract wasmbeam:udf@9.0.0"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "implements wasmbeam:udf@{}",
            wasmbeam_wasm_host::CONTRACT_VERSION
        )),
        "{msg}"
    );
}

#[test]
fn broken_components_are_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let err = h
        .load("garbage.wasm", b"\0asm\x0d\0\x01\0garbage")
        .unwrap_err();
    assert!(matches!(err, UdfError::Compile { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("UDF garbage.wasm: not a loadable WebAssembly component"),
        "{err}"
    );
    // A core module is not a component.
    let err = h.load("core.wasm", b"\0asm\x01\0\0\0").unwrap_err();
    assert!(err.to_string().contains("core.wasm"), "{err}");
}

#[test]
fn metrics_and_logs_are_collected_per_instance() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = DoFnPool::new(modes(&h), spec("metrics")).unwrap();
    pool.run_bundle(&batch(&[b"ab", b"abcd"])).unwrap();
    pool.run_bundle(&batch(&[b"x"])).unwrap();
    let m = pool.take_metrics();
    assert_eq!(m.counters["elements"], 3);
    assert_eq!(
        m.distributions["value_len"],
        Distribution {
            count: 3,
            sum: 7,
            min: 1,
            max: 4
        }
    );
    assert_eq!(m.gauges["last_len"], 1);
    assert!(pool.take_metrics().is_empty(), "metrics are drained");
}

#[test]
fn second_load_comes_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::build_udf("modes");
    let h = host(dir.path());
    let first = h.load_file(&path).unwrap();
    let cached = || -> Vec<_> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    // Only a component that has started an instance is cached: this one
    // cannot start under a 64 KiB memory cap, so nothing is written yet.
    let tiny = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    let err = DoFnPool::new(
        first.clone(),
        DoFnSpec {
            limits: tiny,
            ..spec("identity")
        },
    )
    .err()
    .expect("a 64 KiB cap is too small for the guest's initial memory");
    assert!(err.to_string().contains("memory cap of 0 MiB"), "{err}");
    assert!(cached().is_empty(), "{:?}", cached());
    DoFnPool::new(first, spec("identity")).unwrap();
    let entries = cached();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0].to_string_lossy().into_owned();
    assert!(name.ends_with(".cwasm"), "{name}");
    // A new host (as in a new process) loads the cached artifact and it works.
    let h2 = host(dir.path());
    let c = h2.load_file(&path).unwrap();
    let pool = DoFnPool::new(c, spec("identity")).unwrap();
    assert_eq!(
        strings(&pool.run_bundle(&batch(&[b"c"])).unwrap().0.values),
        ["c"]
    );
    // A corrupt cache entry is ignored and replaced, not trusted. (Entries
    // are mapped into memory, so they are only ever replaced by rename.)
    let tmp = dir.path().join("corrupt.tmp");
    std::fs::write(&tmp, b"not a compiled component").unwrap();
    std::fs::rename(&tmp, dir.path().join(&name)).unwrap();
    let h3 = host(dir.path());
    DoFnPool::new(h3.load_file(&path).unwrap(), spec("identity")).unwrap();
    assert!(std::fs::metadata(dir.path().join(&name)).unwrap().len() > 1000);
}

fn limits_with(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

fn pool_with(h: &UdfHost, mode: &str, limits: Limits) -> DoFnPool {
    DoFnPool::new(
        modes(h),
        DoFnSpec {
            limits,
            ..spec(mode)
        },
    )
    .unwrap()
}

#[test]
fn a_sleeping_guest_is_stopped_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let deadline = Duration::from_millis(500);
    let pool = pool_with(&h, "sleep", limits_with(|l| l.bundle_deadline = deadline));
    // One long sleep (std::thread::sleep: WASI subscribe-duration + poll).
    let started = Instant::now();
    let err = pool.run_bundle(&batch(&[b"4000"])).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UdfError::Deadline { .. }), "{err:?}");
    assert!(
        took >= deadline && took < deadline * 2,
        "stopped after {took:?}"
    );
    // Many short sleeps add up: 12 x 100 ms against 500 ms.
    let many: Vec<&[u8]> = vec![b"100"; 12];
    let started = Instant::now();
    let err = pool.run_bundle(&batch(&many)).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UdfError::Deadline { .. }), "{err:?}");
    assert!(
        took >= deadline && took < deadline * 2,
        "stopped after {took:?}"
    );
    // Short sleeps within the deadline are fine, and take the time asked.
    let started = Instant::now();
    let (out, _) = pool.run_bundle(&batch(&[b"50", b"50"])).unwrap();
    assert_eq!(strings(&out.values), ["50", "50"]);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn a_guest_sleeping_for_an_hour_is_cancelled_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let interrupt = Interrupt::default();
    let pool = pool_with(
        &h,
        "sleep",
        limits_with(|l| l.interrupt = Some(interrupt.clone())),
    );
    let flag = interrupt.0.clone();
    let cancel_at = Instant::now() + Duration::from_millis(300);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(cancel_at.saturating_duration_since(Instant::now()));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let err = pool.run_bundle(&batch(&[b"3600000"])).unwrap_err();
    let late = Instant::now().saturating_duration_since(cancel_at);
    canceller.join().unwrap();
    assert!(matches!(err, UdfError::Cancelled { .. }), "{err:?}");
    assert!(
        late < Duration::from_secs(1),
        "stopped {late:?} after Cancel"
    );
}

#[test]
fn memory_bombs_on_many_threads_stay_within_the_job_budget() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let budget = MemoryBudget::new(96 << 20);
    let limits = limits_with(|l| {
        l.memory_bytes = 64 << 20;
        l.job_memory = Some(budget.clone());
    });
    let pool = std::sync::Arc::new(pool_with(&h, "membomb", limits.clone()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.run_bundle(&batch(&[b"grow"])).unwrap_err())
        })
        .collect();
    let errors: Vec<UdfError> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // Four instances of up to 64 MiB each never held more than 96 MiB together.
    assert!(
        budget.peak() <= 96 << 20,
        "peak {} MiB",
        budget.peak() >> 20
    );
    assert!(
        errors.iter().any(
            |e| matches!(e, UdfError::JobMemory { budget_bytes, .. } if *budget_bytes == 96 << 20)
        ),
        "{errors:?}"
    );
    for e in &errors {
        assert!(
            matches!(e, UdfError::JobMemory { .. } | UdfError::MemoryCap { .. }),
            "{e:?}"
        );
    }
    let msg = errors
        .iter()
        .find(|e| matches!(e, UdfError::JobMemory { .. }))
        .unwrap()
        .to_string();
    assert!(msg.contains("job's memory budget of 96 MiB"), "{msg}");
    // Every failed instance gave its memory back; only the idle first one remains.
    drop(pool);
    assert_eq!(
        budget.used(),
        0,
        "memory still held after every instance is gone"
    );
    // The budget is reusable: a well-behaved UDF runs under it afterwards.
    let ok = pool_with(&h, "identity", limits);
    assert_eq!(
        strings(&ok.run_bundle(&batch(&[b"alive"])).unwrap().0.values),
        ["alive"]
    );
}

#[test]
fn a_flood_of_small_outputs_is_refused_at_the_output_cap() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let budget = MemoryBudget::new(512 << 20);
    let limits = limits_with(|l| {
        l.max_output_bytes = 16 << 20;
        l.job_memory = Some(budget.clone());
    });
    let pool = pool_with(&h, "flood", limits);
    // Within the cap: the output holds its share of the job budget until dropped.
    let (out, fin) = pool.run_bundle(&batch(&[b"10000"])).unwrap();
    assert_eq!(out.values.len(), 10_000);
    assert_eq!(out.reservation.bytes(), 10_000 * OUTPUT_ELEMENT_COST);
    let before = budget.used();
    drop((out, fin));
    assert_eq!(budget.used(), before - 10_000 * OUTPUT_ELEMENT_COST);
    let before = budget.used();
    // 1M empty values: 8 MB on the wire, 48 MB as the host would hold them.
    // 3M: 24 MB on the wire, refused while wasmtime copies it out.
    for n in [b"1000000".as_slice(), b"3000000".as_slice()] {
        let err = pool.run_bundle(&batch(&[n])).unwrap_err();
        assert!(
            matches!(err, UdfError::OutputTooLarge { cap_bytes, .. } if cap_bytes == 16 << 20),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("per-bundle output cap of 16 MiB"),
            "{err}"
        );
    }
    // Nothing of the refused outputs stays charged.
    assert!(budget.used() <= before, "{} > {before}", budget.used());
}

#[test]
fn out_of_range_output_timestamps_fail_the_bundle_naming_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = pool_with(&h, "stamp", Limits::default());
    let (out, _) = pool
        .run_bundle(&batch(&[b"-9223372036854775", b"0"]))
        .unwrap();
    assert_eq!(out.timestamps, [MIN_TIMESTAMP, 0]);
    let bad = (i64::MIN + 60_001).to_string();
    let err = pool
        .run_bundle(&batch(&[b"5", bad.as_bytes()]))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, UdfError::BadOutput { .. }), "{err:?}");
    assert!(
        msg.contains("output 1 (from input element 1 of the bundle)"),
        "{msg}"
    );
    assert!(msg.contains("outside Beam's range"), "{msg}");
    let past = GLOBAL_WINDOW_END.to_string();
    let err = pool.run_bundle(&batch(&[past.as_bytes()])).unwrap_err();
    assert!(
        err.to_string()
            .contains("past the end of the global window"),
        "{err}"
    );
}

#[test]
fn unbounded_recursion_is_named_as_stack_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let pool = pool_with(&h, "recurse", Limits::default());
    let err = pool.run_bundle(&batch(&[b"x"])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, UdfError::Trap { .. }), "{err:?}");
    assert!(msg.contains("stack") && msg.contains("recursion"), "{msg}");
}

#[test]
fn a_python_memory_error_names_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let py = h.load_file(&common::build_udf("identity-py")).unwrap();
    let pool = DoFnPool::new(
        py,
        DoFnSpec {
            limits: limits_with(|l| l.memory_bytes = 96 << 20),
            ..spec("membomb")
        },
    )
    .unwrap();
    let err = pool.run_bundle(&batch(&[b"x"])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, UdfError::MemoryCap { .. }), "{err:?}");
    assert!(msg.contains("memory cap of 96 MiB"), "{msg}");
}
