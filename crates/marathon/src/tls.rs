//! The REST API over TLS (8443). The certificate is the node's own, generated once into
//! Marathon's work dir (its IP as the subject name) and reused across restarts; when Admin
//! Router's cluster CA exists, the CA will issue it instead.
//!
//! Handshakes run off the accept loop, each with a deadline, so a slow or silent client
//! never holds up the others.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to pick them up.
const READY_BACKLOG: usize = 128;

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate could not be made, read or written.
    #[error("cannot prepare Marathon's TLS certificate in {dir}: {why}")]
    Certificate {
        /// The directory.
        dir: String,
        /// What went wrong.
        why: String,
    },
}

/// Loads (or creates) the node certificate for `ip` under `dir` and builds the acceptor.
pub fn acceptor(dir: &Path, ip: std::net::IpAddr) -> Result<TlsAcceptor, Error> {
    let fail = |why: String| Error::Certificate {
        dir: dir.display().to_string(),
        why,
    };
    let cert_path = dir.join("marathon.crt");
    let key_path = dir.join("marathon.key");
    if !cert_path.exists() || !key_path.exists() {
        let names = vec![ip.to_string(), "marathon.mesos".into(), "localhost".into()];
        let cert = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
        fs_err::write(&key_path, cert.key_pair.serialize_pem()).map_err(|e| fail(e.to_string()))?;
        fs_err::write(&cert_path, cert.cert.pem()).map_err(|e| fail(e.to_string()))?;
    }
    let cert_pem = fs_err::read_to_string(&cert_path).map_err(|e| fail(e.to_string()))?;
    let key_pem = fs_err::read_to_string(&key_path).map_err(|e| fail(e.to_string()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("{e:?}")))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| fail(format!("{e:?}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| fail(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections have finished their TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener`, handshaking each connection in its own task.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(READY_BACKLOG);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, ready_tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
