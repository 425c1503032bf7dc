//! An S3-compatible server for tests: moto's server on a free loopback port,
//! started by `tests/servers/s3_server.py` with a bucket and files uploaded.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Child;

use crate::start_script_server;

pub const S3_HINT: &str = "the S3 tests need moto's server: `pip install 'moto[server]'` (scripts/test-deps.sh does this)";

/// A running S3-compatible server; stops when dropped.
pub struct S3Server {
    pub port: u16,
    /// With signature checks on: the one key the server accepts.
    pub credentials: Option<(String, String)>,
    child: Child,
}

impl S3Server {
    /// Starts the server with `bucket` holding the files under `upload`;
    /// any key is accepted.
    pub fn start(bucket: &str, upload: Option<&Path>) -> S3Server {
        Self::launch(bucket, upload, false)
    }

    /// Like `start`, but requests must be signed with `credentials`.
    pub fn start_with_auth(bucket: &str, upload: Option<&Path>) -> S3Server {
        Self::launch(bucket, upload, true)
    }

    fn launch(bucket: &str, upload: Option<&Path>, auth: bool) -> S3Server {
        let mut args: Vec<&OsStr> = vec![bucket.as_ref()];
        if let Some(dir) = upload {
            args.push(dir.as_os_str());
        }
        if auth {
            args.push("--auth".as_ref());
        }
        let (child, words) = start_script_server("s3_server.py", &args, "moto.server, boto3", S3_HINT);
        let port = words.first().and_then(|p| p.parse().ok()).expect("port");
        let credentials = match (words.get(1), words.get(2)) {
            (Some(k), Some(s)) => Some((k.clone(), s.clone())),
            _ => None,
        };
        S3Server { port, credentials, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
