//! The files API end to end: each backend (memory, fs, S3 via moto, Azure Blob via
//! Azurite) through the gateway, checked in the backend itself; ownership between keys;
//! a restart on fs + SQLite; the size limit and cut uploads leaving nothing behind; bad
//! requests in OpenAI's shape.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use liter_llm_proxy::store::FileQuery;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::objstores::ObjServer;
use crate::support::*;

const KEY_A: &str = "vk-files-team-a-0001";
const KEY_B: &str = "vk-files-team-b-0002";
const PREFIX: &str = "liter-llm-files/";

/// A gateway config with the master key, two virtual keys and `files` (the `[files]`
/// table); `db`: `general.database_url`.
fn config(files: &str, db: Option<&std::path::Path>) -> String {
    let db = db.map_or(String::new(), |p| {
        format!("database_url = \"{}\"", p.display())
    });
    format!(
        r#"
[general]
master_key = "{MASTER}"
{db}

[[models]]
name = "echo"
provider_model = "mock/echo"

[[keys]]
key = "{KEY_A}"
description = "team a"

[[keys]]
key = "{KEY_B}"
description = "team b"

{files}
"#
    )
}

/// The operator the gateway uses, built the same way, to look into the backend.
fn operator(backend: &str, backend_config: &str) -> opendal::Operator {
    let map: BTreeMap<String, String> = toml::from_str(backend_config).unwrap();
    liter_llm_proxy::objstore::operator(backend, &map, Duration::from_secs(10)).unwrap()
}

/// Every object under the files prefix.
async fn objects(op: &opendal::Operator) -> Vec<String> {
    match op.list_with(PREFIX).recursive(true).await {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/'))
            .map(|e| e.path().to_owned())
            .collect(),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing the backend: {e}"),
    }
}

fn form(purpose: &str, name: &str, data: impl Into<Vec<u8>>) -> Form {
    Form::new()
        .text("purpose", purpose.to_owned())
        .part("file", Part::bytes(data.into()).file_name(name.to_owned()))
}

