//! Local object stores for the cache and files tests: moto's S3-compatible server and
//! Azurite's Blob service, each started on a free port for one test and killed when
//! dropped. Installed by `scripts/objstores.sh` into `.objstores/` (the README's test
//! command runs it); a missing install fails the test with that instruction.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Azurite's documented development account (public, the same in every install).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// One running local object store.
pub struct ObjServer {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for ObjServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.objstores")
}

fn tool(rel: &str) -> PathBuf {
    let path = install_dir().join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/objstores.sh` (the README's test command does)",
        path.display()
    );
    path
}

/// Start `cmd` and wait for the line in its output that holds `marker` followed by
/// the URL it listens on.
fn spawn(mut cmd: Command, marker: &str, dir: tempfile::TempDir) -> ObjServer {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the object store");
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("object store did not start; it printed: {seen:?}");
        };
        if let Some(at) = line.find(marker) {
            let rest = &line[at + marker.len()..];
            if let Some(start) = rest.find("http://") {
                let url: String = rest[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                return ObjServer {
                    child,
                    endpoint: url.trim_end_matches('/').to_string(),
                    _dir: dir,
                };
            }
        }
        seen.push(line);
    }
}

impl ObjServer {
    /// moto's S3 server, with `bucket` made.
    pub fn s3(bucket: &str) -> ObjServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(tool("venv/bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", "0"]);
        let server = spawn(cmd, "Running on", dir);
        server.python(&format!(
            "import boto3\n\
             boto3.client('s3', endpoint_url='{}', region_name='us-east-1',\n\
               aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')",
            server.endpoint
        ));
        server
    }

    /// Azurite's Blob service, with `container` made in the development account.
    pub fn azurite(container: &str) -> ObjServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(tool("node_modules/.bin/azurite-blob"));
        cmd.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--location",
        ])
        .arg(dir.path());
        let server = spawn(cmd, "listens on", dir);
        server.python(&format!(
            "from azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient(account_url='{}/{AZURITE_ACCOUNT}', credential={{'account_name': '{AZURITE_ACCOUNT}', 'account_key': '{AZURITE_KEY}'}}).create_container('{container}')",
            server.endpoint
        ));
        server
    }

    fn python(&self, code: &str) {
        let out = Command::new(tool("venv/bin/python"))
            .args(["-c", code])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "setting up the object store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `backend_config` of an `s3` backend on this server.
    pub fn s3_config(&self, bucket: &str) -> String {
        format!(
            "bucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.endpoint
        )
    }

    /// The `backend_config` of an `azblob` backend on this server.
    pub fn azblob_config(&self, container: &str) -> String {
        format!(
            "container = \"{container}\"\nendpoint = \"{}/{AZURITE_ACCOUNT}\"\naccount_name = \"{AZURITE_ACCOUNT}\"\naccount_key = \"{AZURITE_KEY}\"\n",
            self.endpoint
        )
    }
}

/// The `backend_config` lines of a TOML table as the map the gateway passes on.
fn config_map(toml_lines: &str) -> std::collections::BTreeMap<String, String> {
    toml::from_str(toml_lines).unwrap()
}

#[tokio::test]
async fn s3_and_azblob_servers_round_trip_through_opendal() {
    let s3 = ObjServer::s3("probe");
    let az = ObjServer::azurite("probe");
    for (backend, cfg) in [
        ("s3", s3.s3_config("probe")),
        ("azblob", az.azblob_config("probe")),
    ] {
        let op = liter_llm_proxy::objstore::operator(
            backend,
            &config_map(&cfg),
            Duration::from_secs(10),
        )
        .unwrap();
        op.write("dir/object", "payload").await.unwrap();
        assert_eq!(
            op.read("dir/object").await.unwrap().to_vec(),
            b"payload",
            "{backend}"
        );
        op.delete("dir/object").await.unwrap();
        assert!(!op.exists("dir/object").await.unwrap(), "{backend}");
    }
}
