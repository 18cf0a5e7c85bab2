//! `docker_containers`: containers from the Docker Engine API on its unix
//! socket (`GET /containers/json?all=1`), with details from each container's
//! inspect document (`GET /containers/<id>/json`) when the query uses them,
//! and the namespaces of its init process from /proc. No socket, or no
//! daemon behind it: no rows.
//!
//! As in osquery, `id = X` matches containers whose id starts with X (the
//! short ids `docker ps` prints), and the row carries X as its id.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::docker_containers::TABLE as SCHEMA;

pub struct DockerContainers;

/// Columns that need the per-container inspect call.
const INSPECT_COLUMNS: &[&str] = &[
    "pid",
    "path",
    "config_entrypoint",
    "started_at",
    "finished_at",
    "privileged",
    "security_options",
    "env_variables",
    "readonly_rootfs",
];

/// Namespace kinds, as named in /proc/<pid>/ns and in the column names.
const NAMESPACES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// How long one API call may take: a wedged daemon must not hang the query.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest API response read.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

impl Table for DockerContainers {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let socket = &ctx.env().paths.docker_socket;
        let Some(Json::Array(containers)) = api_get(socket, "/containers/json?all=1") else {
            return Ok(());
        };
        // Only hex prefixes can match a container id.
        let ids: Option<Vec<String>> = ctx.eq_texts("id").map(|ids| {
            ids.into_iter()
                .filter(|i| i.len() <= 64 && i.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect()
        });
        let names = ctx.eq_texts("name");
        let namespaces_used = NAMESPACES
            .iter()
            .any(|ns| ctx.used(&format!("{ns}_namespace")));
        let inspect = ctx.any_used(INSPECT_COLUMNS) || namespaces_used;
        for c in &containers {
            ctx.check()?;
            let full_id = str_field(c, "Id");
            let id = match &ids {
                None => full_id.clone(),
                Some(ids) => match ids.iter().find(|i| full_id.starts_with(i.as_str())) {
                    Some(prefix) => prefix.clone(),
                    None => continue,
                },
            };
            let name = c
                .get("Names")
                .and_then(|n| n.get(0))
                .and_then(Json::as_str)
                .map(str::to_string);
            if let Some(names) = &names {
                if !name.as_ref().is_some_and(|n| names.contains(n)) {
                    continue;
                }
            }
            let mut row = ctx.row();
            row.set("id", id)
                .set_opt("name", name)
                .set("image", str_field(c, "Image"))
                .set("image_id", strip_sha256(&str_field(c, "ImageID")))
                .set("command", str_field(c, "Command"))
                .set(
                    "created",
                    c.get("Created").and_then(Json::as_i64).unwrap_or(0),
                )
                .set("state", str_field(c, "State"))
                .set("status", str_field(c, "Status"));
            if inspect {
                // A container removed since the listing simply lacks details.
                if let Some(details) = api_get(socket, &format!("/containers/{full_id}/json")) {
                    set_details(&mut row, &details, &str_field(c, "State"));
                    let pid = details
                        .pointer("/State/Pid")
                        .and_then(Json::as_i64)
                        .unwrap_or(-1);
                    if namespaces_used && pid > 0 {
                        set_namespaces(&mut row, pid);
                    }
                }
            }
            out.push(row);
        }
        Ok(())
    }
}

