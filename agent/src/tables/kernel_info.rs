//! `kernel_info`: the running kernel's release (from /proc/version) and its
//! command line, with the boot image and root device taken out of it.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::kernel_info::TABLE as SCHEMA;

pub struct KernelInfo;

#[derive(Debug, Default, PartialEq)]
struct Cmdline {
    arguments: String,
    path: String,
    device: String,
}

/// Splits the kernel command line: `BOOT_IMAGE=` is the path, `root=` the
/// device, the rest stays as the arguments.
fn parse_cmdline(text: &str) -> Cmdline {
    let mut c = Cmdline::default();
    let mut rest = Vec::new();
    for arg in text.split_whitespace() {
        if let Some(image) = arg.strip_prefix("BOOT_IMAGE=") {
            c.path = image.to_string();
        } else if let Some(root) = arg.strip_prefix("root=") {
            c.device = root.to_string();
        } else {
            rest.push(arg);
        }
    }
    c.arguments = rest.join(" ");
    c
}

/// The release from "Linux version <release> (builder) …".
fn parse_version(text: &str) -> Option<String> {
    let mut words = text.split_whitespace().skip(1);
    (words.next() == Some("version")).then(|| words.next().map(str::to_string))?
}

impl Table for KernelInfo {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let cmdline = read_text("/proc/cmdline")
            .map(|t| parse_cmdline(&t))
            .unwrap_or_default();
        let version = read_text("/proc/version").and_then(|t| parse_version(&t));
        let mut row = ctx.row();
        // osquery reports what it could not find as empty text.
        row.set("version", version.unwrap_or_default())
            .set("arguments", cmdline.arguments)
            .set("path", cmdline.path)
            .set("device", cmdline.device);
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn splits_a_boot_command_line() {
        let c =
            parse_cmdline("BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0b1c-77 ro quiet\n");
        assert_eq!(
            c,
            Cmdline {
                arguments: "ro quiet".into(),
                path: "/boot/vmlinuz-6.1.0-18-amd64".into(),
                device: "UUID=0b1c-77".into(),
            }
        );
        assert_eq!(
            parse_cmdline("console=ttyS0  panic=1").arguments,
            "console=ttyS0 panic=1"
        );
        assert_eq!(
            parse_version("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc)"),
            Some("6.1.0-18-amd64".into())
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn matches_uname_and_proc_cmdline() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("kernel_info", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        KernelInfo.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        let text = |c: &str| match rows[0].get(c) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{c}: {other:?}"),
        };
        let uname = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .unwrap();
        assert_eq!(
            text("version"),
            String::from_utf8(uname.stdout).unwrap().trim()
        );

        // Put the three columns back together: the same words as /proc/cmdline.
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap();
        let mut expected: Vec<&str> = cmdline.split(' ').map(str::trim).collect();
        expected.retain(|w| !w.is_empty());
        let mut got: Vec<String> = text("arguments")
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        if expected.iter().any(|w| w.starts_with("BOOT_IMAGE=")) {
            got.push(format!("BOOT_IMAGE={}", text("path")));
        }
        if expected.iter().any(|w| w.starts_with("root=")) {
            got.push(format!("root={}", text("device")));
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }
}