async fn upload(gw: &Gateway, key: &str, purpose: &str, name: &str, data: &[u8]) -> Value {
    let resp = client()
        .post(format!("{}/v1/files", gw.url))
        .bearer_auth(key)
        .multipart(form(purpose, name, data.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn content(gw: &Gateway, key: &str, id: &str) -> reqwest::Response {
    gw.get(&format!("/v1/files/{id}/content"), Some(key))
        .send()
        .await
        .unwrap()
}

/// Upload, list (purpose, limit, order, after), get, content, delete: each checked in
/// the backend too.
async fn round_trip(gw: &Gateway, op: &opendal::Operator) {
    // Over one 5 MiB chunk, so S3 and Azure Blob take it in several parts.
    let big: Vec<u8> = (0..6 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let a = upload(gw, KEY_A, "batch", "a.jsonl", b"{\"a\":1}\n").await;
    let b = upload(gw, KEY_A, "fine-tune", "b.jsonl", &big).await;
    let c = upload(gw, KEY_A, "batch", "c.jsonl", b"c").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let (ia, ib, ic) = (id(&a), id(&b), id(&c));
    let (ia, ib, ic) = (ia.as_str(), ib.as_str(), ic.as_str());
    assert!(ia.starts_with("file-") && ia.len() >= 29, "{ia}");
    for (k, v) in [
        ("object", "file"),
        ("filename", "a.jsonl"),
        ("purpose", "batch"),
        ("status", "processed"),
    ] {
        assert_eq!(a[k], v, "{a}");
    }
    assert_eq!(a["bytes"], 8);
    assert_eq!(b["bytes"], big.len());
    assert!(a["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(a["expires_at"].is_null() && a["status_details"].is_null());
    assert_eq!(gw.get_json(&format!("/v1/files/{ia}"), KEY_A).await, a);
    assert_eq!(objects(op).await.len(), 3);
    assert_eq!(
        op.read(&format!("{PREFIX}{ib}")).await.unwrap().to_vec(),
        big
    );

    let list = gw.get_json("/v1/files", KEY_A).await;
    assert_eq!(list["object"], "list");
    assert_eq!(ids(&list), [ic, ib, ia], "newest first by default");
    assert_eq!((&list["first_id"], &list["last_id"]), (&c["id"], &a["id"]));
    assert_eq!(list["has_more"], false);
    let page1 = gw.get_json("/v1/files?order=asc&limit=2", KEY_A).await;
    assert_eq!(ids(&page1), [ia, ib]);
    assert_eq!(page1["has_more"], true);
    let page2 = gw
        .get_json(&format!("/v1/files?order=asc&limit=2&after={ib}"), KEY_A)
        .await;
    assert_eq!(ids(&page2), [ic]);
    assert_eq!(page2["has_more"], false);
    let batch = gw.get_json("/files?purpose=batch", KEY_A).await;
    assert_eq!(ids(&batch), [ic, ia], "and without /v1");

    let resp = content(gw, KEY_A, ib).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        big.len().to_string()
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), big);

    let deleted = client_delete(gw, &format!("/v1/files/{ib}"), KEY_A).await;
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted,
        serde_json::json!({"id": ib, "object": "file", "deleted": true})
    );
    assert!(!op.exists(&format!("{PREFIX}{ib}")).await.unwrap());
    expect_error(
        gw.get(&format!("/v1/files/{ib}"), Some(KEY_A))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    expect_error(content(gw, KEY_A, ib).await, 404).await;
    assert_eq!(ids(&gw.get_json("/v1/files", KEY_A).await), [ic, ia]);
    assert_eq!(objects(op).await.len(), 2);
}

async fn client_delete(gw: &Gateway, path: &str, key: &str) -> reqwest::Response {
    client()
        .delete(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn memory_backend_round_trip() {
    // The spec's in-memory example, as written.
    let gw = Gateway::start(&config("[files]\nbackend = \"memory\"\n", None)).await;
    // The gateway's own memory operator is private to it: check through the API, and
    // the object store through a probe of the same shape.
    let files = gw.app.files.clone().unwrap();
    let a = upload(&gw, KEY_A, "assistants", "notes.txt", b"hello files").await;
    let id = a["id"].as_str().unwrap();
    let body = content(&gw, KEY_A, id).await.bytes().await.unwrap();
    assert_eq!(&body[..], b"hello files");
    assert_eq!(
        client_delete(&gw, &format!("/v1/files/{id}"), KEY_A)
            .await
            .status(),
        200
    );
    assert_eq!(files.uploads_in_flight(), 0);
    expect_error(content(&gw, KEY_A, id).await, 404).await;
}

#[tokio::test]
async fn fs_backend_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let backend_config = format!("root = \"{}\"\n", root.display());
    let files = format!("[files]\nbackend = \"fs\"\n[files.backend_config]\n{backend_config}");
    let gw = Gateway::start(&config(&files, Some(&dir.path().join("gw.db")))).await;
    round_trip(&gw, &operator("fs", &backend_config)).await;
}

#[tokio::test]
async fn s3_backend_round_trip() {
    let s3 = ObjServer::s3("files");
    let dir = tempfile::tempdir().unwrap();
    let backend_config = s3.s3_config("files");
    let files = format!("[files]\nbackend = \"s3\"\nprefix = \"{PREFIX}\"\n[files.backend_config]\n{backend_config}");
    let gw = Gateway::start(&config(&files, Some(&dir.path().join("gw.db")))).await;
    round_trip(&gw, &operator("s3", &backend_config)).await;
}

#[tokio::test]
async fn azblob_backend_round_trip() {
    let az = ObjServer::azurite("files");
    let dir = tempfile::tempdir().unwrap();
    let backend_config = az.azblob_config("files");
    let files = format!("[files]\nbackend = \"azblob\"\n[files.backend_config]\n{backend_config}");
    let gw = Gateway::start(&config(&files, Some(&dir.path().join("gw.db")))).await;
    round_trip(&gw, &operator("azblob", &backend_config)).await;
}

#[tokio::test]
async fn a_key_sees_only_its_own_files_and_the_master_key_sees_all() {
    let gw = Gateway::start(&config("[files]\n", None)).await;
    let a = upload(&gw, KEY_A, "batch", "a.jsonl", b"a").await;
    let b = upload(&gw, KEY_B, "batch", "b.jsonl", b"b").await;
    let m = upload(&gw, MASTER, "batch", "m.jsonl", b"m").await;
    let (ia, ib, im) = (
        a["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        m["id"].as_str().unwrap(),
    );
    assert_eq!(ids(&gw.get_json("/v1/files", KEY_A).await), [ia]);
    assert_eq!(ids(&gw.get_json("/v1/files", KEY_B).await), [ib]);
    assert_eq!(ids(&gw.get_json("/v1/files", MASTER).await), [im, ib, ia]);
    // Another key's file, and the master's, do not exist for B: 404, never 403.
    for id in [ia, im] {
        let get = gw
            .get(&format!("/v1/files/{id}"), Some(KEY_B))
            .send()
            .await
            .unwrap();
        let body = expect_error(get, 404).await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains(id),
            "{body}"
        );
        expect_error(content(&gw, KEY_B, id).await, 404).await;
        expect_error(
            client_delete(&gw, &format!("/v1/files/{id}"), KEY_B).await,
            404,
        )
        .await;
    }
    // B's attempts changed nothing; a cursor of another key's file shows nothing of it.
    assert_eq!(
        &content(&gw, KEY_A, ia).await.bytes().await.unwrap()[..],
        b"a"
    );
    let after = gw
        .get_json(&format!("/v1/files?after={ia}&order=asc"), KEY_B)
        .await;
    assert_eq!(ids(&after), [ib]);
    // The master key reads and deletes anyone's.
    assert_eq!(
        &content(&gw, MASTER, ib).await.bytes().await.unwrap()[..],
        b"b"
    );
    assert_eq!(
        client_delete(&gw, &format!("/v1/files/{ia}"), MASTER)
            .await
            .status(),
        200
    );
    assert!(ids(&gw.get_json("/v1/files", KEY_A).await).is_empty());
    // Without a key: 401.
    expect_error(gw.get("/v1/files", None).send().await.unwrap(), 401).await;
}

#[tokio::test]
async fn files_survive_a_restart_on_fs_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let files = format!(
        "[files]\nbackend = \"fs\"\n[files.backend_config]\nroot = \"{}\"\n",
        dir.path().join("objects").display()
    );
    let cfg = config(&files, Some(&dir.path().join("gw.db")));
    let id = {
        let gw = Gateway::start(&cfg).await;
        let a = upload(&gw, KEY_A, "user_data", "keep.txt", b"kept across restarts").await;
        a["id"].as_str().unwrap().to_owned()
    };
    let gw = Gateway::start(&cfg).await;
    let list = gw.get_json("/v1/files", KEY_A).await;
    assert_eq!(ids(&list), [id.as_str()]);
    assert_eq!(list["data"][0]["filename"], "keep.txt");
    let body = content(&gw, KEY_A, &id).await.bytes().await.unwrap();
    assert_eq!(&body[..], b"kept across restarts");
    expect_error(content(&gw, KEY_B, &id).await, 404).await;
}

/// A gateway on fs + SQLite with `max_file_bytes`, and the way to look into both.
struct Limited {
    gw: Gateway,
    op: opendal::Operator,
    _dir: tempfile::TempDir,
}

impl Limited {
    async fn start(max_file_bytes: u64) -> Limited {
        let dir = tempfile::tempdir().unwrap();
        let backend_config = format!("root = \"{}\"\n", dir.path().join("objects").display());
        let files = format!(
            "[files]\nbackend = \"fs\"\nmax_file_bytes = {max_file_bytes}\n[files.backend_config]\n{backend_config}"
        );
        let gw = Gateway::start(&config(&files, Some(&dir.path().join("gw.db")))).await;
        Limited {
            gw,
            op: operator("fs", &backend_config),
            _dir: dir,
        }
    }

    /// Waits (bounded) until no upload is in progress, then asserts that no object and
    /// no metadata row is left.
    async fn assert_nothing_left(&self) {
        let files = self.gw.app.files.clone().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while files.uploads_in_flight() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(files.uploads_in_flight(), 0);
        assert!(
            objects(&self.op).await.is_empty(),
            "{:?}",
            objects(&self.op).await
        );
        let stores = self.gw.app.governor.stores.clone().unwrap();
        let rows = stores
            .files
            .list(&FileQuery {
                owner: None,
                purpose: None,
                after: None,
                order: liter_llm_proxy::store::FileOrder::Asc,
                limit: 10,
            })
            .await
            .unwrap();
        assert!(rows.is_empty(), "{rows:?}");
    }

    fn post(&self) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}/v1/files", self.gw.url))
            .bearer_auth(KEY_A)
    }
}

#[tokio::test]
async fn over_the_limit_is_413_and_leaves_nothing() {
    let l = Limited::start(1000).await;
    // Exactly the limit is fine.
    let ok = l
        .post()
        .multipart(form("batch", "ok", vec![b'x'; 1000]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let id = ok.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        client_delete(&l.gw, &format!("/v1/files/{id}"), KEY_A)
            .await
            .status(),
        200
    );

    // Announced: a Content-Length over the limit is refused before the body is read.
    let announced = l
        .post()
        .header("content-type", "multipart/form-data; boundary=x")
        .body(vec![b'x'; 1000 + 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    let body = expect_error(announced, 413).await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1000"),
        "{body}"
    );

    // Streamed: no length announced, the file part grows past the limit.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..30).map(|_| Ok(Bytes::from(vec![b'y'; 100]))).collect();
    let part = Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .file_name("big.jsonl");
    let streamed = l
        .post()
        .multipart(Form::new().text("purpose", "batch").part("file", part))
        .send()
        .await
        .unwrap();
    expect_error(streamed, 413).await;
    l.assert_nothing_left().await;
}

#[tokio::test]
async fn an_upload_cut_midway_leaves_nothing() {
    let l = Limited::start(64 * 1024 * 1024).await;
    // Over one 5 MiB chunk reaches the disk before the client goes away.
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = (0..6)
        .map(|_| Ok(Bytes::from(vec![b'z'; 1024 * 1024])))
        .collect();
    chunks.push(Err(std::io::Error::other("client gone")));
    let part = Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .file_name("cut.jsonl");
    let sent = l
        .post()
        .multipart(Form::new().text("purpose", "batch").part("file", part))
        .send()
        .await;
    assert!(sent.is_err(), "the client aborted its own request");
    l.assert_nothing_left().await;
}

#[tokio::test]
async fn bad_uploads_are_400_in_openais_shape() {
    let l = Limited::start(1000).await;
    let cases: Vec<(Form, &str)> = vec![
        (form("homework", "a.txt", "x"), "purpose"),
        (Form::new().text("purpose", "batch"), "file"),
        (
            Form::new().part("file", Part::bytes(b"x".to_vec()).file_name("a")),
            "purpose",
        ),
    ];
    for (form, param) in cases {
        let resp = l.post().multipart(form).send().await.unwrap();
        let body = expect_error(resp, 400).await;
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    let extra = form("batch", "a", "x").text("expires_after", "1");
    let body = expect_error(l.post().multipart(extra).send().await.unwrap(), 400).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expires_after"),
        "{body}"
    );
    let not_multipart = l
        .post()
        .json(&serde_json::json!({"purpose": "batch"}))
        .send()
        .await
        .unwrap();
    expect_error(not_multipart, 400).await;
    for query in ["limit=0", "limit=10001", "order=up", "bogus=1"] {
        let resp =
            l.gw.get(&format!("/v1/files?{query}"), Some(KEY_A))
                .send()
                .await
                .unwrap();
        expect_error(resp, 400).await;
    }
    l.assert_nothing_left().await;
}

#[tokio::test]
async fn without_a_files_table_the_routes_say_so() {
    let gw = Gateway::start(&config("", None)).await;
    let body = expect_error(gw.get("/v1/files", Some(MASTER)).send().await.unwrap(), 404).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[files]"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unreachable_backend_is_a_clear_503() {
    let (_socket, port) = refusing_port();
    let files = format!(
        "[files]\nbackend = \"s3\"\ntimeout_secs = 5\n[files.backend_config]\nbucket = \"b\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:{port}\"\naccess_key_id = \"id\"\nsecret_access_key = \"s3cr3t-value\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(&files, Some(&dir.path().join("gw.db")))).await;
    let resp = client()
        .post(format!("{}/v1/files", gw.url))
        .bearer_auth(KEY_A)
        .multipart(form("batch", "a", "x"))
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 503).await;
    let text = body.to_string();
    assert!(text.contains("s3"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    // Listing reads only metadata: it works.
    assert_eq!(
        gw.get("/v1/files", Some(KEY_A))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
