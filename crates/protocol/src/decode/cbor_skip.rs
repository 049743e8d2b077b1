//! Skipping CBOR items without keeping them: how many items an indefinite-length array holds,
//! counted before it is read, so a list reserves exactly what it needs (issue #17 item 6).

use super::{Fail, MAX_DEPTH, Reader};

impl Reader<'_> {
    /// How many items are left before the break of the indefinite-length array being read,
    /// counted by skipping them on a copy of the reader (no allocation, linear in their
    /// bytes); when they are not well-formed, how many are before the first that is not
    /// (reading that one will say why), so a list never reserves or grows past them.
    pub(super) fn items_left(&self) -> u64 {
        let mut r = Reader { nodes: 0, ..*self };
        let mut n = 0;
        while let Ok(false) = r.at_break() {
            if r.skip().is_err() {
                break;
            }
            n += 1;
        }
        n
    }

    /// Moves past one data item without keeping it.
    fn skip(&mut self) -> Result<(), Fail> {
        let h = self.head()?;
        let body = |r: &mut Self, n: Option<u64>, per: u64| -> Result<(), Fail> {
            if r.depth >= MAX_DEPTH {
                return Err(Fail::invalid("too deep"));
            }
            r.depth += 1;
            match n {
                Some(n) => (0..r.count(n, per)? * per).try_for_each(|_| r.skip())?,
                None => {
                    while !r.at_break()? {
                        (0..per).try_for_each(|_| r.skip())?;
                    }
                }
            }
            r.depth -= 1;
            Ok(())
        };
        match (h.major, h.arg) {
            (0 | 1 | 7, Some(_)) => Ok(()),
            (2 | 3, Some(n)) => self.take(n).map(drop),
            (2 | 3, None) => body(self, None, 1),
            (4, n) => body(self, n, 1),
            (5, n) => body(self, n, 2),
            // Tags (refused when read), breaks out of place, indefinite numbers.
            _ => Err(Fail::syntax("not a report item")),
        }
    }
}
