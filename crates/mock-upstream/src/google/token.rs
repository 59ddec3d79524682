//! `POST /token`: Google's OAuth 2 token endpoint for service accounts (the JWT-bearer
//! grant). The form must carry `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! and an `assertion` that is a JWT with an `RS256` header and the claims Google checks:
//! `iss`, `scope`, `aud`, `iat` and `exp = iat + 3600`, and a non-empty signature (the
//! signature itself is not verified: the mock has no public key). The answer is
//! `{"access_token":"ya29.mock-token-<n>","expires_in":3600,"token_type":"Bearer"}` (the
//! lifetime can be changed: [`crate::MockUpstream::set_token_lifetime`]);
//! anything else is Google's `400 {"error":"invalid_grant",...}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};

use super::TOKEN_PREFIX;
use crate::body::{self, Reply};
use crate::server::Payload;
use crate::state::Shared;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub(super) fn respond(shared: &Shared, payload: &Payload) -> Reply {
    let form = payload
        .raw()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    match check(&form) {
        Ok(()) => body::json(
            StatusCode::OK,
            &json!({
                "access_token": format!("{TOKEN_PREFIX}{}", shared.next_id()),
                "expires_in": shared.token_lifetime(),
                "token_type": "Bearer",
            }),
        )
        .into(),
        Err(why) => body::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_grant", "error_description": why}),
        )
        .into(),
    }
}

/// `%XX` and `+` decoded.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn field(form: &str, name: &str) -> Option<String> {
    form.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| url_decode(v))
}

fn segment(s: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "Invalid JWT: not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "Invalid JWT: not JSON".to_string())
}

/// Why the form is not a valid JWT-bearer grant.
fn check(form: &str) -> Result<(), String> {
    if field(form, "grant_type").as_deref() != Some(GRANT_TYPE) {
        return Err("Invalid grant_type".into());
    }
    let assertion = field(form, "assertion").ok_or("Missing assertion")?;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: expected three segments".into());
    };
    let header = segment(header)?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256".into());
    }
    let claims = segment(claims)?;
    for name in ["iss", "scope", "aud"] {
        if claims[name].as_str().is_none_or(str::is_empty) {
            return Err(format!("Invalid JWT: missing {name}"));
        }
    }
    if !claims["scope"]
        .as_str()
        .is_some_and(|s| s.contains("https://www.googleapis.com/auth/cloud-platform"))
    {
        return Err("Invalid JWT: scope must include cloud-platform".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp are required".into());
    };
    if exp != iat + 3600 {
        return Err("Invalid JWT: exp must be iat + 3600".into());
    }
    if URL_SAFE_NO_PAD
        .decode(signature)
        .map_or(true, |s| s.len() < 64)
    {
        return Err("Invalid JWT Signature.".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn jwt(header: Value, claims: Value) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        )
    }

    #[test]
    fn checks_the_grant() {
        let claims = json!({"iss":"a@b","scope":"https://www.googleapis.com/auth/cloud-platform",
            "aud":"http://x/token","iat":100,"exp":3700});
        let good = jwt(json!({"alg":"RS256","typ":"JWT"}), claims.clone());
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={good}"
        );
        assert_eq!(check(&form), Ok(()));
        assert!(check(&format!("grant_type=password&assertion={good}")).is_err());
        let none = jwt(json!({"alg":"none"}), claims.clone());
        assert!(check(&form.replace(&good, &none)).is_err());
        let mut late = claims;
        late["exp"] = json!(9999);
        let late = jwt(json!({"alg":"RS256"}), late);
        assert!(check(&form.replace(&good, &late)).is_err());
        assert_eq!(url_decode("a%3Ab+c%"), "a:b c%");
    }
}
