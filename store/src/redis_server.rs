//! A throwaway redis-server on 127.0.0.1 and a free port, for tests and
//! `plasmoid bench store`: an append-only file fsynced on every write (as
//! a release that wants durable writes would run it), data in a folder the
//! caller gives, stopped when dropped. Not how a release reaches Redis in
//! production: there the manifest names a server someone runs.

use crate::StoreError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to listen (10 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server this process started.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn failed(why: String) -> StoreError {
    StoreError::RedisServer(why)
}

impl RedisServer {
    /// Start one with its data in `dir`.
    pub fn start(dir: &Path) -> Result<RedisServer, StoreError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed(format!("no free port on 127.0.0.1: {e}")))?
            .port();
        let mut s = RedisServer {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        s.up()?;
        Ok(s)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The folder its data is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// (Re)start the server on the same port and data; returns once it
    /// listens.
    pub fn up(&mut self) -> Result<(), StoreError> {
        self.down();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                failed(format!(
                    "cannot start redis-server ({e}); install it (apt-get install redis-server)"
                ))
            })?;
        self.child = Some(child);
        let until = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(failed(format!(
                    "redis-server exited at once ({status}); is port {} taken?",
                    self.port
                )));
            }
            if Instant::now() > until {
                self.down();
                return Err(failed(format!(
                    "redis-server did not listen on 127.0.0.1:{} within {} s",
                    self.port,
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kill the server; its data stays in its folder.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.down();
    }
}
