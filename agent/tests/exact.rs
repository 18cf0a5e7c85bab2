//! Push-down never narrows an answer: for every table that takes constraints,
//! generated `WHERE` clauses over its pushed-down columns (`=`, `IN`, `LIKE`,
//! `OR`, `NOT`, collations, values of every type) must return exactly what
//! SQLite's own evaluation returns on a plain table holding the unconstrained
//! scan. SQLite is the independent truth here; the virtual table is what is
//! tested. This is the test the `OR` bug (rows dropped by colliding rowids)
//! would have failed.
//!
//! The cases run one after another in one test, so no other test in this
//! binary changes the processes, descriptors or sockets being compared.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::Connection;
use sweep_agent::tables::vtab::{self, ScanShared};
use sweep_agent::tables::{Budget, Registry, TableEnv};

/// Small, seeded and reproducible: a failure prints the clause that failed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One table under test: the columns constraints go on, the columns
/// compared, and (for process tables) the rows known to stay put while the
/// test runs.
struct Case {
    table: &'static str,
    /// Columns the generated clauses constrain: the pushed-down ones and one
    /// plain column, so `OR` mixes look-ups with scans.
    constrained: &'static [&'static str],
    /// Columns selected and compared.
    selected: &'static [&'static str],
    /// `(column, values)`: only rows whose column holds one of these values
    /// are compared (other processes come and go during the test).
    stable: Option<(&'static str, Vec<i64>)>,
    clauses: usize,
}

/// Distinct values of `column` in the snapshot, as SQL literals of every
/// spelling SQLite treats alike or almost alike.
fn literals(conn: &Connection, column: &str, rng: &mut Rng) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT DISTINCT {column} FROM snap LIMIT 200"))
        .unwrap();
    let values: Vec<Value> = stmt
        .query_map([], |r| r.get::<_, Value>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = vec![
        "NULL".to_string(),
        "'no such value'".to_string(),
        "-1".into(),
    ];
    for v in values {
        match v {
            Value::Integer(i) => {
                out.push(i.to_string());
                out.push(quote(&i.to_string()));
                out.push(quote(&format!(" {i} ")));
                out.push(quote(&format!("0{i}")));
                out.push(format!("{i}.0"));
                out.push(format!("{i}.5"));
                out.push(quote(&format!("{i}e0")));
                out.push(format!("x'{:02x}'", i & 0xff));
            }
            Value::Text(t) => {
                out.push(quote(&t));
                out.push(quote(&t.to_ascii_uppercase()));
                out.push(quote(&format!("{t} ")));
                if let Some(c) = t.chars().next() {
                    out.push(quote(&c.to_string()));
                }
            }
            Value::Real(f) => out.push(format!("{f:?}")),
            Value::Null | Value::Blob(_) => {}
        }
    }
    // Keep the list short enough that each value is drawn often.
    while out.len() > 40 {
        let i = rng.below(out.len());
        out.swap_remove(i);
    }
    out
}

/// LIKE patterns built from the column's values: exact, case-changed,
/// prefix, suffix and single-character wildcards.
fn patterns(literals: &[String]) -> Vec<String> {
    let mut out = vec!["'%'".to_string(), "'%no such%'".to_string()];
    for l in literals {
        let Some(inner) = l.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) else {
            continue;
        };
        let chars: Vec<char> = inner.chars().collect();
        let half: String = chars[..chars.len() / 2].iter().collect();
        let tail: String = chars[chars.len() / 2..].iter().collect();
        out.push(quote(&format!("{half}%")));
        out.push(quote(&format!("%{tail}")));
        out.push(quote(&format!("{}%", half.to_ascii_uppercase())));
        if !chars.is_empty() {
            let mut one = chars.clone();
            one[0] = '_';
            out.push(quote(&one.iter().collect::<String>()));
        }
    }
    out
}

struct Generator {
    columns: Vec<(&'static str, Vec<String>, Vec<String>)>,
}

impl Generator {
    fn atom(&self, rng: &mut Rng) -> String {
        let (col, lits, pats) = rng.pick(&self.columns);
        let v = rng.pick(lits).clone();
        match rng.below(12) {
            0..=2 => format!("{col} = {v}"),
            3 => format!("{v} = {col}"),
            4 | 5 => {
                let n = 1 + rng.below(4);
                let list: Vec<String> = (0..n).map(|_| rng.pick(lits).clone()).collect();
                format!("{col} IN ({})", list.join(", "))
            }
            6 => format!("{col} = {v} COLLATE NOCASE"),
            7 | 8 => format!("{col} LIKE {}", rng.pick(pats)),
            9 => format!("{col} IS {v}"),
            10 => format!("{col} > {v}"),
            _ => format!("{col} IN (SELECT {v} UNION ALL SELECT {})", rng.pick(lits)),
        }
    }

