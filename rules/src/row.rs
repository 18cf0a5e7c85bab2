//! A result row read once per record: the fields the rules need, borrowed
//! from the record's bytes where JSON lets them be (no escapes), and the
//! columns the rule set refers to placed in slots by id, so a condition
//! finds a column without a map lookup or a copy.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::matcher::{parse_num, Columns};

/// A column's name and value as read from the record: bytes, unescaped,
/// borrowed when they had no escapes.
pub type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// A row record (`sweep.results`/`sweep.hunts`), as the rules read it.
#[derive(Debug, Deserialize)]
pub struct RowRecord<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(rename = "hostIdentifier", borrow)]
    pub host: Cow<'a, str>,
    /// Required, as for [`sweep_proto::ResultRow`]; not otherwise used.
    #[serde(rename = "calendarTime")]
    _calendar_time: IgnoredAny,
    #[serde(rename = "unixTime")]
    pub unix_time: u64,
    /// Column names and values, unescaped but not yet checked as UTF-8:
    /// only the columns rules read are ([`RowView::new`]).
    #[serde(borrow, deserialize_with = "pairs")]
    pub columns: Vec<Pair<'a>>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(default, borrow)]
    pub hunt_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    /// Present only on hunt statuses and run seals, which take the full
    /// decoder ([`sweep_proto::ResultsRecord`]).
    #[serde(default)]
    status: Option<IgnoredAny>,
    #[serde(default)]
    seal: Option<IgnoredAny>,
}

impl<'a> RowRecord<'a> {
    /// The record as a row, or None when it is anything else (a status, a
    /// seal, or not a record at all): those go through the full decoder,
    /// which also says what is wrong with a bad one.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let row: Self = serde_json::from_slice(bytes).ok()?;
        (row.status.is_none() && row.seal.is_none()).then_some(row)
    }

    /// A decoded row seen through this type (tests, and callers that hold
    /// a [`sweep_proto::ResultRow`]).
    pub fn from_parts(row: &'a sweep_proto::ResultRow, columns: Vec<Pair<'a>>) -> Self {
        Self {
            name: Cow::Borrowed(&row.name),
            host: Cow::Borrowed(&row.host_identifier),
            _calendar_time: IgnoredAny,
            unix_time: row.unix_time,
            columns,
            action: Cow::Borrowed(&row.action),
            hunt_id: row.hunt_id.as_deref().map(Cow::Borrowed),
            seq: row.seq,
            status: None,
            seal: None,
        }
    }

    /// The columns as osquery logs them, for a match.
    pub fn columns_map(&self) -> BTreeMap<String, String> {
        self.columns
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

/// A JSON object of strings as a list of pairs, in the record's order.
fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Pair<'de>>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<Pair<'de>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some((k, v)) = map.next_entry::<Borrowed<'de>, Borrowed<'de>>()? {
                out.push((k.0, v.0));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs)
}

/// A JSON string's bytes, borrowed from the input when it has no escapes.
/// serde_json unescapes them without checking UTF-8, which is left to the
/// few values rules read.
struct Borrowed<'a>(Cow<'a, [u8]>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Borrowed<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Borrowed(v)))
            }

            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v.to_vec())))
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Borrowed(v.as_bytes())))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One row's columns in the rule set's slots: a missing column and an empty
/// value (osquery's NULL) are both None. What several rules ask of a value
/// (its number, the infix patterns in it) is worked out once, when first
/// asked.
#[derive(Debug)]
pub struct RowView<'a> {
    columns: &'a Columns,
    slots: Vec<Slot<'a>>,
}

/// One column of a row: its value, and what rules asked of it.
#[derive(Debug, Default)]
struct Slot<'a> {
    value: Option<&'a str>,
    num: OnceCell<Option<f64>>,
    infixes: OnceCell<Box<[bool]>>,
}

impl<'a> RowView<'a> {
    /// None when a value a rule reads is not UTF-8 (the full decoder then
    /// refuses the record, and says so). Names are matched as bytes: a
    /// name that is a rule's column is that column's UTF-8.
    pub fn new(columns: &'a Columns, pairs: &'a [Pair<'a>]) -> Option<Self> {
        let mut slots: Vec<Slot<'a>> = (0..columns.len()).map(|_| Slot::default()).collect();
        for (k, v) in pairs {
            // A name that is not a column rules read needs no checking.
            if let Some(id) = columns.get_bytes(k) {
                if !v.is_empty() {
                    slots[id].value = Some(std::str::from_utf8(v).ok()?);
                }
            }
        }
        Some(Self { columns, slots })
    }

    pub fn get(&self, id: usize) -> Option<&'a str> {
        self.slots.get(id).and_then(|s| s.value)
    }

    /// The column's value as a number, if it is one.
    pub fn num(&self, id: usize) -> Option<f64> {
        let slot = self.slots.get(id)?;
        let v = slot.value?;
        *slot.num.get_or_init(|| parse_num(v))
    }

    /// Which of the rule set's infix patterns on this column its value
    /// holds; None for NULL.
    pub fn infixes(&self, id: usize) -> Option<&[bool]> {
        let slot = self.slots.get(id)?;
        let v = slot.value?;
        Some(slot.infixes.get_or_init(|| self.columns.infixes_in(id, v)))
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
        assert!(matches!(r.columns[0].1, Cow::Borrowed(b"bash")));
        assert_eq!(r.columns[1].1.as_ref(), b"/bin/bash", "escapes are decoded");
        let mut columns = Columns::default();
        let (name, empty, path) = (columns.id("name"), columns.id("empty"), columns.id("path"));
        let view = RowView::new(&columns, &r.columns).unwrap();
        assert_eq!(
            (view.get(name), view.get(empty), view.get(path)),
            (Some("bash"), None, Some("/bin/bash"))
        );
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
}
