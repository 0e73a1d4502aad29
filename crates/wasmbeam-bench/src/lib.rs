//! # wasmbeam-bench
//!
//! Helpers for the end-to-end benchmark (`benches/wordcount_e2e.sh`):
//! [`corpus`] writes the team's deterministic wordcount corpus (splitmix64,
//! byte-identical to the shared reference generator: 1,000,000 lines with
//! seed 42 hash to `213855ef…27a11e0`), and the `native-wordcount` binary is
//! the single-threaded Rust `HashMap` reference.

use std::io::Write;

/// splitmix64, as specified by the corpus format.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What [`corpus`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusStats {
    /// Bytes written.
    pub bytes: u64,
    /// Words written.
    pub words: u64,
    /// Distinct vocabulary entries used.
    pub distinct: usize,
    /// Hex sha256 of the bytes.
    pub sha256: String,
}

/// Write `lines` lines of the corpus for `seed` to `out`.
pub fn corpus(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<CorpusStats> {
    use sha2::Digest;
    const VOCAB: usize = 10_000;
    let mut rng = SplitMix64(seed);
    let mut vocab: Vec<Vec<u8>> = Vec::with_capacity(VOCAB);
    let mut seen = std::collections::HashSet::new();
    while vocab.len() < VOCAB {
        let n = 2 + rng.next_u64() % 6;
        let w: Vec<u8> = (0..n).map(|_| b'a' + (rng.next_u64() % 26) as u8).collect();
        if seen.insert(w.clone()) {
            vocab.push(w);
        }
    }
    let mut h = sha2::Sha256::new();
    let mut used = vec![false; VOCAB];
    let (mut bytes, mut words) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(1 << 20);
    for _ in 0..lines {
        let n = 8 + rng.next_u64() % 5;
        for i in 0..n {
            let idx = (rng.next_u64() % VOCAB as u64) as usize;
            used[idx] = true;
            if i > 0 {
                buf.push(b' ');
            }
            buf.extend_from_slice(&vocab[idx]);
        }
        buf.push(b'\n');
        words += n;
        if buf.len() >= 1 << 20 {
            h.update(&buf);
            bytes += buf.len() as u64;
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    h.update(&buf);
    bytes += buf.len() as u64;
    out.write_all(&buf)?;
    Ok(CorpusStats {
        bytes,
        words,
        distinct: used.iter().filter(|&&u| u).count(),
        sha256: hex::encode(h.finalize()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_corpus_is_stable() {
        let mut out = Vec::new();
        let s = super::corpus(&mut out, 1000, 42).unwrap();
        assert_eq!(s.bytes as usize, out.len());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1000);
        assert!(s.words >= 8000 && s.words <= 12000);
    }
}