    fn clause(&self, rng: &mut Rng, depth: usize) -> String {
        if depth == 0 || rng.below(3) == 0 {
            return self.atom(rng);
        }
        match rng.below(5) {
            0 | 1 => format!(
                "({} OR {})",
                self.clause(rng, depth - 1),
                self.clause(rng, depth - 1)
            ),
            2 | 3 => format!(
                "({} AND {})",
                self.clause(rng, depth - 1),
                self.clause(rng, depth - 1)
            ),
            _ => format!("NOT ({})", self.clause(rng, depth - 1)),
        }
    }
}

fn rows(conn: &Connection, sql: &str, stable: &Option<(usize, BTreeSet<i64>)>) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let width = stmt.column_count();
    let mut out: Vec<String> = stmt
        .query_map([], |r| {
            (0..width)
                .map(|i| r.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{sql}: {e}")))
        .filter(|row| match stable {
            Some((i, keep)) => matches!(row[*i], Value::Integer(k) if keep.contains(&k)),
            None => true,
        })
        .map(|row| format!("{row:?}"))
        .collect();
    out.sort();
    out
}

fn connection() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    let registry = Registry::new(TableEnv::default());
    let shared = ScanShared::new(Budget::unlimited(), registry.env().clone());
    for table in registry.tables() {
        vtab::register(&conn, table.clone(), shared.clone()).unwrap();
    }
    conn
}

/// Returns how many clauses returned at least one row, so a case whose
/// clauses all select nothing cannot pass unnoticed.
fn check(conn: &Connection, case: &Case, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let select = case.selected.join(", ");
    let base = match &case.stable {
        Some((col, keep)) => format!(
            " WHERE {col} IN ({})",
            keep.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => String::new(),
    };
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS snap; CREATE TABLE snap AS SELECT {select} FROM {}{base};",
        case.table
    ))
    .unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM snap", [], |r| r.get(0))
        .unwrap();
    assert!(count > 0, "{}: the snapshot is empty", case.table);
    let stable = case.stable.as_ref().map(|(col, keep)| {
        let i = case.selected.iter().position(|c| c == col).unwrap();
        (i, keep.iter().copied().collect::<BTreeSet<i64>>())
    });
    let generator = Generator {
        columns: case
            .constrained
            .iter()
            .map(|c| {
                let lits = literals(conn, c, &mut rng);
                let pats = patterns(&lits);
                (*c, lits, pats)
            })
            .collect(),
    };
    let mut nonempty = 0;
    for _ in 0..case.clauses {
        let clause = generator.clause(&mut rng, 3);
        let mut want_sql = String::new();
        write!(want_sql, "SELECT {select} FROM snap WHERE {clause}").unwrap();
        let got_sql = format!("SELECT {select} FROM {} WHERE {clause}", case.table);
        let want = rows(conn, &want_sql, &stable);
        let got = rows(conn, &got_sql, &stable);
        assert_eq!(
            got, want,
            "{}: the pushed-down answer differs from SQLite's\n  {got_sql}",
            case.table
        );
        nonempty += usize::from(!want.is_empty());
    }
    nonempty
}

/// `sleep` children with a known environment: stable processes to compare.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(n: usize) -> Self {
        let children: Vec<Child> = (0..n)
            .map(|i| {
                Command::new("/bin/sleep")
                    .arg("300")
                    .env_clear()
                    .env("SWEEP_EXACT", i.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn /bin/sleep")
            })
            .collect();
        let sleepers = Sleepers(children);
        let deadline = Instant::now() + Duration::from_secs(10);
        for pid in sleepers.pids() {
            // Until exec completes a child is still a copy of this process.
            while std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .as_deref()
                != Some("sleep\n")
            {
                assert!(Instant::now() < deadline, "child {pid} never became sleep");
                // The poll interval of a wait bounded by `deadline`, not a
                // synchronisation by itself.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sleepers
    }

    fn pids(&self) -> Vec<i64> {
        self.0.iter().map(|c| i64::from(c.id())).collect()
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn pushed_down_answers_equal_sqlite_filtering_a_full_scan() {
    let conn = connection();
    let sleepers = Sleepers::spawn(6);
    let own = vec![i64::from(std::process::id())];
    let _tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let _udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cases = [
        Case {
            table: "processes",
            constrained: &["pid", "name", "parent"],
            selected: &["pid", "name", "parent", "path", "cmdline"],
            stable: Some(("pid", sleepers.pids())),
            clauses: 300,
        },
        Case {
            table: "process_envs",
            constrained: &["pid", "key"],
            selected: &["pid", "key", "value"],
            stable: Some(("pid", sleepers.pids())),
            clauses: 200,
        },
        Case {
            table: "process_open_files",
            constrained: &["pid", "fd"],
            selected: &["pid", "fd", "path"],
            stable: Some(("pid", sleepers.pids())),
            clauses: 150,
        },
        Case {
            table: "process_memory_map",
            constrained: &["pid", "path"],
            selected: &["pid", "start", "path", "permissions"],
            stable: Some(("pid", sleepers.pids())),
            clauses: 60,
        },
        Case {
            table: "process_open_sockets",
            constrained: &["pid", "protocol"],
            selected: &["pid", "fd", "family", "protocol", "local_port"],
            stable: Some(("pid", own)),
            clauses: 60,
        },
        Case {
            table: "users",
            constrained: &["uid", "username", "shell"],
            selected: &["uid", "gid", "username", "directory", "shell"],
            stable: None,
            clauses: 300,
        },
        Case {
            table: "groups",
            constrained: &["gid", "groupname"],
            selected: &["gid", "groupname"],
            stable: None,
            clauses: 300,
        },
        Case {
            table: "routes",
            constrained: &["type", "destination"],
            selected: &["destination", "netmask", "gateway", "interface", "type"],
            stable: None,
            clauses: 100,
        },
        Case {
            table: "deb_packages",
            constrained: &["name", "admindir", "arch"],
            selected: &["name", "version", "arch", "admindir"],
            stable: None,
            clauses: 60,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let nonempty = check(&conn, case, 0x5eed_0000 + i as u64);
        assert!(
            nonempty * 10 >= case.clauses,
            "{}: only {nonempty} of {} clauses selected any row; the generator is too narrow",
            case.table,
            case.clauses
        );
    }
}

/// The two queries of the bug report, on the real tables.
#[test]
fn or_across_pushed_down_columns_keeps_every_row() {
    let conn = connection();
    let both = rows(
        &conn,
        "SELECT uid, username FROM users WHERE uid = 0 OR username = 'nobody'",
        &None,
    );
    assert!(both.iter().any(|r| r.contains("\"root\"")), "{both:?}");
    assert!(both.iter().any(|r| r.contains("\"nobody\"")), "{both:?}");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("a"), "a").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/b"), "b").unwrap();
    std::fs::write(dir.path().join("sub/c"), "c").unwrap();
    let got = rows(
        &conn,
        &format!(
            "SELECT path FROM file WHERE path = '{d}/a' OR directory = '{d}/sub' ORDER BY path"
        ),
        &None,
    );
    let want: Vec<String> = ["a", "sub/b", "sub/c"]
        .iter()
        .map(|f| format!("[Text(\"{d}/{f}\")]"))
        .collect();
    assert_eq!(got, want);
}

/// `file` has no unconstrained scan; its universe is what a fixture tree
/// holds. `=` and `IN` are exact (BINARY), LIKE folds ASCII case as SQLite
/// does, and a trailing `%%` walks everything below.
#[test]
fn file_constraints_match_sqlite_on_a_fixture_tree() {
    let conn = connection();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    for f in ["a.conf", "B.conf", "b.conf", "sub/x", "Sub/y", "sub/deep/z"] {
        let p = dir.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f).unwrap();
    }
    conn.execute_batch(&format!(
        "CREATE TABLE snap AS SELECT path, directory, size FROM file WHERE path LIKE '{d}/%%'"
    ))
    .unwrap();
    let all = rows(&conn, "SELECT path FROM snap", &None);
    assert_eq!(all.len(), 9, "{all:?}");
    let up = d.to_ascii_uppercase();
    let clauses = [
        format!("path = '{d}/b.conf' OR path = '{d}/B.conf'"),
        format!("path IN ('{d}/a.conf', '{d}/A.CONF', NULL, 5)"),
        format!("path = '{d}/A.CONF' COLLATE NOCASE AND path LIKE '{d}/%%'"),
        format!("path LIKE '{up}/SUB/%%'"),
        format!("path LIKE '{d}/b.CONF' OR path LIKE '{d}/sub/deep/%%'"),
        format!("(directory = '{d}/sub' OR directory = '{d}/Sub') AND path LIKE '{d}/%%'"),
        format!("path LIKE '{d}/_.conf'"),
    ];
    for clause in clauses {
        let want = rows(
            &conn,
            &format!("SELECT path, size FROM snap WHERE {clause}"),
            &None,
        );
        let got = rows(
            &conn,
            &format!("SELECT path, size FROM file WHERE {clause}"),
            &None,
        );
        assert_eq!(got, want, "{clause}");
        assert!(!want.is_empty(), "{clause} selects nothing");
    }
}
