//! `systemd_units`: the units systemd has loaded, as `systemctl list-units
//! --all` lists them, with their properties from `systemctl show` and their
//! pending jobs from `systemctl list-jobs`. osquery asks systemd over D-Bus;
//! systemctl asks the same manager the same questions without a D-Bus
//! client library here. Where systemd is not running (systemctl fails, e.g.
//! in a container whose PID 1 is something else) the table has no rows.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::systemd_units::TABLE as SCHEMA;

pub struct SystemdUnits;

const PROPERTIES: &str =
    "Id,Description,LoadState,ActiveState,SubState,UnitFileState,Following,FragmentPath,SourcePath,User";

/// Units per `systemctl show` call, to keep command lines short.
const SHOW_BATCH: usize = 200;

impl Table for SystemdUnits {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for unit in collect(ctx, "systemctl")? {
            out.push(unit.into_row(ctx));
        }
        Ok(())
    }
}

#[derive(Debug, Default, PartialEq)]
struct Unit {
    id: String,
    load_state: String,
    active_state: String,
    sub_state: String,
    description: String,
    properties: HashMap<String, String>,
    job: Option<(i64, String)>,
}

impl Unit {
    fn into_row(self, ctx: &ScanContext<'_>) -> Row {
        let prop = |name: &str| self.properties.get(name).cloned().unwrap_or_default();
        let (job_id, job_type) = self.job.clone().unwrap_or((0, String::new()));
        // D-Bus says "/" for "no job".
        let job_path = if job_id == 0 {
            "/".to_string()
        } else {
            format!("/org/freedesktop/systemd1/job/{job_id}")
        };
        let description = self
            .properties
            .get("Description")
            .cloned()
            .unwrap_or(self.description.clone());
        let mut row = ctx.row();
        row.set("id", &self.id)
            .set("description", description)
            .set("load_state", &self.load_state)
            .set("active_state", &self.active_state)
            .set("sub_state", &self.sub_state)
            .set("unit_file_state", prop("UnitFileState"))
            .set("following", prop("Following"))
            .set("object_path", object_path(&self.id))
            .set("job_id", job_id)
            .set("job_type", job_type)
            .set("job_path", job_path)
            .set("fragment_path", prop("FragmentPath"))
            .set("user", prop("User"))
            .set("source_path", prop("SourcePath"));
        row
    }
}

/// Every loaded unit, via `program` (systemctl). No systemd: no units.
fn collect(ctx: &ScanContext<'_>, program: &str) -> Result<Vec<Unit>, AgentError> {
    let list = [
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "--no-pager",
        "--full",
    ];
    let Some(text) = run(ctx, program, &list)? else {
        return Ok(Vec::new());
    };
    let mut units = parse_list_units(&text);
    if units.is_empty() {
        return Ok(units);
    }
    let wanted = [
        "description",
        "unit_file_state",
        "following",
        "fragment_path",
        "user",
        "source_path",
    ];
    if ctx.any_used(&wanted) {
        let mut props: HashMap<String, HashMap<String, String>> = HashMap::new();
        for batch in units.chunks(SHOW_BATCH) {
            let mut args = vec!["show", "--no-pager", "-p", PROPERTIES, "--"];
            args.extend(batch.iter().map(|u| u.id.as_str()));
            if let Some(text) = run(ctx, program, &args)? {
                for block in parse_show(&text) {
                    if let Some(id) = block.get("Id").cloned() {
                        props.insert(id, block);
                    }
                }
            }
        }
        for unit in &mut units {
            unit.properties = props.remove(&unit.id).unwrap_or_default();
        }
    }
    if ctx.any_used(&["job_id", "job_type", "job_path"]) {
        let jobs = [
            "list-jobs",
            "--plain",
            "--no-legend",
            "--no-pager",
            "--full",
        ];
        if let Some(text) = run(ctx, program, &jobs)? {
            let jobs = parse_list_jobs(&text);
            for unit in &mut units {
                unit.job = jobs.get(&unit.id).cloned();
            }
        }
    }
    Ok(units)
}

/// `UNIT LOAD ACTIVE SUB DESCRIPTION…` lines. Some systemctl versions mark
/// failed or missing units with a leading "●" even in plain mode.
fn parse_list_units(text: &str) -> Vec<Unit> {
    text.lines()
        .filter_map(|line| {
            let line = line
                .trim_start()
                .trim_start_matches(['●', '*'])
                .trim_start();
            let mut words = line.split_whitespace();
            let id = words.next()?.to_string();
            let load_state = words.next()?.to_string();
            let active_state = words.next()?.to_string();
            let sub_state = words.next()?.to_string();
            let description = words.collect::<Vec<_>>().join(" ");
            Some(Unit {
                id,
                load_state,
                active_state,
                sub_state,
                description,
                ..Unit::default()
            })
        })
        .collect()
}

/// `systemctl show` output: `Key=Value` lines, one block per unit, blocks
/// separated by blank lines.
fn parse_show(text: &str) -> Vec<HashMap<String, String>> {
    let mut out = Vec::new();
    let mut block = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            if !block.is_empty() {
                out.push(std::mem::take(&mut block));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            block.insert(k.to_string(), v.to_string());
        }
    }
    if !block.is_empty() {
        out.push(block);
    }
    out
}

/// `JOB UNIT TYPE STATE` lines → unit → (job id, job type).
fn parse_list_jobs(text: &str) -> HashMap<String, (i64, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let id: i64 = words.next()?.parse().ok()?;
            let unit = words.next()?.to_string();
            let kind = words.next()?.to_string();
            Some((unit, (id, kind)))
        })
        .collect()
}

