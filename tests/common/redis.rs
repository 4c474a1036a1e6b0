//! A real redis-server for tests (plasmoid-store's `RedisServer`), with
//! its data in a temporary folder; a missing redis-server fails the test
//! saying what to install.

pub struct RedisServer {
    server: plasmoid_store::RedisServer,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server =
            plasmoid_store::RedisServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        RedisServer { server, _dir: dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Restart it on the same port and data.
    #[allow(dead_code)]
    pub fn up(&mut self) {
        self.server.up().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kill it; its data stays.
    #[allow(dead_code)]
    pub fn down(&mut self) {
        self.server.down();
    }
}
