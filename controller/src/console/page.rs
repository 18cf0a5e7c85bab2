//! The page frame every console page shares, and HTML escaping. Pages are
//! rendered on the server; the little JavaScript there is (`assets/app.js`)
//! adds live updates, completion, sorting and filtering.

use axum::response::Html;

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the navigation (when signed in) and `body`.
pub fn layout(title: &str, user: Option<&str>, body: &str) -> Html<String> {
    let nav = match user {
        Some(user) => format!(
            r#"<nav><a href="/fleet">Fleet</a><a href="/hunt">Hunt</a><a href="/hunts">History</a><a href="/schedules">Schedules &amp; packs</a><a href="/matches">Matches</a><span class="user">{} · <a href="/logout">sign out</a></span></nav>"#,
            esc(user)
        ),
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{} · sweep</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/style.css"><script src="/assets/app.js" defer></script></head>
<body>{nav}<main>{body}</main></body></html>"#,
        esc(title)
    ))
}

/// An HTML table of `rows` under `columns`, every cell escaped.
pub fn table(id: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = format!("<table id=\"{}\" class=\"data\"><thead><tr>", esc(id));
    for c in columns {
        html.push_str(&format!("<th>{}</th>", esc(c)));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            html.push_str(&format!("<td>{}</td>", esc(cell)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_shown_not_run() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let t = table("t", &["a<b"], &[vec!["<img src=x onerror=1>".into()]]);
        assert!(!t.contains("<img"), "{t}");
    }
}
