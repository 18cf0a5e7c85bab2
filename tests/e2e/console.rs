//! The console in a real browser: headless Chromium (Debian's `chromium`,
//! driven through `chromedriver`) over `sweep console` on a three-agent
//! cluster. It signs in, sees the fleet, issues a hunt from the editor,
//! sees rows from all three agents arrive, downloads them, and sees a rule
//! match arrive in the feed. Screenshots of each page are saved under
//! `target/e2e-artifacts/console/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use sweep_e2e::{free_port, wait_port, Cluster};

/// Where screenshots go: kept after the test, for people to look at.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts/console");
    std::fs::create_dir_all(&dir).expect("artifact directory");
    dir
}

fn need(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{tool} not found: install it with `apt-get install -y {package}` (ops/install-deps does)")
    })
}

/// An Argon2 hash of `secret`, from `sweep console --hash-password`.
fn hash(c: &Cluster, secret: &str) -> String {
    let mut child = c
        .sweep_cmd(&["console", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn click(browser: &fantoccini::Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
}

async fn type_into(browser: &fantoccini::Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into #{id}: {e}"));
}

async fn text_of(browser: &fantoccini::Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading #{id}: {e}"))
}

/// Waits (up to 30 s, polled by the webdriver client) for an element the
/// locator finds; the locators below say the condition waited for, so a
/// page a form post replaces is read afresh.
async fn appears(
    browser: &fantoccini::Client,
    locator: Locator<'_>,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(locator)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_hunt_three_agents_and_see_a_match_in_a_real_browser() {
    let chromium = need("chromium", "chromium");
    let chromedriver = need("chromedriver", "chromium-driver");
    let c = Cluster::start().unwrap();
    let hosts = ["web-1", "web-2", "web-3"];
    let agents: Vec<_> = hosts
        .iter()
        .map(|h| c.agent(h, &[("role", "web")]).unwrap())
        .collect();
    c.wait_agents(&hosts, Duration::from_secs(30)).unwrap();
    let rules = c.rules_dir(
        r#"
[[rule]]
id = "console_marker"
title = "A marked row from a console hunt"
severity = "high"
query = "hunt:*"
condition = "marker = 'from-the-console'"
"#,
    );
    let rules = c.rules(&rules).unwrap();

    let config = c.dir.path().join("console.toml");
    std::fs::write(
        &config,
        format!(
            "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\n",
            hash(&c, "correct horse battery")
        ),
    )
    .unwrap();
    let port = free_port();
    let console = c
        .spawn(
            "console",
            c.sweep_cmd(&[
                "console",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--console-config",
                config.to_str().unwrap(),
            ])
            .env("SWEEP_LOG", "info"),
        )
        .unwrap();
    wait_port(port, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("console not up: {e}\n{}", console.log_text()));
    let base = format!("http://127.0.0.1:{port}");

    let driver_port = free_port();
    let _driver = c
        .spawn(
            "chromedriver",
            Command::new(&chromedriver).arg(format!("--port={driver_port}")),
        )
        .unwrap();
    wait_port(driver_port, Duration::from_secs(20)).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let browser = ClientBuilder::native()
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("chromedriver session");
    let shots = artifacts();
    let shot = |name: &'static str| {
        let browser = browser.clone();
        let path = shots.join(name);
        async move {
            let png = browser.screenshot().await.expect("screenshot");
            std::fs::write(&path, png).unwrap();
            println!("screenshot: {}", path.display());
        }
    };
    let logs = || format!("{}\n{}", console.log_text(), rules.log_text());

    // Signing in: a wrong password is refused, the right one lands on the fleet.
    browser.goto(&format!("{base}/fleet")).await.unwrap();
    assert!(browser
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/login"));
    shot("login.png").await;
    type_into(&browser, "user", "alice").await;
    type_into(&browser, "password", "wrong").await;
    click(&browser, "sign-in").await;
    let refused = browser
        .wait()
        .for_element(Locator::Id("login-error"))
        .await
        .unwrap();
    assert!(refused.text().await.unwrap().contains("Wrong"));
    type_into(&browser, "user", "alice").await;
    type_into(&browser, "password", "correct horse battery").await;
    click(&browser, "sign-in").await;
    let count = browser
        .wait()
        .for_element(Locator::Id("agent-count"))
        .await
        .unwrap();
    assert!(
        count.text().await.unwrap().starts_with("3 of 3"),
        "{}",
        logs()
    );
    let fleet = text_of(&browser, "agents").await;
    for h in hosts {
        assert!(fleet.contains(h), "{fleet}");
    }
    shot("fleet.png").await;

    // A hunt from the editor: completion, then rows from all three agents.
    browser.goto(&format!("{base}/hunt")).await.unwrap();
    let sql = browser
        .wait()
        .for_element(Locator::Id("sql"))
        .await
        .unwrap();
    // The guard's refusal shows in the editor, at the table it names.
    sql.send_keys("SELECT pid FROM nosuchtable").await.unwrap();
    click(&browser, "run-hunt").await;
    let refusal = browser
        .wait()
        .for_element(Locator::Css("#sql-error:not([hidden])"))
        .await
        .unwrap();
    let text = refusal.text().await.unwrap();
    assert!(
        text.contains("nosuchtable") && text.contains("at character 17"),
        "{text}"
    );
    sql.clear().await.unwrap();
    sql.send_keys("SELECT 'from-the-console' AS marker, uid FROM use")
        .await
        .unwrap();
    let offered = match browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#completions:not([hidden]) li"))
        .await
    {
        Ok(li) => li,
        Err(e) => {
            let state = browser
                .execute(
                    "return [document.getElementById('sql').value, document.getElementById('completions').outerHTML];",
                    vec![],
                )
                .await
                .unwrap();
            panic!("no completion offered ({e}): {state}");
        }
    };
    assert_eq!(offered.text().await.unwrap(), "users");
    sql.send_keys("\u{e004}").await.unwrap(); // Tab takes it
    sql.send_keys(" WHERE uid = 0").await.unwrap();
    assert_eq!(
        sql.prop("value").await.unwrap().as_deref(),
        Some("SELECT 'from-the-console' AS marker, uid FROM users WHERE uid = 0")
    );
    shot("hunt-editor.png").await;
    click(&browser, "run-hunt").await;
    if appears(
        &browser,
        Locator::XPath("//*[@id='hunt-state'][starts-with(normalize-space(.), 'done')]"),
    )
    .await
    .is_err()
    {
        let state = text_of(&browser, "hunt-state").await;
        panic!("hunt not done: {state}\n{}", logs());
    }
    let rows = text_of(&browser, "rows").await;
    for h in hosts {
        assert!(rows.contains(h), "no row from {h}:\n{rows}\n{}", logs());
    }
    assert_eq!(text_of(&browser, "row-count").await, "3");
    shot("hunt-results.png").await;
    // The CSV download has the three rows.
    let href = browser
        .find(Locator::Id("download-csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv: String = browser
        .execute(
            "return fetch(arguments[0]).then(r => r.text());",
            vec![json!(href)],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().next().unwrap().starts_with("host,"), "{csv}");

    // The history lists it, issued by alice.
    browser.goto(&format!("{base}/hunts")).await.unwrap();
    let history = text_of(&browser, "history").await;
    assert!(history.contains("alice"), "{history}");

    // The rule's matches arrive in the live feed.
    browser.goto(&format!("{base}/matches")).await.unwrap();
    // Rows come in at the top: a third row means three matches.
    appears(
        &browser,
        Locator::Css("#matches tbody tr.match:nth-child(3)"),
    )
    .await
    .unwrap_or_else(|e| panic!("fewer than 3 matches in the feed ({e})\n{}", logs()));
    let feed = text_of(&browser, "matches").await;
    assert!(feed.contains("console_marker"), "{feed}");
    shot("matches.png").await;

    browser.goto(&format!("{base}/schedules")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Id("schedule-form"))
        .await
        .unwrap();
    // A schedule added from the form is signed, issued by alice, and listed;
    // removing it takes it away.
    let fill = |id: &'static str, text: &'static str| {
        let browser = browser.clone();
        async move {
            let field = browser.find(Locator::Id(id)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(text).await.unwrap();
        }
    };
    fill("schedule-name", "console_tick").await;
    fill("schedule-sql", "SELECT 1 AS one").await;
    fill("schedule-interval", "60").await;
    browser
        .find(Locator::Css("#schedule-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    appears(
        &browser,
        Locator::XPath("//table[@id='schedules']//button[@data-name='console_tick']"),
    )
    .await
    .unwrap_or_else(|e| panic!("console_tick not listed ({e})\n{}", logs()));
    let listed = text_of(&browser, "schedules").await;
    assert!(listed.contains("alice"), "{listed}\n{}", logs());
    let stored = c.sweep(&["schedule", "list", "--json"]);
    assert!(String::from_utf8_lossy(&stored.stdout).contains("console_tick"));
    // A pack file picked in the page, as osquery writes them.
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/packs/detection.conf");
    browser
        .find(Locator::Id("pack-file"))
        .await
        .unwrap()
        .send_keys(pack.canonicalize().unwrap().to_str().unwrap())
        .await
        .unwrap();
    appears(
        &browser,
        Locator::XPath("//*[@id='pack-file-status'][contains(., 'detection.conf')]"),
    )
    .await
    .unwrap_or_else(|e| panic!("the pack file was not read into the form ({e})"));
    assert_eq!(
        browser
            .find(Locator::Id("pack-name"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("detection"),
        "the pack file was not read into the form"
    );
    browser
        .find(Locator::Css("#pack-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    appears(
        &browser,
        Locator::XPath("//table[@id='packs']//button[@data-name='detection']"),
    )
    .await
    .unwrap_or_else(|e| panic!("the pack is not listed ({e})\n{}", logs()));
    shot("schedules.png").await;
    browser
        .find(Locator::Css("button.remove[data-name='console_tick']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The list comes back without it (the old page still has it).
    appears(
        &browser,
        Locator::XPath("//table[@id='schedules'][not(.//button[@data-name='console_tick'])]"),
    )
    .await
    .unwrap_or_else(|e| panic!("console_tick still listed ({e})"));

    browser.close().await.unwrap();
    drop(agents);
}

/// Beyond loopback the console refuses plain HTTP unless told, and serves
/// HTTPS with the certificate it is given.
#[test]
fn beyond_loopback_it_needs_tls_and_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let hashed = {
        let mut child = Command::new(sweep_e2e::bin("sweep"))
            .args(["console", "--hash-password"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "s3cret").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let config = dir.path().join("console.toml");
    std::fs::write(
        &config,
        format!("[[users]]\nname = \"bob\"\npassword_hash = \"{hashed}\"\n"),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let console = |extra: &[&str]| {
        let mut cmd = Command::new(sweep_e2e::bin("sweep"));
        cmd.args(["console", "--listen", &listen, "--console-config"])
            .arg(&config)
            .args(extra)
            .stdin(Stdio::null());
        cmd
    };
    let refused = console(&[]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("beyond loopback") && said.contains("--tls-cert"),
        "{said}"
    );

    let tls = sweep_e2e::make_tls(dir.path()).unwrap();
    let mut served = console(&[
        "--tls-cert",
        tls.cert.to_str().unwrap(),
        "--tls-key",
        tls.key.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_port(port, Duration::from_secs(20)).unwrap();
    let page = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&tls.ca)
        .arg(format!("https://127.0.0.1:{port}/login"))
        .output()
        .expect("curl (apt-get install -y curl)");
    let _ = served.kill();
    let _ = served.wait();
    assert!(page.status.success(), "{page:?}");
    assert!(
        String::from_utf8_lossy(&page.stdout).contains("Sign in to sweep"),
        "{page:?}"
    );
}
