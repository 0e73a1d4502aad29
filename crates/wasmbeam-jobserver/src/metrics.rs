//! Job metrics as Beam `MonitoringInfo`s: element counts per PCollection
//! (`beam:metric:element_count:v1`) and the UDFs' user metrics (counters,
//! distributions and gauges, labelled with the transform's unique name).
//! A user metric named `namespace/name` keeps its namespace; a bare name
//! gets the transform's unique name as namespace. Metrics from SDK
//! harnesses pass through as the harnesses reported them (merged).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use wasmbeam_proto::job_management::v1::{GetJobMetricsResponse, MetricResults};
use wasmbeam_proto::pipeline::v1::MonitoringInfo;
use wasmbeam_proto::urns::{
    monitoring_info_specs::enum_ as spec, monitoring_info_type_urns::enum_ as ty,
};
use wasmbeam_proto::wasmbeam_urns;
use wasmbeam_runner::Progress;
use wasmbeam_runner::RunSummary;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn ints(vals: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vals {
        varint(*v as u64, &mut out);
    }
    out
}

fn info(
    urn: &str,
    type_urn: &str,
    payload: Vec<u8>,
    labels: &[(&str, &str)],
    at_ms: i64,
) -> MonitoringInfo {
    MonitoringInfo {
        urn: urn.into(),
        r#type: type_urn.into(),
        payload,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        start_time: Some(prost_types::Timestamp {
            seconds: at_ms.div_euclid(1000),
            nanos: (at_ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
    }
}

fn split_name<'a>(transform: &'a str, key: &'a str) -> (&'a str, &'a str) {
    key.rsplit_once('/').unwrap_or((transform, key))
}

/// The final metrics of a job (attempted and committed are the same: a
/// batch job commits everything at once).
pub fn from_summary(s: &RunSummary, at_ms: i64) -> GetJobMetricsResponse {
    let mut infos = Vec::new();
    for (pc, n) in &s.element_counts {
        infos.push(info(
            spec::ELEMENT_COUNT,
            ty::SUM_INT64_TYPE,
            ints(&[*n as i64]),
            &[("PCOLLECTION", pc)],
            at_ms,
        ));
    }
    for (t, m) in &s.user_metrics {
        for (k, v) in &m.counters {
            let (ns, name) = split_name(t, k);
            infos.push(info(
                spec::USER_SUM_INT64,
                ty::SUM_INT64_TYPE,
                ints(&[*v]),
                &[("PTRANSFORM", t), ("NAMESPACE", ns), ("NAME", name)],
                at_ms,
            ));
        }
        for (k, d) in &m.distributions {
            let (ns, name) = split_name(t, k);
            infos.push(info(
                spec::USER_DISTRIBUTION_INT64,
                ty::DISTRIBUTION_INT64_TYPE,
                ints(&[d.count, d.sum, d.min, d.max]),
                &[("PTRANSFORM", t), ("NAMESPACE", ns), ("NAME", name)],
                at_ms,
            ));
        }
        for (k, v) in &m.gauges {
            let (ns, name) = split_name(t, k);
            infos.push(info(
                spec::USER_LATEST_INT64,
                ty::LATEST_INT64_TYPE,
                ints(&[at_ms, *v]),
                &[("PTRANSFORM", t), ("NAMESPACE", ns), ("NAME", name)],
                at_ms,
            ));
        }
    }
    // SDK harnesses report theirs as MonitoringInfos already.
    infos.extend(s.sdk_metrics.iter().cloned());
    GetJobMetricsResponse {
        metrics: Some(MetricResults {
            attempted: infos.clone(),
            committed: infos,
        }),
    }
}

/// What a running job has done so far: elements produced in total
/// (attempted only; nothing is committed before the job ends).
pub fn live(p: &Progress, at_ms: i64) -> GetJobMetricsResponse {
    let n = p.elements.load(Ordering::Relaxed) as i64;
    let mut attempted = vec![info(
        spec::ELEMENT_COUNT,
        ty::SUM_INT64_TYPE,
        ints(&[n]),
        &[("PCOLLECTION", "*")],
        at_ms,
    )];
    // A streaming job's watermark per PCollection, and its lag behind the
    // clock (wasmbeam's URNs, see docs/urns.md).
    if let Ok(wms) = p.watermarks.lock() {
        for (pc, wm) in wms.iter() {
            attempted.push(info(
                wasmbeam_urns::METRIC_WATERMARK,
                ty::LATEST_INT64_TYPE,
                ints(&[at_ms, *wm]),
                &[("PCOLLECTION", pc)],
                at_ms,
            ));
            attempted.push(info(
                wasmbeam_urns::METRIC_WATERMARK_LAG,
                ty::LATEST_INT64_TYPE,
                ints(&[at_ms, at_ms.saturating_sub(*wm).max(0)]),
                &[("PCOLLECTION", pc)],
                at_ms,
            ));
        }
    }
    GetJobMetricsResponse {
        metrics: Some(MetricResults {
            attempted,
            committed: vec![],
        }),
    }
}
