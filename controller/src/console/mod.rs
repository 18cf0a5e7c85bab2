//! `sweep console`: the operator's web page, served by this binary with its
//! assets embedded (no JavaScript build step). Pages are rendered here;
//! `assets/app.js` adds live updates over server-sent events, completion,
//! sorting and filtering.
//!
//! - [`config`]: who may sign in (Argon2 hashes of passwords and tokens).
//! - [`auth`]: sign-in, sessions, the signed-in user every page takes.
//! - [`page`]: the shared frame, tables, escaping.
//! - [`fleet`]: live agents by label and host, with counts.
//! - [`hunt`]: the SQL editor, a hunt's live progress, results, downloads,
//!   and the history of hunts issued here.
//! - [`schedules`]: scheduled queries and packs: list, add, remove, upload.
//! - [`matches`]: the live feed of `sweep.matches`.
//!
//! The signing key stays on the server (the controller's `--signing-key`);
//! what the console issues is signed with it and names the signed-in user
//! as its issuer. Listening beyond loopback needs `--tls-cert` and
//! `--tls-key`, or `--insecure-remote` said out loud.

pub mod auth;
pub mod config;
pub mod fleet;
pub mod hunt;
pub mod matches;
pub mod page;
pub mod schedules;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;

use crate::config::Settings;
use crate::ControllerError;
use config::ConsoleConfig;
use sweep_proto::Store;

/// `sweep console`: serve the web console.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Address to listen on. Beyond loopback it needs TLS (--tls-cert,
    /// --tls-key) or --insecure-remote.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The console's configuration: users and tokens who may sign in.
    #[arg(
        long,
        env = "SWEEP_CONSOLE_CONFIG",
        required_unless_present = "hash_password"
    )]
    pub console_config: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback (passwords and sessions then cross
    /// the network in clear).
    #[arg(long)]
    pub insecure_remote: bool,
    /// Print an Argon2 hash of the password or token read from standard
    /// input, for the console's configuration, and exit.
    #[arg(long)]
    pub hash_password: bool,
}

/// What every handler reaches.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

pub struct AppInner {
    pub settings: Settings,
    pub config: Arc<ConsoleConfig>,
    pub sessions: auth::Sessions,
    pub hunts: hunt::History,
    /// Served over TLS (cookies are marked Secure).
    pub tls: bool,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl App {
    /// A connection to the coordination store (one per request keeps a
    /// dead store from wedging the page).
    pub async fn store(&self) -> Result<Store, ControllerError> {
        self.settings.store().await
    }
}

pub async fn run(settings: &Settings, args: ConsoleArgs) -> Result<u8, ControllerError> {
    if args.hash_password {
        let mut secret = String::new();
        std::io::stdin().read_line(&mut secret)?;
        let secret = secret.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return Err(ControllerError::Usage(
                "nothing to hash on standard input".into(),
            ));
        }
        println!("{}", config::hash(secret)?);
        return Ok(0);
    }
    let path = args.console_config.clone().ok_or_else(|| {
        ControllerError::Usage("--console-config FILE is needed (who may sign in)".into())
    })?;
    let config = ConsoleConfig::load(&path)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    if !args.listen.ip().is_loopback() && tls.is_none() && !args.insecure_remote {
        return Err(ControllerError::Usage(format!(
            "--listen {} is beyond loopback: give --tls-cert and --tls-key, or --insecure-remote \
             to serve sign-ins in clear",
            args.listen
        )));
    }
    if settings.signing_key.is_none() {
        tracing::warn!("no --signing-key: hunts, schedules and packs from the console go unsigned");
    }
    let app = App {
        inner: Arc::new(AppInner {
            settings: settings.clone(),
            config: Arc::new(config),
            sessions: auth::Sessions::default(),
            hunts: hunt::History::default(),
            tls: tls.is_some(),
        }),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| ControllerError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to find the port.
    println!("sweep console on {scheme}://{addr}/");
    let router = router(app);
    match tls {
        Some(acceptor) => tls::serve(listener, acceptor, router).await?,
        None => axum::serve(listener, router)
            .with_graceful_shutdown(sweep_proto::runtime::shutdown_signal())
            .await
            .map_err(ControllerError::from)?,
    }
    Ok(0)
}

/// Every route.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", get(auth::logout))
        .route("/fleet", get(fleet::page))
        .route("/api/hosts", get(fleet::hosts))
        .route("/hunt", get(hunt::editor))
        .route("/hunts", get(hunt::history))
        .route("/hunts/{id}", get(hunt::view))
        .route("/api/schema", get(hunt::schema))
        .route("/api/hunts", post(hunt::start))
        .route("/api/hunts/{id}/events", get(hunt::events))
        .route("/api/hunts/{id}/rows.csv", get(hunt::csv))
        .route("/api/hunts/{id}/rows.json", get(hunt::json))
        .route("/schedules", get(schedules::page))
        .route("/schedules/add", post(schedules::add))
        .route("/schedules/remove", post(schedules::remove))
        .route("/packs/add", post(schedules::add_pack))
        .route("/packs/remove", post(schedules::remove_pack))
        .route("/matches", get(matches::page))
        .route("/api/matches/events", get(matches::events))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css", include_str!("assets/style.css")) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", include_str!("assets/app.js")) }),
        )
        .with_state(app)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// A page that could not be made: what failed, on the page.
pub fn failure(user: &str, title: &str, e: &ControllerError) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"error\">{}</p>",
        page::esc(title),
        page::esc(&e.to_string())
    );
    (
        StatusCode::BAD_GATEWAY,
        page::layout(title, Some(user), &body),
    )
        .into_response()
}
