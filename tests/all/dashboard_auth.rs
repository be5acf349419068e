//! The dashboard under `--auth jwt`, in a real headless Chromium against
//! a real `pyou serve`: with no token the page asks for one, a wrong one
//! is refused with the gateway's reason, and a token handed over in the
//! URL fragment is taken (and taken out of the address bar) and used for
//! every request and the WebSocket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fantoccini::Client;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::common::browser::{click, type_into, wait_js, Driver, Served};

const SECRET: &str = "a dashboard test secret of at least 32 bytes";
const SHOWN: Duration = Duration::from_secs(10);
/// What the page may do: the thread domain, the time spent, and the
/// shared view of other sessions.
const SCOPE: &str = "thread.# query.effort.* events:follow";

/// An HS256 token for `sub`, valid for five minutes, signed with `secret`.
fn token(secret: &str, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "sub": sub, "exp": now + 300, "scope": SCOPE });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

const PROMPT: &str = "const box = document.getElementById('login'); return !box.hidden && document.getElementById('main').hidden ? box.querySelector('.form-error').textContent : ''";

async fn loaded(browser: &Client, what: &str) {
    wait_js(
        browser,
        what,
        Duration::from_secs(30),
        "return document.getElementById('conn').dataset.state === 'open' && document.body.dataset.loaded !== undefined && document.getElementById('login').hidden",
    )
    .await;
}

async fn js(browser: &Client, script: &str) -> Value {
    browser
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_a_token_takes_one_from_the_fragment_and_says_when_it_is_refused() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let good = token(SECRET, "ada");
    let wrong = token(
        "another secret of at least 32 bytes, not the gateway's",
        "ada",
    );
    let served = Served::start_with(
        &["thread", "effort"],
        &["--auth", "jwt"],
        &[("PYOU_JWT_SECRET", SECRET)],
        Some(&good),
    )
    .await;
    let url = &served.url;

    // No token: the prompt, and nothing else.
    let a = driver.open("prompt", 1280, 860).await;
    a.goto(&format!("{url}/#sagas")).await.unwrap();
    let said = wait_js(&a, "the login prompt", SHOWN, PROMPT).await;
    assert!(said.as_str().unwrap().contains("needs a token"), "{said}");

    // A wrong token: asked again, with the gateway's reason.
    type_into(&a, "#login input[name='token']", &wrong).await;
    click(&a, "#login button[type='submit']").await;
    let said = wait_js(
        &a,
        "the refusal",
        SHOWN,
        &format!(
            "const t = (() => {{ {PROMPT} }})(); return t.includes('refused the token') ? t : ''"
        ),
    )
    .await;
    assert!(
        said.as_str().unwrap().contains("refused the token"),
        "{said}"
    );

    // The right one: the page loads, live.
    type_into(&a, "#login input[name='token']", &good).await;
    click(&a, "#login button[type='submit']").await;
    loaded(&a, "window a signed in").await;

    // A token in the fragment: used, kept for the tab, gone from the URL.
    let b = driver.open("fragment", 1280, 860).await;
    b.goto(&format!("{url}/#sagas&token={good}")).await.unwrap();
    loaded(&b, "window b with the fragment's token").await;
    let href = js(&b, "return location.href").await;
    assert_eq!(
        href,
        json!(format!("{url}/#sagas")),
        "the token left the URL"
    );
    let kept = js(&b, "return sessionStorage.getItem('pyou.token')").await;
    assert_eq!(kept, json!(good));

    // A command from the page works, and the other window, following
    // with its own token, shows it.
    for (name, text) in [("title", "Signed in"), ("id", "signed")] {
        type_into(&b, &format!("form[data-form='saga'] [name='{name}']"), text).await;
    }
    click(&b, "form[data-form='saga'] button[type='submit']").await;
    for (w, browser) in [("b", &b), ("a", &a)] {
        wait_js(
            browser,
            &format!("window {w}: the new saga"),
            SHOWN,
            "return document.querySelector(\"details[data-id='signed']\")?.textContent.includes('Signed in')",
        )
        .await;
    }
    // A reload keeps the token (sessionStorage) and asks for nothing.
    b.refresh().await.unwrap();
    loaded(&b, "window b after a reload").await;

    // A wrong token in the fragment: the prompt, with the reason.
    let c = driver.open("wrong", 1280, 860).await;
    c.goto(&format!("{url}/#board&token={wrong}"))
        .await
        .unwrap();
    let said = wait_js(&c, "the refusal of the fragment's token", SHOWN, PROMPT).await;
    assert!(
        said.as_str().unwrap().contains("refused the token"),
        "{said}"
    );

    for browser in [a, b, c] {
        browser.close().await.unwrap();
    }
}
