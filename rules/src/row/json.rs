//! A strict reader for the one JSON shape of a row record, built for speed:
//! one pass over the bytes, strings borrowed unless they hold escapes, and
//! values no rule reads skipped without a copy.
//!
//! It accepts only what serde_json accepts (RFC 8259: no control characters
//! in strings, valid escapes and surrogate pairs, the number grammar, no
//! trailing bytes) and answers None for anything else — including valid
//! JSON in a shape it does not take (a duplicate field, a number where a
//! string is expected). None is never a loss: the caller then decodes the
//! record in full with serde_json, which also says what is wrong.

use std::borrow::Cow;

/// serde_json's recursion limit, for the values skipped.
const MAX_DEPTH: usize = 128;

/// Bytes that end a plain run inside a string: the quote, the backslash and
/// the control characters.
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Reads text already known to be UTF-8 (checked once, whole: cheaper than
/// each string on its own), so a string without escapes is a slice of it.
pub(super) struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A member's name, and its bytes `"name":` when a shape can learn them.
pub(super) type MemberName<'a> = (Cow<'a, [u8]>, Option<&'a [u8]>);

/// Where a string's contents are: a plain run of the input, or unescaped.
enum Span {
    Plain(usize, usize),
    Escaped(Vec<u8>),
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            i: 0,
        }
    }

    pub fn pos(&self) -> usize {
        self.i
    }

    /// The input from `start` to here (both between values).
    pub fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.i]
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Takes `c`, after whitespace.
    #[inline]
    pub fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After a member: true when another follows (`,`), false at the end
    /// of the object (`}`).
    #[inline]
    pub fn more(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            b'}' => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Takes `{`; true when the object has members (an empty one is taken
    /// whole).
    fn open(&mut self) -> Option<bool> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(false);
        }
        Some(true)
    }

    /// An object: each member's name handed to `member` with the reader at
    /// its value, which `member` must take.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, [u8]>) -> Option<()>,
    ) -> Option<()> {
        self.members(|r| {
            let name = r.string()?;
            r.eat(b':')?;
            member(r, name)
        })
    }

    /// Takes `token` after whitespace when the bytes there are exactly it.
    #[inline]
    pub fn take_exact(&mut self, token: &[u8]) -> bool {
        self.ws();
        let yes = self
            .b
            .get(self.i..self.i + token.len())
            .is_some_and(|here| same(here, token));
        if yes {
            self.i += token.len();
        }
        yes
    }

    /// A member's name and its `:`; with the bytes `"name":` when the name
    /// has no escape and nothing stands between it and the colon (what a
    /// [`Shape`](super::shape::Shape) can learn).
    pub fn member_name(&mut self) -> Option<MemberName<'a>> {
        self.ws();
        let start = self.i;
        let name = self.string()?;
        let end = self.i;
        self.eat(b':')?;
        let token =
            (matches!(name, Cow::Borrowed(_)) && self.i == end + 1).then(|| &self.b[start..self.i]);
        Some((name, token))
    }

    /// An object whose members `member` takes whole, name and value (with
    /// [`take_exact`](Self::take_exact) or [`member_name`](Self::member_name)).
    pub fn members(&mut self, mut member: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.open()? {
            loop {
                member(self)?;
                if !self.more()? {
                    break;
                }
            }
        }
        Some(())
    }

    /// True when only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string's bytes, unescaped; borrowed when it has no escapes.
    #[inline]
    pub fn string(&mut self) -> Option<Cow<'a, [u8]>> {
        Some(match self.span()? {
            Span::Plain(start, end) => Cow::Borrowed(&self.b[start..end]),
            Span::Escaped(bytes) => Cow::Owned(bytes),
        })
    }

    /// A string as text; borrowed when it has no escapes.
    #[inline]
    pub fn text(&mut self) -> Option<Cow<'a, str>> {
        Some(match self.span()? {
            // Between two quotes: on character boundaries.
            Span::Plain(start, end) => Cow::Borrowed(&self.text[start..end]),
            // Valid: UTF-8 input with escapes decoded to characters.
            Span::Escaped(bytes) => Cow::Owned(String::from_utf8(bytes).ok()?),
        })
    }

    #[inline]
    fn span(&mut self) -> Option<Span> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            self.plain_run();
            let c = *self.b.get(self.i)?;
            if !STOPS[c as usize] {
                self.i += 1;
                continue;
            }
            return match c {
                b'"' => {
                    self.i += 1;
                    Some(Span::Plain(start, self.i - 1))
                }
                b'\\' => self.escaped(start).map(Span::Escaped),
                _ => None,
            };
        }
    }

    /// Skips eight bytes at a time to the first that ends a plain run (the
    /// bit tricks of "Bit Twiddling Hacks": a zero byte after XOR with the
    /// quote or the backslash, a byte below 0x20); the byte loop decides
    /// the last few bytes of the input.
    #[inline]
    fn plain_run(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            let stop = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if stop != 0 {
                // False positives only sit above a true one (a borrow
                // runs upward): the lowest flag is the first stop byte.
                self.i += (stop.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
    }

    /// The rest of a string that has an escape at `self.i`.
    fn escaped(&mut self, start: usize) -> Option<Vec<u8>> {
        let mut out = self.b[start..self.i].to_vec();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let ch = self.unicode()?;
                            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    /// The character of a `\u` escape (after the `u`), a surrogate pair
    /// taken whole; None for a lone surrogate.
    fn unicode(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return None;
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            c => c,
        };
        char::from_u32(code)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut v = 0;
        for d in digits {
            v = v * 16 + (*d as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// An unsigned integer as serde_json reads one into a `u64`: digits
    /// only (no sign, fraction or exponent), no leading zero, no overflow.
    pub fn u64(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.b.get(self.i) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        match self.b.get(self.i) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    /// `null`: true and taken; anything else is left.
    pub fn null(&mut self) -> bool {
        self.ws();
        let yes = self.b[self.i..].starts_with(b"null");
        if yes {
            self.i += 4;
        }
        yes
    }

    /// Any JSON value, checked and passed over.
    pub fn skip(&mut self) -> Option<()> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|r, _| r.skip_at(depth + 1)),
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_at(depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(w).then(|| self.i += w.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

/// Two byte strings of one length are equal: compared in words, inline (a
/// column name is a few bytes; a call to `memcmp` costs more than that).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    if n >= 8 {
        // Whole words, then the last (overlapping) one.
        let mut i = 0;
        while i + 8 < n {
            if w8(a, i) != w8(b, i) {
                return false;
            }
            i += 8;
        }
        w8(a, n - 8) == w8(b, n - 8)
    } else if n >= 4 {
        w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn same_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert_eq!(
                    same(a, &b),
                    a == b.as_slice(),
                    "{n} bytes, differing at {at}"
                );
            }
        }
    }
}
