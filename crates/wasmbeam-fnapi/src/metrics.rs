//! The user metrics harnesses report (Beam `MonitoringInfo`s in each
//! `ProcessBundleResponse`), summed over a job's bundles.
//!
//! Infos are merged by (URN, type, labels), following each metric type's
//! own rule: sums add, distributions add counts and sums and keep the
//! extremes, gauges keep the latest value, string sets take the union.
//! Types with no known rule keep the latest report. Only user metrics
//! (`beam:metric:user:…`) are kept: the runner counts elements itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use wasmbeam_proto::pipeline::v1::MonitoringInfo;

const SUM_INT64: &str = "beam:metrics:sum_int64:v1";
const SUM_DOUBLE: &str = "beam:metrics:sum_double:v1";
const DISTRIBUTION_INT64: &str = "beam:metrics:distribution_int64:v1";
const LATEST_INT64: &str = "beam:metrics:latest_int64:v1";
const SET_STRING: &str = "beam:metrics:set_string:v1";

type Key = (String, String, Vec<(String, String)>);

/// User metrics of one job, merged across bundles and harnesses.
#[derive(Default)]
pub struct MetricsAggregate {
    infos: Mutex<BTreeMap<Key, MonitoringInfo>>,
}

impl MetricsAggregate {
    /// Fold in the infos of one bundle.
    pub fn merge(&self, infos: &[MonitoringInfo]) {
        let mut all = self.infos.lock().unwrap_or_else(|p| p.into_inner());
        for info in infos
            .iter()
            .filter(|i| i.urn.starts_with("beam:metric:user:"))
        {
            let mut labels: Vec<(String, String)> = info
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let key = (info.urn.clone(), info.r#type.clone(), labels);
            match all.get_mut(&key) {
                Some(old) => {
                    if let Some(p) = combine(&info.r#type, &old.payload, &info.payload) {
                        old.payload = p;
                    } else {
                        *old = info.clone();
                    }
                }
                None => {
                    all.insert(key, info.clone());
                }
            }
        }
    }

    /// Every merged metric.
    pub fn snapshot(&self) -> Vec<MonitoringInfo> {
        let all = self.infos.lock().unwrap_or_else(|p| p.into_inner());
        all.values().cloned().collect()
    }
}

fn varints<const N: usize>(b: &[u8]) -> Option<[i64; N]> {
    let mut pos = 0;
    let mut out = [0i64; N];
    for v in out.iter_mut() {
        *v = crate::varint::read(b, &mut pos)? as i64;
    }
    Some(out)
}

fn encode(vals: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vals {
        crate::varint::write(*v as u64, &mut out);
    }
    out
}

/// An iterable of UTF-8 strings: big-endian i32 count, then each string
/// length-prefixed.
fn strings(b: &[u8]) -> Option<BTreeSet<Vec<u8>>> {
    let n = i32::from_be_bytes(b.get(..4)?.try_into().ok()?);
    let mut pos = 4;
    let mut out = BTreeSet::new();
    for _ in 0..n.max(0) {
        let len = crate::varint::read(b, &mut pos)? as usize;
        out.insert(b.get(pos..pos.checked_add(len)?)?.to_vec());
        pos += len;
    }
    Some(out)
}

/// The merged payload of two reports of one metric, or `None` when the
/// type has no merge rule (or a payload does not decode).
fn combine(type_urn: &str, a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    match type_urn {
        SUM_INT64 => {
            let ([x], [y]) = (varints::<1>(a)?, varints::<1>(b)?);
            Some(encode(&[x.wrapping_add(y)]))
        }
        SUM_DOUBLE => {
            let x = f64::from_be_bytes(a.get(..8)?.try_into().ok()?);
            let y = f64::from_be_bytes(b.get(..8)?.try_into().ok()?);
            Some((x + y).to_be_bytes().to_vec())
        }
        DISTRIBUTION_INT64 => {
            let [c1, s1, min1, max1] = varints::<4>(a)?;
            let [c2, s2, min2, max2] = varints::<4>(b)?;
            Some(encode(&[
                c1 + c2,
                s1.wrapping_add(s2),
                min1.min(min2),
                max1.max(max2),
            ]))
        }
        LATEST_INT64 => {
            let ([t1, _], [t2, _]) = (varints::<2>(a)?, varints::<2>(b)?);
            Some(if t2 >= t1 { b.to_vec() } else { a.to_vec() })
        }
        SET_STRING => {
            let mut all = strings(a)?;
            all.extend(strings(b)?);
            let mut out = (all.len() as i32).to_be_bytes().to_vec();
            for s in all {
                crate::varint::write(s.len() as u64, &mut out);
                out.extend_from_slice(&s);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(urn: &str, ty: &str, payload: Vec<u8>, name: &str) -> MonitoringInfo {
        MonitoringInfo {
            urn: urn.into(),
            r#type: ty.into(),
            payload,
            labels: [
                ("NAMESPACE".to_string(), "ns".to_string()),
                ("NAME".to_string(), name.to_string()),
                ("PTRANSFORM".to_string(), "t".to_string()),
            ]
            .into(),
            start_time: None,
        }
    }

    fn set(items: &[&str]) -> Vec<u8> {
        let mut out = (items.len() as i32).to_be_bytes().to_vec();
        for s in items {
            crate::varint::write(s.len() as u64, &mut out);
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    #[test]
    fn each_metric_type_merges_by_its_rule_and_system_metrics_are_dropped() {
        let m = MetricsAggregate::default();
        let counter = "beam:metric:user:sum_int64:v1";
        let dist = "beam:metric:user:distribution_int64:v1";
        let gauge = "beam:metric:user:latest_int64:v1";
        let strs = "beam:metric:user:set_string:v1";
        m.merge(&[
            info(counter, SUM_INT64, encode(&[2]), "c"),
            info(dist, DISTRIBUTION_INT64, encode(&[2, 4, 1, 3]), "d"),
            info(gauge, LATEST_INT64, encode(&[1000, 7]), "g"),
            info(strs, SET_STRING, set(&["a", "zzz"]), "s"),
            info("beam:metric:element_count:v1", SUM_INT64, encode(&[9]), "x"),
        ]);
        m.merge(&[
            info(counter, SUM_INT64, encode(&[-5]), "c"),
            info(counter, SUM_INT64, encode(&[4]), "other"),
            info(dist, DISTRIBUTION_INT64, encode(&[1, 10, 10, 10]), "d"),
            info(gauge, LATEST_INT64, encode(&[900, 8]), "g"),
            info(strs, SET_STRING, set(&["b", "a"]), "s"),
        ]);
        let got: BTreeMap<String, Vec<u8>> = m
            .snapshot()
            .into_iter()
            .map(|i| (i.labels["NAME"].clone(), i.payload))
            .collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got["c"], encode(&[-3]));
        assert_eq!(got["other"], encode(&[4]));
        assert_eq!(got["d"], encode(&[3, 14, 1, 10]));
        assert_eq!(got["g"], encode(&[1000, 7]), "the later report wins");
        assert_eq!(strings(&got["s"]).unwrap().len(), 3);
    }
}
