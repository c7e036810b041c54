//! Runs a real `nats-server` as a child process with JetStream: on a random port or a given one,
//! in a temporary or a given store directory; stops it on drop, restarts it on the same port and
//! store, and starts three-node clusters. Used by the test suites, the benchmarks and
//! `timpora up`.
//!
//! A server never outlives the process that started it: on Linux it is started through
//! util-linux's `setpriv --pdeathsig TERM`, so the kernel stops it when the thread that started
//! it ends, even after a `SIGKILL` of its parent. The kernel watches that *thread*: start (and
//! restart) a server from a thread that lives as long as the server should.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `nats-server` binary to use instead of the one on `PATH`.
pub const BIN_ENV: &str = "NATS_SERVER_BIN";

/// Errors from starting or stopping a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary could not be found.
    #[error(
        "nats-server not found on PATH (or in ${BIN_ENV}): install it with \
         `apt-get install nats-server` (Debian, version 2.9 or newer), or set {BIN_ENV}"
    )]
    NotFound,
    /// Spawning or talking to the process failed.
    #[error("nats-server {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The server did not come up in time.
    #[error("nats-server did not become ready within {0:?}; its log:\n{1}")]
    NotReady(Duration, String),
    /// The server exited before it was ready.
    #[error("nats-server exited before it was ready ({0}); its log:\n{1}")]
    Exited(String, String),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Finds the `nats-server` binary: `$NATS_SERVER_BIN`, else `PATH`, else `/usr/sbin`.
pub fn find_binary() -> Result<PathBuf> {
    find_binary_in(
        std::env::var_os(BIN_ENV),
        &std::env::var_os("PATH").unwrap_or_default(),
    )
}

/// [`find_binary`] with the environment given explicitly.
fn find_binary_in(explicit: Option<std::ffi::OsString>, path: &std::ffi::OsStr) -> Result<PathBuf> {
    if let Some(p) = explicit {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::NotFound)
        };
    }
    std::env::split_paths(path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or(Error::NotFound)
}

/// Cluster membership of one node.
#[derive(Debug, Clone)]
struct ClusterOpts {
    name: String,
    port: u16,
    routes: Vec<u16>,
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    port: Option<u16>,
    store_dir: Option<PathBuf>,
    server_name: Option<String>,
    cluster: Option<ClusterOpts>,
    config: Option<String>,
}

impl Builder {
    /// Listen on this client port instead of a random one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Keep the JetStream store in this directory instead of a temporary one.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// The server's name (required for JetStream clusters).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Extra configuration file text (e.g. `authorization { … }`), added to the server's config.
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Start the server and wait until it accepts connections.
    pub fn start(self) -> Result<NatsServer> {
        let bin = find_binary()?;
        let work = tempfile::Builder::new()
            .prefix("timpora-nats-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let store = match &self.store_dir {
            Some(d) => d.clone(),
            None => work.path().join("store"),
        };
        std::fs::create_dir_all(&store).map_err(io("store dir"))?;
        let mut server = NatsServer {
            bin,
            opts: self,
            store,
            work,
            child: None,
            port: 0,
        };
        server.spawn(Duration::from_secs(15))?;
        Ok(server)
    }
}

/// A running `nats-server` child process; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    opts: Builder,
    store: PathBuf,
    work: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl NatsServer {
    /// Start a JetStream server on a random port with a temporary store.
    pub fn start() -> Result<Self> {
        Builder::default().start()
    }

    /// Configure a server before starting it.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.work.path().join("nats.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How the child ended, if it has (`None` while it runs or after [`NatsServer::stop`]).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stop the server (SIGKILL, like a crash) and wait for it to exit. The store is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server gracefully (SIGTERM lets it flush its store), waiting up to `grace`.
    pub fn shutdown(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port with the same store.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.opts.port = Some(self.port);
        self.spawn(Duration::from_secs(15))
    }

    fn spawn(&mut self, timeout: Duration) -> Result<()> {
        let ports_dir = self.work.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).map_err(io("ports dir"))?;
        let conf = self.work.path().join("nats.conf");
        std::fs::write(&conf, self.config_text()).map_err(io("config"))?;
        let log = self.work.path().join("nats.log");
        let port = self.opts.port.map_or("-1".to_owned(), |p| p.to_string());
        let mut cmd = match parent_death_wrapper() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "TERM", "--"]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(&self.store)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(io("spawn"))?;
        self.child = Some(child);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = read_ports_file(&ports_dir)
                && TcpStream::connect(("127.0.0.1", p)).is_ok()
            {
                self.port = p;
                tracing::debug!(port = p, "nats-server ready");
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                let log = self.log();
                self.stop();
                return Err(Error::Exited(status.to_string(), log));
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.stop();
                return Err(Error::NotReady(timeout, log));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn config_text(&self) -> String {
        let mut s = String::new();
        if let Some(name) = &self.opts.server_name {
            s.push_str(&format!("server_name: \"{name}\"\n"));
        }
        if let Some(c) = &self.opts.cluster {
            let routes: Vec<String> = c
                .routes
                .iter()
                .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
                .collect();
            s.push_str(&format!(
                "cluster {{\n  name: \"{}\"\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                c.name,
                c.port,
                routes.join(", ")
            ));
        }
        if let Some(extra) = &self.opts.config {
            s.push_str(extra);
            s.push('\n');
        }
        s
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `setpriv`, when this system has it: the child then gets SIGTERM when its parent thread ends.
fn parent_death_wrapper() -> Option<PathBuf> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = ["/usr/bin/setpriv", "/bin/setpriv"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file());
            if found.is_none() {
                tracing::warn!(
                    "setpriv (util-linux) not found: a nats-server started here can outlive a \
                     killed parent"
                );
            }
            found
        })
        .clone()
}

