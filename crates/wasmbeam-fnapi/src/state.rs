//! The State service: side inputs and user state for a bundle, answered
//! from the [`StateProvider`] the bundle was started with.
//!
//! Values are elements encoded back to back ([`StateValue`]). A `get`
//! returns them in pages of about [`STATE_PAGE_BYTES`], cut only between
//! elements (harnesses decode each page on its own), with the byte offset of
//! the next page as the continuation token. User state appended by a
//! harness keeps each append's end as a cut point, since a harness appends
//! whole elements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::prost::Message;

/// Largest page a state `get` returns (one element may be larger).
pub const STATE_PAGE_BYTES: usize = 1 << 20;

/// Encoded elements, back to back, with the end offset of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateValue {
    /// The elements' bytes.
    pub data: Vec<u8>,
    /// End offset of every element (or of every whole run of elements) in
    /// `data`, ascending.
    pub element_ends: Vec<usize>,
}

impl StateValue {
    /// A value from encoded elements.
    pub fn from_elements<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut v = StateValue::default();
        for e in elements {
            v.data.extend_from_slice(e);
            v.element_ends.push(v.data.len());
        }
        v
    }

    /// The page starting at byte `start`: its bytes and where the next one
    /// starts (`None` at the end).
    pub fn page(&self, start: usize) -> (&[u8], Option<usize>) {
        let start = start.min(self.data.len());
        let mut cut = self.data.len();
        if self.data.len() - start > STATE_PAGE_BYTES {
            // The last element end within the page, or the first one past
            // `start` when a single element is larger than a page.
            let limit = start + STATE_PAGE_BYTES;
            let ends = self.element_ends.iter().copied().filter(|&e| e > start);
            let mut best = None;
            for e in ends {
                if e <= limit || best.is_none() {
                    best = Some(e);
                }
                if e > limit {
                    break;
                }
            }
            cut = best.unwrap_or(self.data.len());
        }
        let next = (cut < self.data.len()).then_some(cut);
        (&self.data[start..cut], next)
    }
}

/// Where a bundle's state requests are answered from: the runner's side
/// inputs and user state.
pub trait StateProvider: Send + Sync {
    /// The value under `key` (empty when there is none).
    fn get(&self, key: &fn_api::StateKey) -> Result<StateValue, String>;
    /// Append encoded elements to the value under `key`.
    fn append(&self, key: &fn_api::StateKey, data: Vec<u8>) -> Result<(), String>;
    /// Remove the value under `key`.
    fn clear(&self, key: &fn_api::StateKey) -> Result<(), String>;
    /// The cache tokens of a bundle that starts now on harness `worker_id`
    /// (`ProcessBundleRequest.cache_tokens`), so the harness may cache what
    /// it reads across bundles. Giving a token promises that the state it
    /// covers changes only through that harness's own writes while the
    /// token is in use: a side input's contents, for a side-input token;
    /// for the user-state token, every user state the bundle may touch.
    /// None by default (the harness then caches nothing across bundles).
    fn cache_tokens(&self, worker_id: &str) -> Vec<CacheToken> {
        let _ = worker_id;
        Vec::new()
    }
}

/// A `ProcessBundleRequest` cache token.
pub type CacheToken = fn_api::process_bundle_request::CacheToken;

/// A token no other call of this process returns: a user-state token for
/// one bundle, or a side input's for as long as its contents stand.
pub fn fresh_cache_token() -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("wasmbeam-{}-{n}", std::process::id()).into_bytes()
}

/// The cache token of side input `side_input_id` of `transform_id`.
pub fn side_input_token(transform_id: &str, side_input_id: &str, token: Vec<u8>) -> CacheToken {
    use fn_api::process_bundle_request::cache_token;
    CacheToken {
        token,
        r#type: Some(cache_token::Type::SideInput(cache_token::SideInput {
            transform_id: transform_id.to_string(),
            side_input_id: side_input_id.to_string(),
        })),
    }
}

