//! Signing in and out: a name and password, or a token, from the console's
//! configuration, exchanged for a session cookie (HttpOnly, SameSite=Strict,
//! so other sites cannot post with it; Secure under TLS). Sessions live in
//! memory: restarting the console signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::page::{esc, layout};
use super::App;

pub const COOKIE: &str = "sweep_session";

/// Signed-in sessions: id -> (user, expiry).
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    pub fn open(&self, user: &str, ttl: Duration) -> String {
        // Two v4 UUIDs: 244 random bits from the OS.
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        by_id.retain(|_, (_, until)| *until > now);
        by_id.insert(id.clone(), (user.to_string(), now + ttl));
        id
    }

    pub fn user(&self, id: &str) -> Option<String> {
        let by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id
            .get(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(u, _)| u.clone())
    }

    pub fn close(&self, id: &str) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.remove(id);
    }
}

/// The signed-in user; pages take it as an argument, and a request without
/// a valid session is sent to the sign-in page (an API call gets 401).
pub struct SignedIn(pub String);

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        if let Some(user) = session_id(&parts.headers).and_then(|id| app.sessions.user(&id)) {
            return Ok(SignedIn(user));
        }
        if parts.uri.path().starts_with("/api/") {
            return Err((StatusCode::UNAUTHORIZED, "sign in first").into_response());
        }
        Err(Redirect::to("/login").into_response())
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
}

pub async fn login_page() -> Html<String> {
    form_page(None)
}

fn form_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    layout(
        "Sign in",
        None,
        &format!(
            r#"<form method="post" action="/login" class="login" id="login-form">
<h1>Sign in to sweep</h1>{error}
<label>User <input name="user" id="user" autocomplete="username"></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password"></label>
<p class="or">or</p>
<label>Token <input name="token" id="token" type="password" autocomplete="off"></label>
<button type="submit" id="sign-in">Sign in</button>
</form>"#
        ),
    )
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

pub async fn login(State(app): State<App>, Form(c): Form<Credentials>) -> Response {
    let config = app.config.clone();
    // Argon2 takes tens of milliseconds: off the async workers.
    let who = tokio::task::spawn_blocking(move || {
        if !c.token.is_empty() {
            config.check_token(&c.token)
        } else {
            config.check_password(&c.user, &c.password)
        }
    })
    .await
    .ok()
    .flatten();
    let Some(user) = who else {
        tracing::warn!("console sign-in refused");
        return (
            StatusCode::UNAUTHORIZED,
            form_page(Some("Wrong user, password or token.")),
        )
            .into_response();
    };
    tracing::info!(user = %user, "console sign-in");
    let id = app.sessions.open(&user, app.config.session_ttl);
    let secure = if app.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let mut resp = Redirect::to("/fleet").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

pub async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        app.sessions.close(&id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sweep_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}
