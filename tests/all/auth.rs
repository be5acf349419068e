//! `--auth jwt` end to end: real tokens made here (HS256 with a secret,
//! EdDSA with a key pair generated for the run, its public key in a JWKS
//! file), real HTTP and WebSocket clients on loopback, the host running
//! the `noop` test component.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use parallel_you_core::store::{MemoryStore, Store};
use parallel_you_gateway::auth::{JwtSettings, JwtVerifier};
use parallel_you_gateway::{Auth, GatewayConfig, SessionStore};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::common;
use common::gateway::{next_json, Server, Ws};

const SECRET: &[u8] = b"a test secret of at least 32 bytes, made for this run";
const AUDIENCE: &str = "pyou-test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a token for `sub`, valid for five minutes, with `extra`.
fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "aud": AUDIENCE, "exp": now() + 300, "iat": now() });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// An Ed25519 key pair: its PKCS#8 DER and its public JWK.
struct EdKey {
    der: Vec<u8>,
    jwk: Value,
}

fn ed_key(kid: &str) -> EdKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
    EdKey {
        der: pair.serialize_der(),
        jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" }),
    }
}

fn eddsa(key: &EdKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = key.jwk["kid"].as_str().map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_ed_der(&key.der)).unwrap()
}

fn write_jwks(path: &std::path::Path, keys: &[&EdKey]) {
    let doc = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    std::fs::write(path, doc.to_string()).unwrap();
}

/// A gateway with `--auth jwt`: HS256 and the keys in `jwks`.
async fn server(names: &[&str], jwks: Option<&std::path::Path>) -> Server {
    server_over(names, jwks, None).await
}

/// [`server`], keeping session owners in `owners`.
async fn server_over(
    names: &[&str],
    jwks: Option<&std::path::Path>,
    owners: Option<Arc<dyn Store>>,
) -> Server {
    let settings = JwtSettings {
        hs256_secret: Some(SECRET.to_vec()),
        jwks: jwks.map(std::path::Path::to_owned),
        audience: Some(AUDIENCE.to_owned()),
        ..JwtSettings::default()
    };
    let config = GatewayConfig {
        auth: Auth::Jwt(Arc::new(JwtVerifier::new(&settings).unwrap())),
        session_store: owners.map(SessionStore),
        ..GatewayConfig::default()
    };
    Server::start(names, config, None).await
}

async fn send(
    req: reqwest::RequestBuilder,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let (status, body, _) = send(reqwest::Client::new().get(url), token).await;
    (status, body)
}

async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let req = reqwest::Client::new().post(url).body(body.to_owned());
    let (status, body, _) = send(req, token).await;
    (status, body)
}

