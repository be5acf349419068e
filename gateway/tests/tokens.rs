//! Property tests of token handling: whatever a client puts in a bearer
//! token, verification never panics, and only a token signed with the key
//! is accepted: a changed byte anywhere in a good one is refused.

use jsonwebtoken::{encode, EncodingKey, Header};
use parallel_you_gateway::auth::{JwtSettings, JwtVerifier};
use proptest::prelude::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&JwtSettings {
        hs256_secret: Some(SECRET.to_vec()),
        audience: Some("pyou".to_owned()),
        ..JwtSettings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn good_token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let claims = serde_json::json!({ "sub": "alice", "aud": "pyou", "exp": exp });
    let key = EncodingKey::from_secret(SECRET).unwrap_or_else(|e| panic!("{e}"));
    encode(&Header::default(), &claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_good_token_is_accepted() {
    // Without this the properties below would hold for a verifier that
    // refuses everything.
    assert!(verifier().verify(&good_token()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_text_is_refused_without_a_panic(
        token in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}",
            "eyJ[A-Za-z0-9_-]{0,80}\\.eyJ[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,43}",
        ]
    ) {
        prop_assert!(verifier().verify(&token).is_err());
    }

    #[test]
    fn a_changed_byte_in_a_good_token_is_refused(
        at in any::<prop::sample::Index>(),
        to in "[A-Za-z0-9_.-]",
    ) {
        let token = good_token();
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = to.as_bytes()[0];
        let changed = String::from_utf8(bytes).unwrap_or_default();
        // The last character of a base64url part can carry unused bits:
        // two spellings decode to the same bytes, which is no forgery.
        let part_end = token.as_bytes().get(i + 1).is_none_or(|b| *b == b'.');
        if changed != token && !part_end {
            prop_assert!(verifier().verify(&changed).is_err(), "{} accepted", changed);
        }
    }
}
