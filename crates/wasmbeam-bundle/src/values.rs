//! [`Values`]: byte strings back to back.

/// Encoded values in one flat buffer: value `i` is
/// `data[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values {
    /// The values' bytes, back to back.
    pub data: Vec<u8>,
    /// n+1 offsets into `data`, starting at 0.
    pub offsets: Vec<u32>,
}

impl Default for Values {
    #[inline]
    fn default() -> Self {
        Values {
            data: Vec::new(),
            offsets: vec![0],
        }
    }
}

impl Values {
    /// Room for `n` values of `bytes` bytes in all.
    #[inline]
    pub fn with_capacity(n: usize, bytes: usize) -> Values {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        Values {
            data: Vec::with_capacity(bytes),
            offsets,
        }
    }
    /// Build from a list of byte strings.
    #[inline]
    pub fn from_slices<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Values {
        let mut v = Values::default();
        for i in items {
            v.push(i);
        }
        v
    }
    /// Append one value.
    #[inline]
    pub fn push(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.offsets.push(self.data.len() as u32);
    }
    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// True when there are no values.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Remove every value, keeping the allocations.
    #[inline]
    pub fn clear(&mut self) {
        self.data.clear();
        self.offsets.truncate(1);
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
    }
    /// Value `i` (panics when out of range or on malformed offsets: call
    /// [`Values::check`] on untrusted values first).
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
    /// Iterate over the values.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.offsets
            .windows(2)
            .map(|w| &self.data[w[0] as usize..w[1] as usize])
    }
    /// Check that offsets start at 0, never decrease, and end at
    /// `data.len()`.
    #[inline]
    pub fn check(&self) -> Result<(), String> {
        match self.offsets.first() {
            Some(0) => {}
            Some(x) => return Err(format!("offsets must start at 0, not {x}")),
            None => return Err("offsets must have n+1 entries, found none".into()),
        }
        if let Some(i) = self.offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!("offsets decrease at index {}", i + 1));
        }
        let last = *self.offsets.last().unwrap_or(&0) as usize;
        if last != self.data.len() {
            return Err(format!(
                "last offset is {last} but data holds {} bytes",
                self.data.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_and_check() {
        let mut v = Values::from_slices([b"ab".as_slice(), b"", b"cde"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(2), b"cde");
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![&b"ab"[..], b"", b"cde"]);
        assert!(v.check().is_ok());
        v.offsets[1] = 9;
        assert_eq!(v.check().unwrap_err(), "offsets decrease at index 2");
        v.clear();
        assert!(v.is_empty() && v.check().is_ok());
    }

    #[test]
    fn check_names_what_is_wrong() {
        let v = Values {
            data: vec![1, 2],
            offsets: vec![0, 1],
        };
        assert_eq!(
            v.check().unwrap_err(),
            "last offset is 1 but data holds 2 bytes"
        );
        let v = Values {
            data: vec![],
            offsets: vec![],
        };
        assert!(v.check().unwrap_err().contains("n+1"));
        let v = Values {
            data: vec![],
            offsets: vec![3],
        };
        assert!(v.check().unwrap_err().contains("start at 0"));
    }
}