fn str_field(v: &Json, key: &str) -> String {
    v.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strip_sha256(s: &str) -> String {
    s.strip_prefix("sha256:").unwrap_or(s).to_string()
}

/// A JSON array of strings joined with ", "; null or absent is "".
fn joined(v: Option<&Json>) -> String {
    match v {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(Json::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn set_details(row: &mut Row, d: &Json, state: &str) {
    let flag = |p: &str| d.pointer(p).and_then(Json::as_bool).unwrap_or(false);
    let text = |p: &str| {
        d.pointer(p)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    // A running container has not finished, whatever its last run says.
    let finished = if state == "running" {
        String::new()
    } else {
        text("/State/FinishedAt")
    };
    row.set(
        "pid",
        d.pointer("/State/Pid").and_then(Json::as_i64).unwrap_or(-1),
    )
    .set("path", text("/Path"))
    .set("config_entrypoint", joined(d.pointer("/Config/Entrypoint")))
    .set("started_at", text("/State/StartedAt"))
    .set("finished_at", finished)
    .set("privileged", flag("/HostConfig/Privileged"))
    .set(
        "security_options",
        joined(d.pointer("/HostConfig/SecurityOpt")),
    )
    .set("env_variables", joined(d.pointer("/Config/Env")))
    .set("readonly_rootfs", flag("/HostConfig/ReadonlyRootfs"));
}

/// Namespace inode numbers of `pid`, from the `type:[inode]` targets of
/// /proc/<pid>/ns/*; one that cannot be read stays NULL.
fn set_namespaces(row: &mut Row, pid: i64) {
    for ns in NAMESPACES {
        let inode = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .ok()
            .and_then(|t| {
                let t = t.to_string_lossy().into_owned();
                t.split_once(":[")?.1.strip_suffix(']').map(str::to_string)
            });
        row.set_opt(&format!("{ns}_namespace"), inode);
    }
}

/// `GET uri` on the Docker API socket; `None` on any failure (no socket, no
/// daemon, not 200, not JSON).
fn api_get(socket: &Path, uri: &str) -> Option<Json> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    // HTTP/1.0 without keep-alive: the daemon closes the connection after
    // the body, so the body is everything after the headers.
    write!(stream, "GET {uri} HTTP/1.0\r\nHost: docker\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw).ok()?;
    let body = http_body(&raw)?;
    serde_json::from_slice(&body).ok()
}

/// The body of a 200 response, de-chunked if the server chunked it anyway.
fn http_body(raw: &[u8]) -> Option<Vec<u8>> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        dechunk(body)
    } else {
        Some(body.to_vec())
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, HostPaths, Op, TableEnv};

    const ID1: &str = "11b2399e1426d906e62a0c357650e363426d6c56dbe2f35cbaa9b452250e3355";
    const ID2: &str = "22c3400f2537e017f73b1d468761f474537e7d67ecf3046dbb0c563361f4466";

    fn list_json() -> String {
        serde_json::json!([
            {
                "Id": ID1, "Names": ["/web", "/alias"], "Image": "nginx:1.25",
                "ImageID": "sha256:abcdef0123", "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
                "Created": 1700000000, "State": "running", "Status": "Up 2 hours"
            },
            {
                "Id": ID2, "Names": ["/batch"], "Image": "busybox",
                "ImageID": "sha256:99887766", "Command": "sleep 1",
                "Created": 1700000500, "State": "exited", "Status": "Exited (0) 5 minutes ago"
            }
        ])
        .to_string()
    }

    fn inspect_json(pid: i64, state: &str) -> String {
        serde_json::json!({
            "Path": "/docker-entrypoint.sh",
            "State": {"Pid": pid, "Status": state, "StartedAt": "2024-01-01T10:00:00Z",
                      "FinishedAt": "2024-01-01T09:00:00Z"},
            "HostConfig": {"Privileged": state == "running", "ReadonlyRootfs": false,
                           "SecurityOpt": ["seccomp=unconfined", "no-new-privileges"]},
            "Config": {"Entrypoint": ["/docker-entrypoint.sh"], "Env": ["PATH=/usr/bin", "A=b"]}
        })
        .to_string()
    }

    /// A one-socket stand-in for dockerd: answers the list and the two
    /// inspect calls (the running container's pid is this test process), and
    /// chunks the list response the way HTTP/1.1 servers may.
    fn fake_daemon(socket: &Path) -> std::thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(socket).unwrap();
        let me = std::process::id() as i64;
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                let uri = request.split_whitespace().nth(1).unwrap().to_string();
                seen.push(uri.clone());
                let reply = match uri.as_str() {
                    "/containers/json?all=1" => {
                        let body = list_json();
                        let (a, b) = body.split_at(body.len() / 2);
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                            a.len(),
                            b.len()
                        )
                    }
                    u if u == format!("/containers/{ID1}/json") => ok(&inspect_json(me, "running")),
                    u if u == format!("/containers/{ID2}/json") => ok(&inspect_json(0, "exited")),
                    "/stop" => break,
                    _ => "HTTP/1.0 404 Not Found\r\n\r\n{}".to_string(),
                };
                stream.write_all(reply.as_bytes()).unwrap();
            }
            seen
        })
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn stop(socket: &Path) {
        let mut s = UnixStream::connect(socket).unwrap();
        s.write_all(b"GET /stop HTTP/1.0\r\n\r\n").unwrap();
    }

    fn env_for(socket: &Path) -> TableEnv {
        TableEnv {
            paths: HostPaths {
                docker_socket: socket.to_path_buf(),
                ..HostPaths::default()
            },
            ..TableEnv::default()
        }
    }

    #[test]
    fn maps_the_engine_api() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let daemon = fake_daemon(&socket);
        let env = env_for(&socket);
        let budget = Budget::unlimited();

        let mut rows = Vec::new();
        DockerContainers
            .generate(
                &ScanContext::all("docker_containers", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        // Constrained by an id prefix, as `docker ps` shows ids.
        let ctx = ScanContext::all("docker_containers", SCHEMA.columns, &budget, &env)
            .with_constraint("id", Op::Eq, vec![Value::Text(ID2[..12].into())]);
        let mut by_prefix = Vec::new();
        DockerContainers.generate(&ctx, &mut by_prefix).unwrap();
        stop(&socket);
        let seen = daemon.join().unwrap();
        assert_eq!(seen[0], "/containers/json?all=1");

        let t = |s: &str| Value::Text(s.to_string());
        assert_eq!(rows.len(), 2);
        let web = &rows[0];
        assert_eq!(web.get("id"), Some(&t(ID1)));
        assert_eq!(web.get("name"), Some(&t("/web")));
        assert_eq!(web.get("image"), Some(&t("nginx:1.25")));
        assert_eq!(web.get("image_id"), Some(&t("abcdef0123")));
        assert_eq!(
            web.get("command"),
            Some(&t("/docker-entrypoint.sh nginx -g 'daemon off;'"))
        );
        assert_eq!(web.get("created"), Some(&Value::Integer(1700000000)));
        assert_eq!(web.get("state"), Some(&t("running")));
        assert_eq!(web.get("status"), Some(&t("Up 2 hours")));
        assert_eq!(
            web.get("pid"),
            Some(&Value::Integer(std::process::id() as i64))
        );
        assert_eq!(web.get("path"), Some(&t("/docker-entrypoint.sh")));
        assert_eq!(
            web.get("config_entrypoint"),
            Some(&t("/docker-entrypoint.sh"))
        );
        assert_eq!(web.get("started_at"), Some(&t("2024-01-01T10:00:00Z")));
        assert_eq!(web.get("finished_at"), Some(&t("")));
        assert_eq!(web.get("privileged"), Some(&Value::Integer(1)));
        assert_eq!(
            web.get("security_options"),
            Some(&t("seccomp=unconfined, no-new-privileges"))
        );
        assert_eq!(web.get("env_variables"), Some(&t("PATH=/usr/bin, A=b")));
        assert_eq!(web.get("readonly_rootfs"), Some(&Value::Integer(0)));
        // Namespaces of the container's pid (here: this process).
        for ns in NAMESPACES {
            let link = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            let link = link.to_string_lossy();
            let inode = &link[link.find('[').unwrap() + 1..link.len() - 1];
            assert_eq!(web.get(&format!("{ns}_namespace")), Some(&t(inode)), "{ns}");
        }
        let batch = &rows[1];
        assert_eq!(batch.get("finished_at"), Some(&t("2024-01-01T09:00:00Z")));
        assert_eq!(batch.get("pid"), Some(&Value::Integer(0)));
        assert_eq!(batch.get("net_namespace"), Some(&Value::Null));

        assert_eq!(by_prefix.len(), 1);
        assert_eq!(by_prefix[0].get("id"), Some(&t(&ID2[..12])));
        assert_eq!(by_prefix[0].get("name"), Some(&t("/batch")));
    }

    #[test]
    fn no_socket_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_for(&dir.path().join("absent.sock"));
        let budget = Budget::unlimited();
        let mut rows = Vec::new();
        DockerContainers
            .generate(
                &ScanContext::all("docker_containers", SCHEMA.columns, &budget, &env),
                &mut rows,
            )
            .unwrap();
        assert!(rows.is_empty());
    }
}
