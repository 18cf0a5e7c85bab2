//! `time`: the current date and time in UTC, as osquery reports it. osquery's
//! monitoring pack joins it (`time.minutes AS counter`).

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::time::TABLE as SCHEMA;

pub struct Time;

impl Table for Time {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let now = DateTime::<Utc>::from_timestamp(sweep_proto::time::unix_now() as i64, 0)
            .unwrap_or_default();
        out.push(row(ctx, now));
        Ok(())
    }
}

fn row(ctx: &ScanContext<'_>, now: DateTime<Utc>) -> Row {
    let mut row = ctx.row();
    let iso = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    row.set("weekday", now.format("%A").to_string())
        .set("year", now.year())
        .set("month", now.month())
        .set("day", now.day())
        .set("hour", now.hour())
        .set("minutes", now.minute())
        .set("seconds", now.second())
        .set("timezone", "UTC")
        .set("local_timezone", local_timezone())
        .set("unix_time", now.timestamp())
        .set(
            "timestamp",
            sweep_proto::time::calendar_time(now.timestamp() as u64),
        )
        .set("datetime", iso.clone())
        .set("iso_8601", iso);
    row
}

/// The host's zone name: `TZ`, else /etc/timezone, else the /etc/localtime
/// link's zoneinfo name, else UTC. (osquery prints the zone abbreviation,
/// which needs the tz database; the name identifies the zone as well.)
fn local_timezone() -> String {
    if let Ok(tz) = std::env::var("TZ") {
        if !tz.trim().is_empty() {
            return tz.trim_start_matches(':').to_string();
        }
    }
    if let Some(tz) = super::util::read_line("/etc/timezone").filter(|t| !t.is_empty()) {
        return tz;
    }
    std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            p.split_once("zoneinfo/").map(|(_, zone)| zone.to_string())
        })
        .unwrap_or_else(|| "UTC".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Budget, TableEnv};
    use rusqlite::types::Value;

    #[test]
    fn fields_agree_with_each_other_and_the_clock() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("time", SCHEMA.columns, &budget, &env);
        let before = sweep_proto::time::unix_now() as i64;
        let mut rows = Vec::new();
        Time.generate(&ctx, &mut rows).unwrap();
        let after = sweep_proto::time::unix_now() as i64;
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        let Some(Value::Integer(unix)) = r.get("unix_time").cloned() else {
            panic!()
        };
        assert!((before..=after).contains(&unix));
        // A fixed instant, checked field by field.
        let t = DateTime::<Utc>::from_timestamp(1_795_410_577, 0).unwrap();
        let r = row(&ctx, t);
        assert_eq!(r.get("weekday"), Some(&Value::Text("Monday".into())));
        assert_eq!(r.get("year"), Some(&Value::Integer(2026)));
        assert_eq!(r.get("month"), Some(&Value::Integer(11)));
        assert_eq!(r.get("day"), Some(&Value::Integer(23)));
        assert_eq!(r.get("hour"), Some(&Value::Integer(5)));
        assert_eq!(r.get("minutes"), Some(&Value::Integer(9)));
        assert_eq!(r.get("seconds"), Some(&Value::Integer(37)));
        assert_eq!(
            r.get("datetime"),
            Some(&Value::Text("2026-11-23T05:09:37Z".into()))
        );
        assert_eq!(
            r.get("timestamp"),
            Some(&Value::Text("Mon Nov 23 05:09:37 2026 UTC".into()))
        );
        // `date -u` agrees on the calendar day now.
        let out = std::process::Command::new("date")
            .args(["-u", "+%Y %-m %-d"])
            .output()
            .unwrap();
        let date = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let r = &rows[0];
        let fields: Vec<String> = ["year", "month", "day"]
            .iter()
            .map(|c| match r.get(c) {
                Some(Value::Integer(i)) => i.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fields.join(" "), date);
    }
}
