//! A result row read once per record: the fields the rules need, borrowed
//! from the record's bytes where JSON lets them be (no escapes), and the
//! columns the rule set refers to placed in slots by id, so a condition
//! finds a column without a map lookup or a copy.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

use crate::matcher::{parse_num, Columns};

mod json;
mod shape;

use json::Reader;
use shape::Shapes;

/// What reading keeps from one record to the next, for one rule set's
/// columns: the names of each query's rows in their usual order, and the
/// memory of the last row's slots.
#[derive(Debug, Default)]
pub struct Scratch {
    shapes: Shapes,
    values: Vec<Option<Cow<'static, str>>>,
    infixes: Vec<OnceCell<Box<[bool]>>>,
}

impl Scratch {
    /// Takes back a row's slots for the next row.
    pub fn recycle(&mut self, view: RowView<'_>) {
        let RowView {
            mut values,
            mut infixes,
            ..
        } = view;
        values.clear();
        // Empty, so the same memory without the row's lifetime.
        self.values = values.into_iter().map(|_| None).collect();
        infixes.clear();
        self.infixes = infixes;
    }
}

/// A row record (`sweep.results`/`sweep.hunts`), as the rules read it.
#[derive(Debug)]
pub struct RowRecord<'a> {
    pub name: Cow<'a, str>,
    pub host: Cow<'a, str>,
    pub unix_time: u64,
    /// The `columns` object's JSON text, checked: every value a string.
    /// Read for the columns a rule set refers to ([`RowRecord::read`]),
    /// and whole only for a match ([`RowRecord::columns_map`]).
    pub columns: Cow<'a, str>,
    pub action: Cow<'a, str>,
    pub hunt_id: Option<Cow<'a, str>>,
    pub seq: Option<u64>,
}

/// The fields of a row record, by bit: each may appear once.
const NAME: u16 = 1;
const HOST: u16 = 1 << 1;
const CALENDAR: u16 = 1 << 2;
const TIME: u16 = 1 << 3;
const COLUMNS: u16 = 1 << 4;
const ACTION: u16 = 1 << 5;
const HUNT: u16 = 1 << 6;
const SEQ: u16 = 1 << 7;
const STATUS: u16 = 1 << 8;
const SEAL: u16 = 1 << 9;
const EPOCH: u16 = 1 << 10;
const COUNTER: u16 = 1 << 11;
const DECORATIONS: u16 = 1 << 12;
const REQUIRED: u16 = NAME | HOST | CALENDAR | TIME | COLUMNS | ACTION;

/// The fields as the agent writes them (serde's order of
/// [`sweep_proto::ResultRow`]), each as the bytes `"name":`.
const FIELD_ORDER: [(&[u8], u16); 11] = [
    (b"\"name\":", NAME),
    (b"\"hostIdentifier\":", HOST),
    (b"\"calendarTime\":", CALENDAR),
    (b"\"unixTime\":", TIME),
    (b"\"epoch\":", EPOCH),
    (b"\"counter\":", COUNTER),
    (b"\"decorations\":", DECORATIONS),
    (b"\"columns\":", COLUMNS),
    (b"\"action\":", ACTION),
    (b"\"hunt_id\":", HUNT),
    (b"\"seq\":", SEQ),
];

/// The fields of other records, which make one not a row.
const NOT_ROW_FIELDS: [(&[u8], u16); 2] = [(b"\"status\":", STATUS), (b"\"seal\":", SEAL)];

/// A field's bit by its name; 0 for a field rows do not have.
fn field_of(name: &[u8]) -> u16 {
    FIELD_ORDER
        .iter()
        .chain(&NOT_ROW_FIELDS)
        .find(|(token, _)| &token[1..token.len() - 2] == name)
        .map_or(0, |&(_, bit)| bit)
}

