//! Starting and stopping real `blindstore serve` processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use blindstore_client::Client;

pub struct NodeProcess {
    child: Child,
    pub url: String,
    /// The node-to-node address, when started with --rpc-addr.
    pub rpc: Option<String>,
}

impl NodeProcess {
    /// Starts `blindstore serve` on an ephemeral port with `data_dir`, waiting (with a
    /// deadline) for the line that gives its address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::start_in(None, data_dir, extra)
    }

    pub fn start_in(cwd: Option<&Path>, data_dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::spawn(cwd, data_dir, extra, None)
    }

    /// Like [`NodeProcess::start`], logging at `trace` (every crate) into `log`.
    pub fn start_logging(data_dir: &Path, extra: &[&str], log: &Path) -> NodeProcess {
        Self::spawn(None, data_dir, extra, Some((log, "trace")))
    }

    /// Like [`NodeProcess::start`], logging as `serve` does without `RUST_LOG` into `log`.
    pub fn start_default_logs(data_dir: &Path, extra: &[&str], log: &Path) -> NodeProcess {
        Self::spawn(None, data_dir, extra, Some((log, "")))
    }

    fn spawn(
        cwd: Option<&Path>,
        data_dir: &Path,
        extra: &[&str],
        log: Option<(&Path, &str)>,
    ) -> NodeProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_blindstore"));
        cmd.arg("serve").arg("--http-addr").arg("127.0.0.1:0");
        if !data_dir.as_os_str().is_empty() {
            cmd.arg("--data-dir").arg(data_dir);
        }
        cmd.args(extra)
            .env(
                "RUST_LOG",
                std::env::var("BLINDSTORE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("BLINDSTORE_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((log, levels)) = log {
            match levels {
                "" => cmd.env_remove("RUST_LOG"),
                levels => cmd.env("RUST_LOG", levels),
            };
            cmd.stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("open the log file"),
            );
        }
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().expect("spawn blindstore");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut rpc = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("blindstore rpc listening on ") {
                    rpc = Some(addr.to_owned());
                }
                if let Some(url) = line.strip_prefix("blindstore listening on ") {
                    let _ = tx.send((url.to_owned(), rpc.clone()));
                }
            }
        });
        let (url, rpc) = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("blindstore printed its address within 120 s");
        NodeProcess { child, url, rpc }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub fn admin_client(&self, data_dir_for_token: &Path) -> Client {
        let token = std::fs::read_to_string(data_dir_for_token.join("admin-token"))
            .expect("admin token file");
        Client::new(&self.url).with_admin_token(token.trim())
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "blindstore did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds or `timeout` passes.
/// A free local port (bound, then released): for a server that must get a port it can be
/// restarted on, or that another process is told of in advance.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