/// Opens `/ws?<query>` offering `protocol` (the token's carrier); the
/// HTTP status if the upgrade was refused, else the socket and the
/// protocol the gateway chose.
async fn ws(server: &Server, query: &str, protocol: &str) -> Result<(Ws, Option<String>), u16> {
    let mut req = format!("ws://{}/ws?{query}", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, res)) => {
            let chosen = res
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((ws, chosen))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let (k1, k2) = (ed_key("k1"), ed_key("k2"));
    write_jwks(&jwks, &[&k1]);
    let server = server(&["noop"], Some(&jwks)).await;
    let api = server.url("/api");

    let (status, body, headers) = send(reqwest::Client::new().get(&api), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(get(&server.url("/healthz"), None).await.0, 200);
    assert_eq!(get(&server.url("/"), None).await.0, 200, "the page's files");
    for path in ["/metrics", "/handlers", "/openapi.json"] {
        assert_eq!(get(&server.url(path), None).await.0, 401, "{path}");
    }

    let alice = claims("alice", json!({}));
    let refused = [
        (
            "another audience",
            hs256(&claims("alice", json!({ "aud": "other" }))),
        ),
        (
            "expired",
            hs256(&claims("alice", json!({ "exp": now() - 300 }))),
        ),
        (
            "not yet valid",
            hs256(&claims("alice", json!({ "nbf": now() + 300 }))),
        ),
        (
            "no subject",
            hs256(&json!({ "aud": AUDIENCE, "exp": now() + 300 })),
        ),
        (
            "another secret",
            encode(
                &Header::new(Algorithm::HS256),
                &alice,
                &EncodingKey::from_secret(b"another secret of at least 32 bytes long").unwrap(),
            )
            .unwrap(),
        ),
        ("a key not in the JWKS", eddsa(&k2, &alice)),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (why, token) in &refused {
        let (status, body) = get(&api, Some(token)).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(body["error"].is_string(), "{why}: {body}");
    }
    let (status, body) = get(&api, Some(&hs256(&alice))).await;
    assert_eq!(status, 200, "{body}");
    let by_k1 = eddsa(&k1, &alice);
    assert_eq!(get(&api, Some(&by_k1)).await.0, 200);
    assert_eq!(get(&api, Some(&by_k1)).await.0, 200, "verified before");
    let by_query = format!("{api}?access_token={}", hs256(&alice));
    assert_eq!(get(&by_query, None).await.0, 200);

    // The JWKS file is re-read when it changes: k2 in, k1 out, and the
    // very token verified with k1 before is refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_jwks(&jwks, &[&k2]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&api, Some(&eddsa(&k2, &alice))).await.0, 200);
    assert_eq!(get(&api, Some(&by_k1)).await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_subjects_session_is_403_and_none_of_its_events_leak() {
    let server = server(&["noop"], None).await;
    let alice = hs256(&claims("alice", json!({})));
    let bob = hs256(&claims("bob", json!({})));

    let (alice_ws, chosen) = ws(&server, "session=alice-s", &format!("bearer, {alice}"))
        .await
        .unwrap();
    assert_eq!(
        chosen.as_deref(),
        Some("bearer"),
        "the chosen protocol is echoed"
    );
    assert_eq!(
        ws(&server, "session=alice-s", &format!("bearer, {bob}"))
            .await
            .err(),
        Some(403)
    );
    let (status, body) = post(
        &server.url("/api/noop/ping?session=alice-s"),
        Some(&bob),
        "{}",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let carrier = format!("bearer.{bob}");
    let (mut bob_ws, chosen) = ws(&server, "session=bob-s", &carrier).await.unwrap();
    assert_eq!(chosen.as_deref(), Some(carrier.as_str()));

    // Bob reads everything his socket gets while alice runs 2000 commands.
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                msg = bob_ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => seen.extend_from_slice(t.as_bytes()),
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
        let _ = seen_tx.send(seen);
        bob_ws
    });
    const N: usize = 2000;
    let (mut alice_tx, mut alice_rx) = alice_ws.split();
    let sender = async {
        for i in 0..N {
            let mut cmd = common::cmd("noop.ping", &format!(r#"{{"secret":"alice-secret-{i}"}}"#))
                .with_session("alice-s");
            cmd.meta.reply_channel = None;
            alice_tx.send(Message::text(cmd.to_json())).await.unwrap();
        }
    };
    let receiver = async {
        let mut got = 0;
        while got < N {
            let msg = tokio::time::timeout(Duration::from_secs(30), alice_rx.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = msg else {
                panic!("alice's events stopped after {got}: {msg:?}")
            };
            let ev: Value = serde_json::from_str(text.as_str()).unwrap();
            // On a loaded machine a ping may miss the test deadline: its
            // error event answers it just the same, and is alice's alone.
            let key = &ev["meta"]["routing_key"];
            assert!(key == "noop.ponged" || key == "noop.error", "{ev}");
            assert_eq!(ev["meta"]["user_id"], "alice");
            assert_eq!(ev["meta"]["session_id"], "alice-s");
            got += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(300), async {
        tokio::join!(sender, receiver)
    })
    .await
    .expect("2000 commands within the time");
    // Bob's own command is answered to him meanwhile, with ?wait.
    let (status, answer) = post(
        &server.url("/api/noop/ping?session=bob-s&wait=5000"),
        Some(&bob),
        r#"{"mine":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["events"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(());
    let seen = seen_rx.await.unwrap();
    let _bob_ws = reader.await.unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains(r#""mine":true"#), "bob gets his own: {text}");
    assert!(
        !text.contains("alice-secret"),
        "an event of alice's reached bob"
    );
    assert!(!text.contains("alice-s"), "alice's session reached bob");

    // Replayed: what alice's session got while she was away is hers alone.
    drop((alice_tx, alice_rx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..10 {
        let url = server.url("/api/noop/ping?session=alice-s");
        let (status, _) = post(&url, Some(&alice), &format!(r#"{{"secret":"away-{i}"}}"#)).await;
        assert_eq!(status, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ws(&server, "session=alice-s", &format!("bearer, {bob}"))
            .await
            .err(),
        Some(403),
        "bob cannot take alice's replay"
    );
    let (mut bob_again, _) = ws(&server, "session=bob-s", &format!("bearer, {bob}"))
        .await
        .unwrap();
    let replayed = next_json(&mut bob_again, Duration::from_millis(500)).await;
    assert!(
        replayed
            .as_ref()
            .is_none_or(|r| !r.to_string().contains("away-")),
        "{replayed:?}"
    );
    let (mut alice_again, _) = ws(&server, "session=alice-s", &format!("bearer, {alice}"))
        .await
        .unwrap();
    // All ten, in publish order (the host runs them concurrently).
    for _ in 0..10 {
        let ev = next_json(&mut alice_again, Duration::from_secs(5))
            .await
            .expect("alice gets her replay");
        assert_eq!(ev["meta"]["session_id"], "alice-s", "{ev}");
        if ev["meta"]["routing_key"] == "noop.ponged" {
            let secret = ev["body"]["secret"].as_str().unwrap_or_default();
            assert!(secret.starts_with("away-"), "{ev}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_limit_what_a_token_may_send_query_and_follow() {
    let server = server(&["noop"], None).await;
    let narrow = hs256(&claims("carol", json!({ "scope": "noop.ping openid" })));
    let (status, body) = post(&server.url("/api/noop/ping"), Some(&narrow), "{}").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(&server.url("/api/noop/whoami"), Some(&narrow), "{}").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["missing_scope"], "noop.whoami");
    let (status, body) = get(&server.url("/api/query/tally/counts"), Some(&narrow)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["missing_scope"], "query.tally.counts");
    let narrow_ws = format!("bearer, {narrow}");
    assert_eq!(
        ws(&server, "session=c1&follow=noop.%23", &narrow_ws)
            .await
            .err(),
        Some(403),
        "following needs events:follow"
    );
    // Over the socket the refusal is an error event.
    let (mut socket, _) = ws(&server, "session=c1", &narrow_ws).await.unwrap();
    let cmd = common::cmd("noop.whoami", "{}").with_session("c1");
    socket.send(Message::text(cmd.to_json())).await.unwrap();
    let err = next_json(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(err["body"]["code"], "forbidden", "{err}");

    // A follower with the scope sees other sessions' events.
    let follower = hs256(&claims("dash", json!({ "scope": ["events:follow"] })));
    let (mut dash, _) = ws(
        &server,
        "session=d1&follow=noop.%23",
        &format!("bearer, {follower}"),
    )
    .await
    .unwrap();
    let (status, _) = post(
        &server.url("/api/noop/ping?session=c1"),
        Some(&narrow),
        r#"{"seen":1}"#,
    )
    .await;
    assert_eq!(status, 202);
    let fed = next_json(&mut dash, Duration::from_secs(5)).await.unwrap();
    assert_eq!(fed["body"]["seen"], 1, "{fed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_tokens_subject_as_user_id_and_never_the_clients() {
    let server = server(&["noop"], None).await;
    let alice = hs256(&claims("alice@example.com", json!({})));
    let (status, answer) = post(
        &server.url("/api/noop/whoami?session=w1&wait=5000"),
        Some(&alice),
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let ev = &answer["events"][0];
    assert_eq!(ev["body"]["user_id"], "alice@example.com", "{answer}");
    assert_eq!(ev["body"]["session_id"], "w1");
    assert_eq!(ev["meta"]["user_id"], "alice@example.com");

    let (mut socket, _) = ws(&server, "session=w2", &format!("bearer, {alice}"))
        .await
        .unwrap();
    let mut forged = common::cmd("noop.whoami", "{}").with_session("w2");
    forged.meta.user_id = Some("mallory".to_owned());
    socket.send(Message::text(forged.to_json())).await.unwrap();
    let err = next_json(&mut socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(err["body"]["code"], "invalid_envelope", "{err}");
    assert!(!err.to_string().contains("mallory"), "{err}");
    // A timer's command carries the user of the command that set it.
    let later = json!({ "delay_ms": 50, "key": "noop.whoami", "body": {} });
    let (status, _) = post(
        &server.url("/api/noop/later?session=w2"),
        Some(&alice),
        &later.to_string(),
    )
    .await;
    assert_eq!(status, 202);
    let mut identified = None;
    for _ in 0..3 {
        let ev = next_json(&mut socket, Duration::from_secs(5))
            .await
            .unwrap();
        if ev["meta"]["routing_key"] == "noop.identified" {
            identified = Some(ev);
            break;
        }
    }
    let ev = identified.expect("the timer's command answered");
    assert_eq!(ev["body"]["user_id"], "alice@example.com", "{ev}");
    assert!(ev["body"]["fired_by_timer"].is_string(), "{ev}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stays_its_subjects_across_a_gateway_restart() {
    let owners: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let alice = hs256(&claims("alice", json!({})));
    let bob = hs256(&claims("bob", json!({})));
    let first = server_over(&["noop"], None, Some(owners.clone())).await;
    let (status, _) = post(
        &first.url("/api/noop/ping?session=kept"),
        Some(&alice),
        "{}",
    )
    .await;
    assert_eq!(status, 202);
    first.stop().await;
    let second = server_over(&["noop"], None, Some(owners)).await;
    let (status, body) = post(&second.url("/api/noop/ping?session=kept"), Some(&bob), "{}").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        ws(&second, "session=kept", &format!("bearer, {bob}"))
            .await
            .err(),
        Some(403)
    );
    let (status, _) = post(
        &second.url("/api/noop/ping?session=kept"),
        Some(&alice),
        "{}",
    )
    .await;
    assert_eq!(status, 202);
    second.stop().await;
}