/// A user-state cache token.
pub fn user_state_token(token: Vec<u8>) -> CacheToken {
    use fn_api::process_bundle_request::cache_token;
    CacheToken {
        token,
        r#type: Some(cache_token::Type::UserState(cache_token::UserState {})),
    }
}

/// State kept in memory, by encoded state key: side inputs put in with
/// [`MemoryState::put`], user state written by harnesses.
///
/// Bag-like state (bag, and the combining, value and set states SDKs build
/// on it) is one value per key. Ordered-list state keeps its elements by
/// sort key, so a get or clear can take a range; its elements are a varint
/// sort key and then the length-prefixed value, as Beam's SDKs encode them.
/// Multimap state keeps its map keys, so `MultimapKeysUserState` lists them
/// and clears them all.
#[derive(Default)]
pub struct MemoryState {
    values: Mutex<Store>,
    tokens: Mutex<Vec<CacheToken>>,
}

#[derive(Default, Clone)]
struct Store {
    plain: HashMap<Vec<u8>, StateValue>,
    /// Ordered lists by key (range unset): sort key -> elements.
    ordered: HashMap<Vec<u8>, BTreeMap<i64, Vec<Vec<u8>>>>,
    /// Multimaps by their keys-state key: map key -> values.
    multimap: HashMap<Vec<u8>, BTreeMap<Vec<u8>, StateValue>>,
}

/// How a state key is stored.
enum Slot {
    Plain(Vec<u8>),
    Ordered(Vec<u8>, Option<(i64, i64)>),
    MapValues(Vec<u8>, Vec<u8>),
    MapKeys(Vec<u8>),
}

fn slot(key: &fn_api::StateKey) -> Slot {
    use fn_api::state_key::{MultimapKeysUserState, OrderedListUserState, Type};
    match &key.r#type {
        Some(Type::OrderedListUserState(o)) => {
            let base = fn_api::StateKey {
                r#type: Some(Type::OrderedListUserState(OrderedListUserState {
                    range: None,
                    ..o.clone()
                })),
            };
            Slot::Ordered(base.encode_to_vec(), o.range.map(|r| (r.start, r.end)))
        }
        Some(Type::MultimapUserState(m)) => {
            let keys = fn_api::StateKey {
                r#type: Some(Type::MultimapKeysUserState(MultimapKeysUserState {
                    transform_id: m.transform_id.clone(),
                    user_state_id: m.user_state_id.clone(),
                    window: m.window.clone(),
                    key: m.key.clone(),
                })),
            };
            Slot::MapValues(keys.encode_to_vec(), m.map_key.clone())
        }
        Some(Type::MultimapKeysUserState(_)) => Slot::MapKeys(key.encode_to_vec()),
        _ => Slot::Plain(key.encode_to_vec()),
    }
}

/// Split ordered-list elements (varint sort key, then a length-prefixed
/// value) into (sort key, element bytes).
fn ordered_elements(data: &[u8]) -> Result<Vec<(i64, Vec<u8>)>, String> {
    let bad = |at: usize| {
        format!("ordered list state: element at byte {at} is not a varint sort key and a length-prefixed value")
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let sort = crate::varint::read(data, &mut pos).ok_or_else(|| bad(start))? as i64;
        let len = crate::varint::read(data, &mut pos).ok_or_else(|| bad(start))? as usize;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| bad(start))?;
        out.push((sort, data[start..end].to_vec()));
        pos = end;
    }
    Ok(out)
}

impl MemoryState {
    /// Set the value under `key` (a side input, for instance).
    pub fn put(&self, key: &fn_api::StateKey, value: StateValue) {
        self.lock().plain.insert(key.encode_to_vec(), value);
    }

    /// A copy of everything stored.
    pub fn copy(&self) -> MemoryState {
        MemoryState {
            values: Mutex::new(self.lock().clone()),
            tokens: Mutex::default(),
        }
    }

    /// The cache tokens every bundle served from this state gets (see
    /// [`StateProvider::cache_tokens`]): set them for side inputs, whose
    /// contents do not change once put.
    pub fn set_cache_tokens(&self, tokens: Vec<CacheToken>) {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = tokens;
    }