fn read_ports_file(dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    // {"nats":["nats://127.0.0.1:41234"], ...} (`tls://` when the server requires TLS)
    let after = &text[text.find("\"nats\"")?..];
    let rest = &after[after.find("://")? + "://".len()..];
    let end = rest.find('"')?;
    rest[..end].rsplit(':').next()?.parse().ok()
}

/// Reserve a free TCP port on loopback (released before returning; fine for tests).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("free port"))?;
    Ok(l.local_addr().map_err(io("free port"))?.port())
}

/// Three JetStream servers routed into one cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
}

impl Cluster {
    /// Start a three-node JetStream cluster on loopback with temporary stores. Ports are
    /// reserved and released before the nodes bind them, so another process can take one in
    /// between: a start that fails is tried again on fresh ports (three times in all).
    pub fn start() -> Result<Self> {
        Self::start_with("")
    }

    /// [`Cluster::start`] with extra configuration text on every node (e.g. `authorization`
    /// and `tls` blocks).
    pub fn start_with(config: &str) -> Result<Self> {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(config) {
                Ok(c) => return Ok(c),
                Err(e) if tries < 3 => {
                    tracing::debug!(error = %e.to_string().lines().next().unwrap_or_default(), "cluster start failed; trying other ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn start_once(config: &str) -> Result<Self> {
        let cluster_ports = [free_port()?, free_port()?, free_port()?];
        let client_ports = [free_port()?, free_port()?, free_port()?];
        let mut nodes = Vec::new();
        for (i, (&cp, &port)) in cluster_ports.iter().zip(&client_ports).enumerate() {
            let mut b = Builder::default()
                .port(port)
                .server_name(format!("timpora-n{}", i + 1));
            if !config.is_empty() {
                b = b.config(config);
            }
            b.cluster = Some(ClusterOpts {
                name: "timpora".into(),
                port: cp,
                routes: cluster_ports.iter().copied().filter(|&p| p != cp).collect(),
            });
            nodes.push(b.start()?);
        }
        Ok(Self { nodes })
    }

    /// The node named `name` (`timpora-n1`…), e.g. the one JetStream reports as a stream's
    /// leader.
    pub fn node_named(&mut self, name: &str) -> Option<&mut NatsServer> {
        self.nodes
            .iter_mut()
            .find(|n| n.opts.server_name.as_deref() == Some(name))
    }

    /// Comma-separated client URLs of every node.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_random_port_and_restarts_on_the_same_one() {
        let mut s = NatsServer::start().expect("nats-server");
        let port = s.port();
        assert_ne!(port, 0);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        s.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        s.restart().expect("restart");
        assert_eq!(s.port(), port);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn a_server_does_not_outlive_the_thread_that_started_it() {
        // Started from a thread that then ends without stopping it (as a killed parent would).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let s = NatsServer::start().expect("nats-server");
            tx.send((s.pid().unwrap(), s.port())).unwrap();
            // Leak it: no Drop, no stop; only the kernel's parent-death signal is left.
            std::mem::forget(s);
        })
        .join()
        .unwrap();
        let (pid, port) = rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
        {
            assert!(
                Instant::now() < deadline,
                "nats-server {pid} still running after its parent thread ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn missing_binary_says_how_to_install() {
        let err = find_binary_in(Some("/nonexistent/nats-server".into()), "".as_ref()).unwrap_err();
        assert!(matches!(err, Error::NotFound));
        let msg = err.to_string();
        assert!(msg.contains("apt-get install nats-server"), "{msg}");
        assert!(msg.contains(BIN_ENV), "{msg}");
        // An explicit binary that exists is used as is.
        let found = find_binary().unwrap();
        assert_eq!(
            find_binary_in(Some(found.clone().into()), "".as_ref()).unwrap(),
            found
        );
    }

    #[test]
    fn three_nodes_form_a_cluster() {
        let c = Cluster::start().expect("cluster");
        assert_eq!(c.nodes.len(), 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Every node's log shows routes to both others once the cluster has formed.
        loop {
            let routed = c
                .nodes
                .iter()
                .all(|n| n.log().matches("Route connection created").count() >= 2);
            if routed {
                break;
            }
            assert!(Instant::now() < deadline, "cluster did not form");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
