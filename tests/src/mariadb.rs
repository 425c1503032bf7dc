//! A private MariaDB for tests: a data directory initialised once into a
//! template under the machine's temporary directory (one per installed
//! server binary, shared by every test process and run, so none is left
//! behind per test), then copied for each server so tests never share
//! state, on a free loopback port with the binary log on.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use connectors::mysql::{ManagedServer, find_server_binary, managed};

fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let binary = find_server_binary()
            .unwrap_or_else(|| panic!("MariaDB server is not installed: `apt-get install mariadb-server` (scripts/test-deps.sh does this)"));
        // A new server binary gets a new template.
        let stamp = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let home = std::env::temp_dir().join(format!("lakewave-test-mariadb-{stamp}"));
        let ready = home.join("template");
        if ready.join("data").join("mysql").is_dir() {
            return ready;
        }
        std::fs::create_dir_all(&home).expect("create the MariaDB template's directory");
        // Initialised aside and moved in whole, so a test process never
        // copies a half-made template; when several processes race, the
        // first move wins and the others' copies are removed with `work`.
        let work = tempfile::tempdir_in(&home).expect("template work dir");
        let made = work.path().join("template");
        managed::initialise(&made).expect("initialise the template MariaDB data directory");
        if std::fs::rename(&made, &ready).is_err() {
            assert!(ready.join("data").join("mysql").is_dir(), "the MariaDB template could not be put in place at {}", ready.display());
        }
        ready
    })
}

/// A MariaDB server of the test's own.
pub struct TestMariaDb {
    pub server: std::sync::Arc<ManagedServer>,
    _dir: tempfile::TempDir,
}

impl TestMariaDb {
    pub fn start() -> TestMariaDb {
        let dir = tempfile::tempdir().expect("mariadb dir");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(template().join("data"))
            .arg(dir.path().join("data"))
            .status()
            .expect("copy the template data directory");
        assert!(status.success(), "copying the MariaDB template failed");
        let server = ManagedServer::start(dir.path(), 0).expect("start a private MariaDB");
        TestMariaDb { server: std::sync::Arc::new(server), _dir: dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.url()).await.expect("connect to the private MariaDB")
    }
}
