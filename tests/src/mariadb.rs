//! A private MariaDB for tests: initialised once per test process into a
//! template directory, then copied for each server so tests never share
//! state, on a free loopback port with the binary log on.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use connectors::mysql::{ManagedServer, find_server_binary, managed};

static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

fn template() -> &'static Path {
    let (_, dir) = TEMPLATE.get_or_init(|| {
        assert!(
            find_server_binary().is_some(),
            "MariaDB server is not installed: `apt-get install mariadb-server` (scripts/test-deps.sh does this)"
        );
        let tmp = tempfile::tempdir().expect("template dir");
        let dir = tmp.path().join("template");
        managed::initialise(&dir).expect("initialise the template MariaDB data directory");
        (tmp, dir)
    });
    dir
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