    /// Replace everything stored with what `other` holds.
    pub fn restore(&self, other: MemoryState) {
        let values = other.values.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.lock() = values;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateProvider for MemoryState {
    fn cache_tokens(&self, _worker_id: &str) -> Vec<CacheToken> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn get(&self, key: &fn_api::StateKey) -> Result<StateValue, String> {
        let store = self.lock();
        Ok(match slot(key) {
            Slot::Plain(k) => store.plain.get(&k).cloned().unwrap_or_default(),
            Slot::Ordered(k, range) => {
                let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
                let mut v = StateValue::default();
                if let Some(list) = store.ordered.get(&k).filter(|_| lo < hi) {
                    for (_, elements) in list.range(lo..hi) {
                        for e in elements {
                            v.data.extend_from_slice(e);
                            v.element_ends.push(v.data.len());
                        }
                    }
                }
                v
            }
            Slot::MapValues(k, map_key) => store
                .multimap
                .get(&k)
                .and_then(|m| m.get(&map_key))
                .cloned()
                .unwrap_or_default(),
            Slot::MapKeys(k) => StateValue::from_elements(
                store
                    .multimap
                    .get(&k)
                    .into_iter()
                    .flat_map(|m| m.keys().map(Vec::as_slice)),
            ),
        })
    }

    fn append(&self, key: &fn_api::StateKey, data: Vec<u8>) -> Result<(), String> {
        let mut store = self.lock();
        let push = |v: &mut StateValue, data: &[u8]| {
            v.data.extend_from_slice(data);
            v.element_ends.push(v.data.len());
        };
        match slot(key) {
            Slot::Plain(k) => push(store.plain.entry(k).or_default(), &data),
            Slot::Ordered(k, _) => {
                let list = store.ordered.entry(k).or_default();
                for (sort, e) in ordered_elements(&data)? {
                    list.entry(sort).or_default().push(e);
                }
            }
            Slot::MapValues(k, map_key) => push(
                store
                    .multimap
                    .entry(k)
                    .or_default()
                    .entry(map_key)
                    .or_default(),
                &data,
            ),
            Slot::MapKeys(_) => {
                return Err("multimap keys cannot be appended to; append to a map key".into())
            }
        }
        Ok(())
    }

    fn clear(&self, key: &fn_api::StateKey) -> Result<(), String> {
        let mut store = self.lock();
        match slot(key) {
            Slot::Plain(k) => {
                store.plain.remove(&k);
            }
            Slot::Ordered(k, None) => {
                store.ordered.remove(&k);
            }
            Slot::Ordered(k, Some((lo, hi))) => {
                if let Some(list) = store.ordered.get_mut(&k).filter(|_| lo < hi) {
                    let doomed: Vec<i64> = list.range(lo..hi).map(|(s, _)| *s).collect();
                    for s in doomed {
                        list.remove(&s);
                    }
                }
            }
            Slot::MapValues(k, map_key) => {
                if let Some(m) = store.multimap.get_mut(&k) {
                    m.remove(&map_key);
                }
            }
            Slot::MapKeys(k) => {
                store.multimap.remove(&k);
            }
        }
        Ok(())
    }
}

/// Answer one state request with `provider`.
pub(crate) fn answer(
    provider: Option<&dyn StateProvider>,
    req: fn_api::StateRequest,
) -> fn_api::StateResponse {
    use fn_api::state_request::Request as Rq;
    use fn_api::state_response::Response as Rs;
    let mut resp = fn_api::StateResponse {
        id: req.id.clone(),
        ..Default::default()
    };
    let Some(provider) = provider else {
        resp.error = format!(
            "no state is available for instruction {:?}: it is not a running bundle, or its bundle was started without state",
            req.instruction_id
        );
        return resp;
    };
    let Some(key) = req.state_key else {
        resp.error = "the state request has no state_key".into();
        return resp;
    };
    let result = match req.request {
        Some(Rq::Get(g)) => {
            let start = if g.continuation_token.is_empty() {
                Ok(0)
            } else {
                std::str::from_utf8(&g.continuation_token)
                    .ok()
                    .and_then(|t| t.parse::<usize>().ok())
                    .ok_or_else(|| "the continuation token was not issued by wasmbeam".to_string())
            };
            start.and_then(|start| {
                let value = provider.get(&key)?;
                let (page, next) = value.page(start);
                Ok(Rs::Get(fn_api::StateGetResponse {
                    continuation_token: next
                        .map(|n| n.to_string().into_bytes())
                        .unwrap_or_default(),
                    data: page.to_vec(),
                }))
            })
        }
        Some(Rq::Append(a)) => provider
            .append(&key, a.data)
            .map(|()| Rs::Append(fn_api::StateAppendResponse {})),
        Some(Rq::Clear(_)) => provider
            .clear(&key)
            .map(|()| Rs::Clear(fn_api::StateClearResponse {})),
        _ => Err("only get, append and clear state requests are supported".into()),
    };
    match result {
        Ok(r) => resp.response = Some(r),
        Err(e) => resp.error = e,
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: fn_api::StateKey, token: &[u8]) -> fn_api::StateRequest {
        fn_api::StateRequest {
            id: "r1".into(),
            instruction_id: "wb-9".into(),
            state_key: Some(key),
            request: Some(fn_api::state_request::Request::Get(
                fn_api::StateGetRequest {
                    continuation_token: token.to_vec(),
                },
            )),
        }
    }

    fn bag() -> fn_api::StateKey {
        fn_api::StateKey {
            r#type: Some(fn_api::state_key::Type::BagUserState(
                fn_api::state_key::BagUserState {
                    transform_id: "t".into(),
                    user_state_id: "s".into(),
                    window: vec![],
                    key: b"k".to_vec(),
                },
            )),
        }
    }

