//! Vertex AI credentials: a Google service-account key file turned into OAuth 2 token
//! exchanges (RFC 7523 JWT bearer grant). Pure: the gateway sends the exchange, caches
//! the token and hands it back to the adapter.
//!
//! The assertion is a JWT signed with the account's RSA key (RS256, via `ring`):
//! header `{"alg":"RS256","typ":"JWT","kid":private_key_id}`, claims
//! `{iss: client_email, scope: cloud-platform, aud: token_uri, iat, exp: iat + 3600}`,
//! POSTed form-encoded to the file's `token_uri`
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`). The answer
//! is `{access_token, expires_in, token_type}`.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Uri;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::json;

use crate::providers::adapter::{AccessToken, Secret, TokenRequest};
use crate::types::ProviderError;

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long an assertion is valid (Google's maximum).
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// `token_uri` when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The form's `grant_type`, already URL-encoded.
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// A service account's key, parsed once when the deployment is built.
pub struct ServiceAccount {
    pub client_email: String,
    pub token_uri: Uri,
    /// The file's `project_id`, the default Vertex project.
    pub project_id: Option<String>,
    key_id: Option<String>,
    key: RsaKeyPair,
    /// The file's `private_key` as written (PEM), to keep out of error text.
    pem: Secret,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &"********")
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

impl ServiceAccount {
    /// Reads a service-account key file (`vertex_credentials` or
    /// `GOOGLE_APPLICATION_CREDENTIALS`). Errors never quote the key.
    pub fn from_file(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the Vertex credentials file {path:?}: {e}"))?;
        Self::from_json(&text).map_err(|e| format!("{path:?}: {e}"))
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| format!("not a service-account key file: {e}"))?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(format!(
                "credentials of type {kind:?} are not supported; use a service-account key file"
            ));
        }
        let der = pem_to_der(&file.private_key)?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not a usable RSA PKCS#8 key ({e})"))?;
        let token_uri = file
            .token_uri
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_URI)
            .parse()
            .map_err(|_| "token_uri is not a valid URL".to_string())?;
        Ok(Self {
            client_email: file.client_email,
            token_uri,
            project_id: file.project_id,
            key_id: file.private_key_id,
            key,
            pem: Secret(file.private_key),
        })
    }

    /// The key material an upstream must never echo to a client: the PEM as written,
    /// and each of its base64 lines (a partial echo is a leak too).
    pub fn key_material(&self) -> Vec<Secret> {
        let mut out = vec![self.pem.clone()];
        out.extend(
            self.pem
                .expose()
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                .map(|l| Secret(l.to_string())),
        );
        out
    }

    /// The signed JWT for an exchange at `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri.to_string(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token assertion failed".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The token exchange at `now`.
    pub fn token_request(&self, now: u64) -> Result<TokenRequest, ProviderError> {
        let assertion = self
            .assertion(now)
            .map_err(|e| ProviderError::new(500, "api_error", e))?;
        Ok(TokenRequest {
            uri: self.token_uri.clone(),
            headers: vec![(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )],
            // The assertion is base64url and dots: nothing to encode.
            body: Bytes::from(format!("grant_type={GRANT_TYPE}&assertion={assertion}")),
        })
    }

    /// The public key (DER `RSAPublicKey`), to verify assertions in tests.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key.public().as_ref().to_vec()
    }
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    if body.is_empty() || !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("private_key is not a PEM \"PRIVATE KEY\" block".into());
    }
    STANDARD
        .decode(body)
        .map_err(|_| "private_key is not valid base64 PEM".to_string())
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token endpoint's answer. A refused exchange (400, 401, 403: a revoked key, a
/// wrong account) is a 401; anything else that is not a token is a 502. The message quotes
/// Google's `error` and `error_description`, never the assertion.
pub fn parse_token_answer(status: u16, body: &[u8]) -> Result<AccessToken, ProviderError> {
    if (200..300).contains(&status) {
        let answer: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
            ProviderError::new(
                502,
                "api_error",
                format!("the Vertex token endpoint sent no access token: {e}"),
            )
            .with_code("token_exchange_failed")
        })?;
        return Ok(AccessToken {
            token: answer.access_token,
            expires_in_secs: answer.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let reason = [field("error"), field("error_description")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let message = format!(
        "the Vertex token exchange failed with HTTP {status}{}",
        if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        }
    );
    let (status, kind, code) = if matches!(status, 400 | 401 | 403) {
        (401, "authentication_error", "invalid_api_key")
    } else {
        (502, "api_error", "token_exchange_failed")
    };
    Err(ProviderError::new(status, kind, message).with_code(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_broken_answers() {
        let e = parse_token_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        )
        .unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.error.message.contains("invalid_grant"));
        assert_eq!(parse_token_answer(503, b"").unwrap_err().status, 502);
        assert_eq!(parse_token_answer(200, b"{}").unwrap_err().status, 502);
        let t =
            parse_token_answer(200, br#"{"access_token":"ya29.x","token_type":"Bearer"}"#).unwrap();
        assert_eq!((t.token.as_str(), t.expires_in_secs), ("ya29.x", 3600));
    }

    #[test]
    fn bad_key_files() {
        assert!(ServiceAccount::from_json("{}").is_err());
        let e = ServiceAccount::from_json(
            r#"{"type":"authorized_user","client_email":"a","private_key":"x"}"#,
        )
        .unwrap_err();
        assert!(e.contains("authorized_user"));
        let e = ServiceAccount::from_json(
            r#"{"type":"service_account","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
        )
        .unwrap_err();
        assert!(e.contains("RSA"), "{e}");
    }
}
