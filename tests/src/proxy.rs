//! A TCP proxy a test controls, to make a network partition that leaves the
//! connections looking alive.
//!
//! [`Proxy::start`] listens on a free loopback port and forwards each
//! connection to its upstream (set with [`Proxy::set_upstream`] before the
//! first connection). [`Proxy::cut`] stops forwarding in both directions
//! without closing anything: bytes wait in the proxy and in the kernel's
//! buffers, as they would behind a dead link, and neither end sees a reset
//! or an end of stream. [`Proxy::heal`] forwards again, delivering late
//! whatever was held.
//!
//! ```ignore
//! let proxy = Proxy::start().await;
//! let fleet = Fleet::builder("p.test").hosts(["app-1"]).proxied("app-1", &proxy).start().await;
//! proxy.cut();
//! // ... the agent and the coordinator stop hearing each other ...
//! proxy.heal();
//! ```

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A controllable TCP proxy; clones control the same proxy.
#[derive(Clone)]
pub struct Proxy {
    /// Where it listens (`127.0.0.1:PORT`).
    pub addr: String,
    upstream: Arc<Mutex<Option<String>>>,
    open: Arc<watch::Sender<bool>>,
}

impl Proxy {
    /// Listens on a free loopback port; forwards once it has an upstream.
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (open, _) = watch::channel(true);
        let proxy = Proxy {
            addr,
            upstream: Arc::new(Mutex::new(None)),
            open: Arc::new(open),
        };
        let accepting = proxy.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let proxy = accepting.clone();
                tokio::spawn(async move { proxy.forward(inbound).await });
            }
        });
        proxy
    }

    /// Where connections are forwarded to.
    pub fn set_upstream(&self, addr: &str) {
        *self.upstream.lock().unwrap() = Some(addr.to_string());
    }

    /// Stops forwarding, both ways, without closing any connection.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Forwards again: what was held is delivered now.
    pub fn heal(&self) {
        self.open.send_replace(true);
    }

    /// Carries one connection to the upstream and back until either end
    /// closes it.
    async fn forward(self, inbound: TcpStream) {
        let Some(upstream) = self.upstream.lock().unwrap().clone() else {
            return;
        };
        let Ok(outbound) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        let up = tokio::spawn(pump(in_read, out_write, self.open.subscribe()));
        let down = tokio::spawn(pump(out_read, in_write, self.open.subscribe()));
        let _ = tokio::join!(up, down);
    }
}

/// Copies `from` to `to` while the proxy is open; while it is cut, reads
/// nothing and writes nothing (what was read just before the cut is held
/// until the heal).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut open: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