    #[test]
    fn requests_without_state_or_with_foreign_tokens_get_errors_not_panics() {
        let r = answer(None, get(bag(), b""));
        assert_eq!(r.id, "r1");
        assert!(
            r.error
                .contains("no state is available for instruction \"wb-9\""),
            "{}",
            r.error
        );
        let m = MemoryState::default();
        let r = answer(Some(&m), get(bag(), b"not-a-number"));
        assert!(r.error.contains("continuation token"), "{}", r.error);
        let mut no_key = get(bag(), b"");
        no_key.state_key = None;
        assert!(answer(Some(&m), no_key).error.contains("no state_key"));
        // Append, get and clear round-trip through the provider.
        let append = fn_api::StateRequest {
            request: Some(fn_api::state_request::Request::Append(
                fn_api::StateAppendRequest {
                    data: b"ab".to_vec(),
                },
            )),
            ..get(bag(), b"")
        };
        assert!(answer(Some(&m), append).error.is_empty());
        match answer(Some(&m), get(bag(), b"")).response {
            Some(fn_api::state_response::Response::Get(g)) => {
                assert_eq!(
                    (g.data.as_slice(), g.continuation_token.len()),
                    (&b"ab"[..], 0)
                )
            }
            other => panic!("{other:?}"),
        }
        let clear = fn_api::StateRequest {
            request: Some(fn_api::state_request::Request::Clear(
                fn_api::StateClearRequest {},
            )),
            ..get(bag(), b"")
        };
        assert!(answer(Some(&m), clear).error.is_empty());
        assert_eq!(m.get(&bag()).unwrap(), StateValue::default());
    }