impl<'a> RowRecord<'a> {
    /// The record as a row, or None when it is anything else (a status, a
    /// seal, not a record at all, or a row in a shape the fast reader does
    /// not take): those go through the full decoder, which also says what
    /// is wrong with a bad one.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        read(bytes, |r, _| r.object(|r, _| r.string().map(drop)))
    }

    /// [`parse`](Self::parse), and the row's columns in a rule set's slots,
    /// in the same pass: values no rule reads are passed over. `scratch` is
    /// kept from record to record, for these `columns`.
    pub fn read<'c>(
        bytes: &'a [u8],
        columns: &'c Columns,
        scratch: &mut Scratch,
    ) -> Option<(Self, RowView<'c>)>
    where
        'a: 'c,
    {
        let mut view = RowView::reusing(
            columns,
            std::mem::take(&mut scratch.values),
            std::mem::take(&mut scratch.infixes),
        );
        let shapes = &mut scratch.shapes;
        let row = read(bytes, |r, query| match query {
            Some(query) => view.members(r, shapes, query),
            None => r.object(|r, name| view.take(r, &name)),
        })?;
        Some((row, view))
    }

    /// A decoded row seen through this type (tests, and the full decoder's
    /// rows).
    pub fn from_row(row: &'a sweep_proto::ResultRow) -> Self {
        Self {
            name: Cow::Borrowed(&row.name),
            host: Cow::Borrowed(&row.host_identifier),
            unix_time: row.unix_time,
            columns: Cow::Owned(serde_json::to_string(&row.columns).expect("strings serialize")),
            action: Cow::Borrowed(&row.action),
            hunt_id: row.hunt_id.as_deref().map(Cow::Borrowed),
            seq: row.seq,
        }
    }

    /// The columns as osquery logs them, for a match.
    pub fn columns_map(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        // Checked when the record was read: every member is a string pair.
        Reader::new(&self.columns).object(|r, k| {
            let v = r.text()?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), v.into_owned());
            Some(())
        });
        out
    }
}

