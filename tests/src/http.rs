//! A static HTTP file server with byte ranges and an emulation of OCI
//! pre-authenticated requests, for tests: `tests/servers/http_server.py`
//! on a free loopback port.

use std::path::Path;
use std::process::Child;

use crate::start_script_server;

/// The PAR token the server accepts.
pub const PAR_TOKEN: &str = "good-token";

pub struct HttpServer {
    pub port: u16,
    child: Child,
}

impl HttpServer {
    /// Serves `root`: `/files/<path>` and `/p/<token>/n/<ns>/b/<dir>/o/<path>`.
    pub fn start(root: &Path) -> HttpServer {
        let (child, words) = start_script_server("http_server.py", &[root.as_os_str()], "", "the HTTP tests need Python 3");
        let port = words.first().and_then(|p| p.parse().ok()).expect("port");
        HttpServer { port, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    /// A PAR URL for `name` (a file or a prefix ending in `/`) under `bucket`.
    pub fn par(&self, token: &str, bucket: &str, name: &str) -> String {
        self.url(&format!("p/{token}/n/acme/b/{bucket}/o/{name}"))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
