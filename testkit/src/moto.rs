//! A moto S3 server on a free loopback port, for tests and benchmarks of stores on S3:
//! `testkit/moto_server.py`, which serves one request at a time (so conditional puts are
//! serialized as S3 serializes them), run by the Python `REELDB_MOTO_PYTHON` names.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running moto server with one bucket, `bkt`; stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

/// The bucket every server holds.
pub const BUCKET: &str = "bkt";

impl MotoServer {
    /// Starts one, or `None` (having said so) when `REELDB_MOTO_PYTHON` names no Python
    /// with `moto[server]`; with `REELDB_REQUIRE_MOTO` set, that is a panic instead, so a
    /// CI run cannot skip what needs the server.
    pub fn start() -> Option<MotoServer> {
        let Some(python) = std::env::var_os("REELDB_MOTO_PYTHON") else {
            assert!(
                std::env::var_os("REELDB_REQUIRE_MOTO").is_none(),
                "REELDB_REQUIRE_MOTO is set but REELDB_MOTO_PYTHON is not"
            );
            println!("s3: skipped, REELDB_MOTO_PYTHON names no Python with moto[server]");
            return None;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("moto_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto_server.py: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("moto_server.py printed {line:?}"));
        let stdin = child.stdin.take();
        Some(MotoServer { child, stdin, port })
    }

    /// The server's URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Storage options for a store on this server (`Store::open_url`).
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", self.endpoint().as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
            ("client_max_retries", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same, as the environment of a `reel` process (locks' leases of 2 s, so a killed
    /// writer's lock expires quickly).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("REELDB_LOCK_TTL", "2".into()),
        ]
    }
}

impl Drop for MotoServer {
    /// Closing its standard input ends it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
