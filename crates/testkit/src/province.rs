//! A provincial office and the centre, as two real `nats-server`s: the centre (users, TLS, a
//! leaf-node port with mutual TLS) and the office's leaf node (JetStream in its own domain, its
//! own users and TLS), linked through a TCP relay the test can cut and restore — the office's
//! link to the centre dropping and coming back.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use timpora_bus::{Office, Topology};
use timpora_natsd::NatsServer;

use crate::pki::DevCa;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to `target` that can be cut (every connection through it closed, new ones
/// refused) and restored.
pub struct Link {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Relay connections on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(watch::Sender::new(true));
        let accept = tokio::spawn(relay(listener, target, up.clone()));
        Ok(Self { addr, up, accept })
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every connection through the link and refuse new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Let connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn relay(listener: TcpListener, target: SocketAddr, up: Arc<watch::Sender<bool>>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if !*up.borrow() {
            continue; // dropped: the link is down
        }
        let mut down = up.subscribe();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = down.wait_for(|up| !*up) => {}
            }
        });
    }
}

/// The centre and one office, each a secured `nats-server`, the office's leaf node linked to the
/// centre through a [`Link`].
pub struct Province {
    /// The centre's server.
    pub centre: NatsServer,
    /// How the centre's components reach it.
    pub centre_nats: timpora_hub::NatsConfig,
    /// The centre's topology: the office's events mirrored and sourced.
    pub centre_topology: Topology,
    /// The office's leaf node.
    pub office: NatsServer,
    /// How the office's components reach it.
    pub office_nats: timpora_hub::NatsConfig,
    /// The office's topology (its domain's streams).
    pub office_topology: Topology,
    /// The office's link to the centre.
    pub link: Link,
    ca: DevCa,
    ca_file: std::path::PathBuf,
}

impl Province {
    /// Start the centre and `office`'s leaf node, with credentials, CAs and certificates in
    /// `dir`, as `deploy/nats/cluster-node.conf` and `leaf-province.conf` configure them; both
    /// topologies are `base`'s (its names left at their defaults), the centre's gathering from
    /// the office.
    pub async fn start(dir: &Path, office: Office, base: Topology) -> anyhow::Result<Self> {
        let name = office.name.clone();
        let centre_topology = Topology {
            offices: vec![name.clone()],
            ..base.clone()
        }
        .resolve()?;
        let office_topology = Topology {
            office: Some(office),
            ..base
        }
        .resolve()?;

        let centre_dir = dir.join("centre");
        let (mut centre_nats, mut centre_config, ca) =
            crate::dev::secure(&centre_dir, &centre_topology)?;
        let (server_cert, server_key) = timpora_client::dev::server_paths(&centre_dir);
        let ca_file = timpora_client::dev::ca_path(&centre_dir);
        let leaf_port = timpora_natsd::free_port()?;
        // Offices reach the centre only through the link, the address it advertises to them
        // (nats-server 2.9 advertises its own leaf address even with `no_advertise`).
        let link = Link::start(SocketAddr::from(([127, 0, 0, 1], leaf_port))).await?;
        centre_config.push_str(&format!(
            "leafnodes {{\n  listen: \"127.0.0.1:{leaf_port}\"\n  advertise: \"{}\"\n  tls {{\n    cert_file: \"{}\"\n    \
             key_file: \"{}\"\n    ca_file: \"{}\"\n    verify_and_map: true\n    timeout: 5\n  }}\n}}\n",
            link.addr(),
            server_cert.display(),
            server_key.display(),
            ca_file.display()
        ));
        let centre = NatsServer::builder()
            .server_name("timpora-centre")
            .config(centre_config)
            .start()?;
        centre_nats.url = centre.url();

        // The office's leaf certificate, from the centre's CA: the centre knows the office by it.
        let leaf = ca.client(&timpora_bus::auth::leaf_user(&name))?;
        let office_dir = dir.join("office");
        let (mut office_nats, mut office_config, _) =
            crate::dev::secure(&office_dir, &office_topology)?;
        let leaf_cert = office_dir.join("pki/leaf.pem");
        let leaf_key = office_dir.join("pki/leaf.key");
        std::fs::write(&leaf_cert, &leaf.cert_pem)?;
        write_private(&leaf_key, &leaf.key_pem)?;
        let denies = centre_topology
            .leaf_remote_denies()
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        office_config.push_str(&format!(
            "jetstream {{\n  domain: \"{name}\"\n}}\nleafnodes {{\n  reconnect: 1\n  remotes: [\n    {{\n      \
             url: \"tls://{addr}\"\n      deny_imports: [{denies}]\n      \
             deny_exports: [{denies}]\n      tls {{\n        cert_file: \"{}\"\n        \
             key_file: \"{}\"\n        ca_file: \"{}\"\n        timeout: 5\n      }}\n    }}\n  ]\n}}\n",
            leaf_cert.display(),
            leaf_key.display(),
            ca_file.display(),
            addr = link.addr(),
        ));
        let office = NatsServer::builder()
            .server_name(format!("timpora-office-{name}"))
            .config(office_config)
            .start()?;
        office_nats.url = office.url();
        Ok(Self {
            centre,
            centre_nats,
            centre_topology,
            office,
            office_nats,
            office_topology,
            link,
            ca,
            ca_file,
        })
    }

    /// Another leaf node linking to the centre through the link, with a certificate from the
    /// centre's CA whose common name is `name`, without JetStream, without users and without
    /// the office's own refusals: what a misconfigured or hostile office could run. Its clients
    /// connect anonymously.
    pub fn unguarded_leaf(&self, dir: &Path, name: &str) -> anyhow::Result<NatsServer> {
        std::fs::create_dir_all(dir)?;
        let issued = self.ca.client(name)?;
        let (cert, key) = (dir.join("leaf.pem"), dir.join("leaf.key"));
        std::fs::write(&cert, &issued.cert_pem)?;
        write_private(&key, &issued.key_pem)?;
        let config = format!(
            "jetstream {{\n  domain: \"unguarded\"\n}}\nleafnodes {{\n  reconnect: 1\n  remotes: [\n    {{\n      url: \"tls://{}\"\n      tls {{\n        \
             cert_file: \"{}\"\n        key_file: \"{}\"\n        ca_file: \"{}\"\n        timeout: 5\n      }}\n    }}\n  ]\n}}\n",
            self.link.addr(),
            cert.display(),
            key.display(),
            self.ca_file.display()
        );
        Ok(NatsServer::builder()
            .server_name(format!("unguarded-{}", name.replace(['/', ' '], "-")))
            .config(config)
            .start()?)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