    #[test]
    fn pages_cut_between_elements_and_cover_everything_once() {
        let big = vec![7u8; STATE_PAGE_BYTES / 3];
        let elems: Vec<&[u8]> = (0..10).map(|_| big.as_slice()).collect();
        let v = StateValue::from_elements(elems);
        let mut start = 0;
        let mut got = Vec::new();
        let mut pages = 0;
        loop {
            let (page, next) = v.page(start);
            assert!(page.len() <= STATE_PAGE_BYTES);
            assert_eq!(page.len() % big.len(), 0, "a page ends between elements");
            got.extend_from_slice(page);
            pages += 1;
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        assert_eq!(got, v.data);
        assert_eq!(pages, 4); // 3 + 3 + 3 + 1 elements
                              // One element larger than a page still comes whole.
        let huge = vec![1u8; STATE_PAGE_BYTES * 2];
        let v = StateValue::from_elements([huge.as_slice(), b"x".as_slice()]);
        let (p, next) = v.page(0);
        assert_eq!((p.len(), next), (huge.len(), Some(huge.len())));
        assert_eq!(v.page(huge.len()), (&b"x"[..], None));
    }

    fn ordered(range: Option<(i64, i64)>) -> fn_api::StateKey {
        fn_api::StateKey {
            r#type: Some(fn_api::state_key::Type::OrderedListUserState(
                fn_api::state_key::OrderedListUserState {
                    transform_id: "t".into(),
                    user_state_id: "o".into(),
                    window: vec![],
                    key: b"k".to_vec(),
                    range: range.map(|(start, end)| fn_api::OrderedListRange { start, end }),
                },
            )),
        }
    }

    /// One ordered-list element: varint sort key, length-prefixed value.
    fn element(sort: u8, value: &[u8]) -> Vec<u8> {
        [&[sort, value.len() as u8][..], value].concat()
    }

    #[test]
    fn ordered_list_state_reads_and_clears_by_sort_key_range() {
        let m = MemoryState::default();
        let data = [element(30, b"c"), element(10, b"a"), element(20, b"b")].concat();
        m.append(&ordered(None), data).unwrap();
        m.append(&ordered(None), element(10, b"a2")).unwrap();
        let all = m.get(&ordered(Some((0, 100)))).unwrap();
        assert_eq!(
            all.data,
            [
                element(10, b"a"),
                element(10, b"a2"),
                element(20, b"b"),
                element(30, b"c")
            ]
            .concat()
        );
        assert_eq!(all.element_ends.len(), 4);
        let mid = m.get(&ordered(Some((11, 30)))).unwrap();
        assert_eq!(
            mid.data,
            element(20, b"b"),
            "the end of a range is exclusive"
        );
        m.clear(&ordered(Some((0, 20)))).unwrap();
        assert_eq!(
            m.get(&ordered(Some((0, 100)))).unwrap().data,
            [element(20, b"b"), element(30, b"c")].concat()
        );
        assert!(m
            .append(&ordered(None), vec![5, 9, 1])
            .unwrap_err()
            .contains("byte 0"));
    }

    #[test]
    fn multimap_state_lists_its_keys_and_clears_them_all() {
        use fn_api::state_key::{MultimapKeysUserState, MultimapUserState, Type};
        let entry = |map_key: &[u8]| fn_api::StateKey {
            r#type: Some(Type::MultimapUserState(MultimapUserState {
                transform_id: "t".into(),
                user_state_id: "m".into(),
                window: vec![],
                key: b"k".to_vec(),
                map_key: map_key.to_vec(),
            })),
        };
        let keys = fn_api::StateKey {
            r#type: Some(Type::MultimapKeysUserState(MultimapKeysUserState {
                transform_id: "t".into(),
                user_state_id: "m".into(),
                window: vec![],
                key: b"k".to_vec(),
            })),
        };
        m_roundtrip(&entry, &keys);
    }

    fn m_roundtrip(entry: &dyn Fn(&[u8]) -> fn_api::StateKey, keys: &fn_api::StateKey) {
        let m = MemoryState::default();
        m.append(&entry(b"\x01x"), b"1".to_vec()).unwrap();
        m.append(&entry(b"\x01x"), b"2".to_vec()).unwrap();
        m.append(&entry(b"\x01y"), b"3".to_vec()).unwrap();
        assert_eq!(m.get(&entry(b"\x01x")).unwrap().data, b"12");
        assert_eq!(m.get(keys).unwrap().data, b"\x01x\x01y");
        m.clear(&entry(b"\x01x")).unwrap();
        assert_eq!(m.get(keys).unwrap().data, b"\x01y");
        m.clear(keys).unwrap();
        assert!(m.get(&entry(b"\x01y")).unwrap().data.is_empty());
        assert!(m.get(keys).unwrap().data.is_empty());
    }
}