/// systemd's D-Bus object path for a unit: bytes other than ASCII letters
/// and digits become `_xx` (lowercase hex).
fn object_path(id: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if id.is_empty() {
        path.push('_');
    }
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() {
            path.push(b as char);
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

/// Runs `program args`, returning its stdout if it succeeds and `None` if it
/// cannot start or fails. The child is killed when the query's time is up.
/// (`rpm_packages` runs `rpm` through this too.)
pub(super) fn run<S: AsRef<OsStr>>(
    ctx: &ScanContext<'_>,
    program: &str,
    args: &[S],
) -> Result<Option<String>, AgentError> {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_PAGER", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Ok(None);
    };
    // Drain stdout on a thread so a large listing cannot fill the pipe and
    // stall the child while we wait for it.
    let Some(mut stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(None);
    };
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        if let Err(e) = ctx.check() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap_or_default();
    Ok(status
        .success()
        .then(|| String::from_utf8_lossy(&out).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn object_paths_escape_like_systemd() {
        assert_eq!(
            object_path("ssh.service"),
            "/org/freedesktop/systemd1/unit/ssh_2eservice"
        );
        assert_eq!(
            object_path("dev-disk-by\\x2duuid.device"),
            "/org/freedesktop/systemd1/unit/dev_2ddisk_2dby_5cx2duuid_2edevice"
        );
    }

    /// `systemctl list-units` run by the test: unit id → load state, or
    /// nothing where systemd is not running.
    fn systemctl_units() -> BTreeMap<String, String> {
        let out = Command::new("systemctl")
            .args([
                "list-units",
                "--all",
                "--plain",
                "--no-legend",
                "--no-pager",
                "--full",
            ])
            .output();
        match out {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace().filter(|w| *w != "●");
                    Some((words.next()?.to_string(), words.next()?.to_string()))
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// On this host the table has what systemctl itself lists: nothing where
    /// systemd is not PID 1 (systemctl fails there). Units may come and go
    /// while the test runs, so systemctl is asked before and after the scan:
    /// units in both listings must be in the table with the same load
    /// state, and the table has no unit that neither listing had.
    #[test]
    fn agrees_with_systemctl_on_this_host() {
        let before = systemctl_units();
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let mut rows = Vec::new();
        let ctx = ScanContext::all("systemd_units", SCHEMA.columns, &budget, &env);
        SystemdUnits.generate(&ctx, &mut rows).unwrap();
        let after = systemctl_units();
        let got: BTreeMap<String, String> = rows
            .iter()
            .map(|r| match (r.get("id"), r.get("load_state")) {
                (Some(Value::Text(id)), Some(Value::Text(load))) => (id.clone(), load.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        if before.is_empty() && after.is_empty() {
            assert!(got.is_empty());
            return;
        }
        for (id, load) in &before {
            if after.get(id) == Some(load) {
                assert_eq!(got.get(id), Some(load), "{id}");
            }
        }
        for id in got.keys() {
            assert!(before.contains_key(id) || after.contains_key(id), "{id}");
        }
    }

    /// A stand-in systemctl answering the three commands as systemd 252 does.
    #[test]
    fn maps_systemctl_output() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("systemctl");
        std::fs::write(
            &fake,
            r#"#!/bin/sh
case "$1" in
list-units)
  printf 'ssh.service loaded active running OpenBSD Secure Shell server\n'
  printf '● missing.service not-found inactive dead missing.service\n'
  printf 'apt-daily.timer loaded active waiting Daily apt download activities\n'
  ;;
show)
  [ "$3" = "-p" ] || exit 2
  shift 5
  for u in "$@"; do
    case "$u" in
    ssh.service) printf 'Id=ssh.service\nDescription=OpenBSD Secure Shell server\nLoadState=loaded\nUnitFileState=enabled\nFragmentPath=/lib/systemd/system/ssh.service\nUser=\nSourcePath=\nFollowing=\n\n' ;;
    missing.service) printf 'Id=missing.service\nDescription=missing.service\nLoadState=not-found\nUnitFileState=\nFragmentPath=\n\n' ;;
    apt-daily.timer) printf 'Id=apt-daily.timer\nDescription=Daily apt download activities\nUnitFileState=enabled\nFragmentPath=/lib/systemd/system/apt-daily.timer\n\n' ;;
    esac
  done
  ;;
list-jobs)
  printf '1234 apt-daily.timer start waiting\n'
  ;;
*) exit 1 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("systemd_units", SCHEMA.columns, &budget, &env);
        let units = collect(&ctx, fake.to_str().unwrap()).unwrap();
        let rows: Vec<Row> = units.into_iter().map(|u| u.into_row(&ctx)).collect();
        let t = |s: &str| Value::Text(s.to_string());
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0].values(),
            &[
                t("ssh.service"),
                t("OpenBSD Secure Shell server"),
                t("loaded"),
                t("active"),
                t("running"),
                t("enabled"),
                t(""),
                t("/org/freedesktop/systemd1/unit/ssh_2eservice"),
                Value::Integer(0),
                t(""),
                t("/"),
                t("/lib/systemd/system/ssh.service"),
                t(""),
                t(""),
            ]
        );
        assert_eq!(rows[1].get("load_state"), Some(&t("not-found")));
        assert_eq!(rows[1].get("id"), Some(&t("missing.service")));
        assert_eq!(rows[2].get("job_id"), Some(&Value::Integer(1234)));
        assert_eq!(rows[2].get("job_type"), Some(&t("start")));
        assert_eq!(
            rows[2].get("job_path"),
            Some(&t("/org/freedesktop/systemd1/job/1234"))
        );
        assert_eq!(
            rows[2].get("fragment_path"),
            Some(&t("/lib/systemd/system/apt-daily.timer"))
        );

        // A systemctl that fails gives no units and no error.
        let units = collect(&ctx, "/nonexistent/systemctl").unwrap();
        assert!(units.is_empty());
    }
}