/// Reads a row record, handing the reader at the `columns` object to
/// `columns_object` (which must take it) with the query's name when it came
/// first, as the agent writes it. It takes what
/// [`sweep_proto::ResultRow`] takes (the fields' types, no duplicate
/// field, unknown fields ignored). The record's UTF-8 is checked once, whole
/// (serde_json refuses a record with invalid UTF-8 anywhere in it), so each
/// string is then text without another check.
fn read<'a>(
    bytes: &'a [u8],
    mut columns_object: impl FnMut(&mut Reader<'a>, Option<&str>) -> Option<()>,
) -> Option<RowRecord<'a>> {
    let mut r = Reader::new(simdutf8::basic::from_utf8(bytes).ok()?);
    let (mut name, mut host, mut time, mut columns, mut action) = (None, None, 0, None, None);
    let (mut hunt_id, mut seq) = (None, None);
    let mut seen = 0u16;
    let mut next = 0;
    r.members(|r| {
        // The agent writes the fields in one order: the next is known by
        // its bytes (an optional one may be missing) before it is read.
        let known = (next..FIELD_ORDER.len().min(next + 2))
            .find(|&k| r.take_exact(FIELD_ORDER[k].0))
            .map(|k| {
                next = k + 1;
                FIELD_ORDER[k].1
            });
        let field = match known {
            Some(field) => field,
            None => field_of(&r.member_name()?.0),
        };
        if seen & field != 0 {
            return None; // a duplicate field
        }
        seen |= field;
        match field {
            NAME => name = Some(r.text()?),
            HOST => host = Some(r.text()?),
            TIME => time = r.u64()?,
            // Not used here, but checked as the full decoder checks them.
            CALENDAR => drop(r.string()?),
            EPOCH | COUNTER => drop(r.u64()?),
            DECORATIONS => r.object(|r, _| r.string().map(drop))?,
            ACTION => action = Some(r.text()?),
            HUNT => hunt_id = if r.null() { None } else { Some(r.text()?) },
            SEQ => seq = if r.null() { None } else { Some(r.u64()?) },
            // Statuses and seals take the full decoder; null is absent (and
            // not a field of a row, so it may repeat).
            STATUS | SEAL => {
                if !r.null() {
                    return None;
                }
                seen &= !field;
            }
            COLUMNS => {
                r.peek()?;
                let start = r.pos();
                columns_object(r, name.as_deref())?;
                columns = Some(Cow::Borrowed(r.since(start)));
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    if seen & REQUIRED != REQUIRED || !r.at_end() {
        return None;
    }
    Some(RowRecord {
        name: name?,
        host: host?,
        unix_time: time,
        columns: columns?,
        action: action?,
        hunt_id,
        seq,
    })
}

/// One row's columns in the rule set's slots: a missing column and an empty
/// value (osquery's NULL) are both None. Which infix patterns a column's
/// value holds (asked by several rules) is worked out once, when first
/// asked.
#[derive(Debug)]
pub struct RowView<'a> {
    columns: &'a Columns,
    values: Vec<Option<Cow<'a, str>>>,
    /// By infix column ([`Columns::infix_column`]).
    infixes: Vec<OnceCell<Box<[bool]>>>,
}

impl<'a> RowView<'a> {
    fn empty(columns: &'a Columns) -> Self {
        Self::reusing(columns, Vec::new(), Vec::new())
    }

    /// An empty view in the memory of an earlier row's (emptied) slots.
    fn reusing(
        columns: &'a Columns,
        mut values: Vec<Option<Cow<'a, str>>>,
        mut infixes: Vec<OnceCell<Box<[bool]>>>,
    ) -> Self {
        values.resize(columns.len(), None);
        infixes.resize_with(columns.infix_columns(), OnceCell::new);
        Self {
            columns,
            values,
            infixes,
        }
    }

    /// The columns of a `columns` object's JSON text in slots; None when it
    /// is not an object of strings.
    pub fn new(columns: &'a Columns, json: &'a str) -> Option<Self> {
        let mut view = Self::empty(columns);
        let mut r = Reader::new(json);
        r.object(|r, name| view.take(r, &name))?;
        r.at_end().then_some(view)
    }

    /// Takes column `name`'s value from the reader: into its slot when a
    /// rule reads it (the last of repeated names wins, as in a map).
    fn take<'b: 'a>(&mut self, r: &mut Reader<'b>, name: &[u8]) -> Option<()> {
        self.put(r, self.columns.get_bytes(name))
    }

    /// Takes a value from the reader into slot `id`, if any.
    #[inline]
    fn put<'b: 'a>(&mut self, r: &mut Reader<'b>, id: Option<usize>) -> Option<()> {
        match id {
            Some(id) => {
                let value = r.text()?;
                self.values[id] = (!value.is_empty()).then_some(value);
            }
            None => drop(r.string()?),
        }
        Some(())
    }

    /// The members of a `columns` object, names recognised from the
    /// query's shape where they are where they were last time, and learnt
    /// where not.
    fn members<'b: 'a>(
        &mut self,
        r: &mut Reader<'b>,
        shapes: &mut Shapes,
        query: &str,
    ) -> Option<()> {
        let shape = shapes.of(query);
        let (mut k, mut known) = (0, 0);
        r.members(|r| {
            let id = match shape.known(r, k) {
                Some(id) => {
                    known += 1;
                    id
                }
                None => {
                    let (name, token) = r.member_name()?;
                    let id = self.columns.get_bytes(&name);
                    if let Some(token) = token {
                        shape.learn(k, token, id);
                    }
                    id
                }
            };
            k += 1;
            self.put(r, id)
        })?;
        shapes.recognised(known);
        Some(())
    }

    pub fn get(&self, id: usize) -> Option<&str> {
        self.values.get(id).and_then(|v| v.as_deref())
    }

    /// The column's value as a number, if it is one (parsed when asked:
    /// few rules are tried on a row, and plain integers parse fast).
    pub fn num(&self, id: usize) -> Option<f64> {
        parse_num(self.get(id)?)
    }

    /// Which of the rule set's infix patterns on this column its value
    /// holds; None for NULL.
    pub fn infixes(&self, id: usize) -> Option<&[bool]> {
        let v = self.get(id)?;
        // No automaton (none could be built): no pattern is found.
        let Some(at) = self.columns.infix_column(id) else {
            return Some(&[]);
        };
        Some(self.infixes[at].get_or_init(|| self.columns.infixes_in(at, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_borrowed_and_others_are_left_to_the_full_decoder() {
        let row = br#"{"name":"procs","hostIdentifier":"web-1","calendarTime":"x","unixTime":5,"columns":{"name":"bash","path":"/bin/b\u0061sh","empty":""},"action":"added","seq":3}"#;
        let r = RowRecord::parse(row).unwrap();
        assert_eq!(
            (r.name.as_ref(), r.host.as_ref(), r.unix_time, r.seq),
            ("procs", "web-1", 5, Some(3))
        );
        let mut columns = Columns::default();
        let (name, empty, path) = (columns.id("name"), columns.id("empty"), columns.id("path"));
        let (_, view) = RowRecord::read(row, &columns, &mut Scratch::default()).unwrap();
        assert!(matches!(view.values[name], Some(Cow::Borrowed("bash"))));
        assert_eq!(
            (view.get(name), view.get(empty), view.get(path)),
            (Some("bash"), None, Some("/bin/bash")),
            "escapes are decoded"
        );
        let again = RowView::new(&columns, &r.columns).unwrap();
        assert_eq!(again.get(path), Some("/bin/bash"));
        // The same record the full decoder reads as a row.
        assert!(matches!(
            sweep_proto::ResultsRecord::from_json(row),
            Ok(sweep_proto::ResultsRecord::Row(_))
        ));
        for other in [
            &br#"{"hunt_id":"h","hostIdentifier":"a","unixTime":1,"status":{"rows":0,"duration_ms":1}}"#[..],
            br#"{"name":"q","hostIdentifier":"a","calendarTime":"","unixTime":1,"rows":1,"action":"seal","seal":{"row_digest":"","signature":""}}"#,
            br#"{"name":"q","hostIdentifier":"a","unixTime":1,"columns":{},"action":"added"}"#,
            b"not json",
        ] {
            assert!(RowRecord::parse(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    /// Rows as the agent writes them (serde_json from a ResultRow), with
    /// escapes, quotes, control characters and non-ASCII text: the fast
    /// reader gives back exactly what was written.
    #[test]
    fn what_the_agent_writes_reads_back_exactly() {
        let texts = [
            "",
            "bash",
            "a\"b",
            "back\\slash",
            "tab\there",
            "line\nbreak",
            "\u{1}\u{1f}",
            "é",
            "日本",
            "emoji 🦀",
            "/tmp/%_x",
            "{\"json\": [1]}",
            "\u{7f}\u{80}",
        ];
        let mut n = 0usize;
        let mut pick = || {
            n = n.wrapping_mul(31).wrapping_add(7);
            texts[n % texts.len()]
        };
        for i in 0..2_000u64 {
            let columns: BTreeMap<String, String> = (0..6)
                .map(|c| (format!("{}{c}", pick()), pick().to_string()))
                .collect();
            let row = sweep_proto::ResultRow {
                name: format!("q{}", pick()),
                host_identifier: pick().to_string(),
                calendar_time: pick().to_string(),
                unix_time: i,
                epoch: 0,
                counter: i,
                decorations: [("d".to_string(), pick().to_string())].into(),
                columns: columns.clone(),
                action: "added".into(),
                hunt_id: (i % 2 == 0).then(|| pick().to_string()),
                seq: (i % 3 == 0).then_some(i),
            };
            let bytes = serde_json::to_vec(&row).unwrap();
            let r = RowRecord::parse(&bytes).expect("a row");
            assert_eq!(r.name, row.name);
            assert_eq!(r.host, row.host_identifier);
            assert_eq!((r.unix_time, r.seq), (row.unix_time, row.seq));
            assert_eq!(r.hunt_id.as_deref(), row.hunt_id.as_deref());
            assert_eq!(r.action, row.action);
            assert_eq!(
                r.columns_map(),
                columns,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// A JSON string literal of `text`, escaped in one of several valid
    /// ways (as serde_json writes it, or with `\u` escapes, `\/`, surrogate
    /// pairs).
    fn literal(text: &str, style: usize) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match (c, style % 3) {
                ('"', _) => out.push_str("\\\""),
                ('\\', _) => out.push_str("\\\\"),
                ('/', 1) => out.push_str("\\/"),
                (c, 1 | 2) if !c.is_ascii_alphanumeric() => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                (c, _) if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                (c, _) => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Generated records, valid and broken, read by the fast reader and by
    /// serde_json into the full decoder's type: the fast reader takes a
    /// record exactly when serde_json does, and reads the same values.
    #[test]
    fn the_fast_reader_agrees_with_serde_json() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let texts = [
            "",
            "bash",
            "/usr/bin/python3",
            "a\"b",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "é",
            "日本",
            "🦀",
            "/tmp/x",
            "0",
            "-1",
            "3.5",
        ];
        let spaces = ["", " ", "\n  ", "\t"];
        const PUNCT: &[u8] = b"\"\\{}[],:0x -e\x01";
        let mut columns = Columns::default();
        let watched: Vec<(String, usize)> = ["c0", "c1", "c3", "c5"]
            .iter()
            .map(|c| (c.to_string(), columns.id(c)))
            .collect();
        // Queries whose rows carry the same names in the same order, as
        // osquery's do, beside rows of any names in any order: the reader
        // learns a query's names from one row and recognises them in the
        // next, and must not be misled when they change.
        let queries = ["processes", "open_sockets", "users"];
        let layouts: Vec<Vec<String>> = queries
            .iter()
            .map(|_| (0..1 + next(6)).map(|_| format!("c{}", next(7))).collect())
            .collect();
        let mut scratch = Scratch::default();
        let (mut both, mut neither) = (0, 0);
        for _ in 0..20_000 {
            let t = |s: &mut dyn FnMut(usize) -> usize| literal(texts[s(texts.len())], s(3));
            let mut members: Vec<String> = Vec::new();
            let (query, names) = if next(3) > 0 {
                let q = next(queries.len());
                (literal(queries[q], next(3)), layouts[q].clone())
            } else {
                let names = (0..next(6)).map(|_| format!("c{}", next(7))).collect();
                (t(&mut next), names)
            };
            let cols: Vec<String> = names
                .iter()
                .map(|name| {
                    let colon = [":", ":", ":", " :", ": "][next(5)];
                    format!("{}{colon}{}", literal(name, next(3)), t(&mut next))
                })
                .collect();
            members.push(format!("\"name\":{query}"));
            members.push(format!("\"hostIdentifier\":{}", t(&mut next)));
            members.push(format!("\"calendarTime\":{}", t(&mut next)));
            members.push(format!("\"unixTime\":{}", next(2_000_000_000)));
            members.push(format!("\"columns\":{{{}}}", cols.join(",")));
            members.push(format!("\"action\":{}", t(&mut next)));
            let extra = [
                format!("\"hunt_id\":{}", t(&mut next)),
                "\"hunt_id\":null".to_string(),
                format!("\"seq\":{}", next(1000)),
                "\"seq\":null".to_string(),
                "\"epoch\":0".to_string(),
                format!("\"counter\":{}", next(99)),
                format!("\"decorations\":{{\"d\":{}}}", t(&mut next)),
                "\"other\":[1,-2.5e3,{\"x\":[true,false,null]},\"s\"]".to_string(),
                "\"status\":null".to_string(),
            ];
            for _ in 0..next(4) {
                members.push(extra[next(extra.len())].clone());
            }
            // The agent's order (a field name's place in it, unknown
            // fields last), or any order; any whitespace.
            if next(2) == 0 {
                let rank = |m: &String| {
                    FIELD_ORDER
                        .iter()
                        .position(|(token, _)| m.as_bytes().starts_with(token))
                        .unwrap_or(FIELD_ORDER.len())
                };
                members.sort_by_key(rank);
            } else {
                for i in (1..members.len()).rev() {
                    members.swap(i, next(i + 1));
                }
            }
            let sp = spaces[next(spaces.len())];
            let text = format!("{sp}{{{sp}{}{sp}}}{sp}", members.join(&format!(",{sp}")));
            // Half of them broken somewhere (a byte that is no UTF-8 here,
            // or inside a character, included).
            let mut bytes = text.into_bytes();
            if next(2) == 0 {
                let at = next(bytes.len());
                match next(5) {
                    0 => bytes.truncate(at),
                    1 => bytes[at] = PUNCT[next(PUNCT.len())],
                    2 => bytes.insert(at, PUNCT[next(PUNCT.len())]),
                    3 => bytes.insert(at, [0xff, 0xc3, 0x80][next(3)]),
                    _ => {
                        let dup = members[next(members.len())].clone();
                        bytes.extend_from_slice(format!(",{dup}}}").as_bytes());
                        let close = bytes.iter().rposition(|b| *b == b'}').unwrap();
                        let first = bytes[..close].iter().rposition(|b| *b == b'}').unwrap();
                        bytes.remove(first);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let truth = match sweep_proto::ResultsRecord::from_json(&bytes) {
                Ok(sweep_proto::ResultsRecord::Row(row)) => Ok(row),
                Ok(other) => Err(format!("not a row: {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            let fast = RowRecord::read(&bytes, &columns, &mut scratch);
            match (&truth, &fast) {
                (Ok(t), Some((r, view))) => {
                    both += 1;
                    assert_eq!(
                        (&*r.name, &*r.host, r.unix_time, &*r.action, r.seq),
                        (
                            &*t.name,
                            &*t.host_identifier,
                            t.unix_time,
                            &*t.action,
                            t.seq
                        ),
                        "{text}"
                    );
                    assert_eq!(r.hunt_id.as_deref(), t.hunt_id.as_deref(), "{text}");
                    assert_eq!(r.columns_map(), t.columns, "{text}");
                    for (name, id) in &watched {
                        let want = t.columns.get(name).filter(|v| !v.is_empty());
                        assert_eq!(view.get(*id), want.map(String::as_str), "{name} in {text}");
                    }
                    assert!(RowRecord::parse(&bytes).is_some());
                }
                (Err(_), None) => neither += 1,
                (Ok(_), None) => panic!("the fast reader refused a row serde_json reads: {text}"),
                (Err(e), Some(_)) => {
                    panic!("the fast reader took what serde_json refuses ({e}): {text}")
                }
            }
        }
        assert!(
            both > 8_000 && neither > 5_000,
            "{both} read, {neither} refused"
        );
        assert!(
            scratch.shapes.names_recognised > 5_000,
            "{} names recognised from a shape",
            scratch.shapes.names_recognised
        );
    }
}
