//! AWS Signature Version 4 (header form, `AWS4-HMAC-SHA256`), written from AWS's
//! published algorithm and checked against its test suite (see the tests).
//!
//! Bedrock requests have no query string, so only the path, headers and body are
//! canonicalized. The canonical URI is the path *as sent* with every segment
//! percent-encoded again: AWS services other than S3 double-encode, so a model id
//! `a.b:0` is sent as `/model/a.b%3A0/…` and signed as `/model/a.b%253A0/…`.
//! The pieces are public so that a server (the test mock) can verify a signature
//! from the request it received.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm named in the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// `YYYYMMDDTHHMMSSZ` for Unix seconds (UTC).
pub fn amz_date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Lower-case hex of SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Percent-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`), in
/// upper-case hex, as SigV4's `UriEncode` does.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI of a path as sent: each segment encoded again (non-S3 services).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical request and the signed-headers list. `headers` are (name, value)
/// pairs; names are lower-cased, values trimmed with inner runs of spaces collapsed,
/// and the pairs sorted by name (values of repeated names joined by commas).
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    let mut sorted: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match sorted.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => sorted.push((name, value)),
        }
    }
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    for (name, value) in &sorted {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}"
    );
    (request, signed)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The credential scope: `DATE/REGION/SERVICE/aws4_request`.
pub fn scope(amz_date: &str, region: &str, service: &str) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    format!("{date}/{region}/{service}/aws4_request")
}

/// The hex signature of `canonical_request` made at `amz_date`.
pub fn signature(
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope(amz_date, region, service),
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// AWS credentials of one deployment.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"********")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "********"),
            )
            .finish()
    }
}

/// What signing adds to a request: `x-amz-date`, `x-amz-security-token` (with a
/// session token) and `authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub amz_date: String,
    pub security_token: Option<String>,
    pub authorization: String,
}

/// Signs a request without a query string. `headers` are the headers to sign besides
/// `host`, `x-amz-date` and `x-amz-security-token`, which this adds.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: u64,
) -> Signed {
    let amz_date = amz_date(now);
    let mut all = headers.to_vec();
    all.push(("host".into(), host.into()));
    all.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &creds.session_token {
        all.push(("x-amz-security-token".into(), token.clone()));
    }
    let (request, signed) =
        canonical_request(method, &canonical_uri(path), "", &all, &sha256_hex(body));
    let sig = signature(
        &creds.secret_access_key,
        &amz_date,
        region,
        service,
        &request,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed}, Signature={sig}",
        creds.access_key_id,
        scope(&amz_date, region, service)
    );
    Signed {
        amz_date,
        security_token: creds.session_token.clone(),
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials and time of AWS's SigV4 test suite.
    fn suite() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }
    const SUITE_TIME: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z

    fn suite_sig(method: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        sign(
            &suite(),
            "us-east-1",
            "service",
            method,
            "example.amazonaws.com",
            "/",
            &headers,
            body,
            SUITE_TIME,
        )
        .authorization
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(SUITE_TIME), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_798_761_599), "20261231T235959Z");
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        assert_eq!(
            suite_sig("GET", &[], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn aws_test_suite_post_vanilla() {
        assert!(suite_sig("POST", &[], b"").ends_with(
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ));
    }

    #[test]
    fn aws_test_suite_post_x_www_form_urlencoded() {
        let auth = suite_sig(
            "POST",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"Param1=value1",
        );
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date,"));
        assert!(auth.ends_with(
            "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        ));
    }

    #[test]
    fn canonical_form() {
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let (request, signed) =
            canonical_request("POST", "/", "", &headers, &sha256_hex(b"Param1=value1"));
        assert_eq!(
            request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n\
             x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n\
             9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        let (request, _) = canonical_request(
            "GET",
            "/",
            "",
            &[
                ("My-Header1".into(), "  a   b  ".into()),
                ("my-header1".into(), "c".into()),
            ],
            "x",
        );
        assert!(request.contains("my-header1:a b,c\n"), "{request}");
    }

    #[test]
    fn bedrock_paths_are_encoded_twice() {
        let sent = format!(
            "/model/{}/converse",
            uri_encode("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert_eq!(
            sent,
            "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            canonical_uri(&sent),
            "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(uri_encode("a/b é"), "a%2Fb%20%C3%A9");
    }

    #[test]
    fn session_tokens_are_signed() {
        let mut creds = suite();
        creds.session_token = Some("tok".into());
        let s = sign(
            &creds,
            "us-east-1",
            "bedrock",
            "POST",
            "h",
            "/",
            &[],
            b"{}",
            SUITE_TIME,
        );
        assert_eq!(s.security_token.as_deref(), Some("tok"));
        assert!(s
            .authorization
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert!(s
            .authorization
            .contains("/20150830/us-east-1/bedrock/aws4_request"));
        assert!(!format!("{creds:?}").contains("EXAMPLEKEY"));
    }
}
