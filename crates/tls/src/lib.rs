//! TLS for every component that serves it (Admin Router on 443 and 61002, Marathon on 8443).
//!
//! `dcos cluster up` makes a cluster CA ([`create_ca`]): `ca.crt` for clients to trust and
//! `ca.key`, in a directory every node's config names. A component asks [`acceptor`] for its
//! node certificate: issued once by the CA for the node's IPs and names, kept in the
//! component's work dir and reused across restarts. Without a CA (a node installed alone)
//! the certificate is self-signed.
//!
//! [`TlsListener`] runs each handshake off the accept loop, with a deadline, so a slow or
//! silent client never holds up the others.

#![warn(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to pick them up.
const READY_BACKLOG: usize = 128;
/// The CA certificate's file name in the CA dir.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CA_NAME: &str = "ca.name";

/// A certificate or key that could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate in {dir}: {why}")]
pub struct Error {
    dir: String,
    why: String,
}

fn fail(dir: &Path) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |why| Error {
        dir: dir.display().to_string(),
        why: why.to_string(),
    }
}

/// The CA's parameters: the same for the same name, so the CA can sign again from its key.
fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("dcos-rs cluster CA {name}"));
    dn.push(DnType::OrganizationName, "dcos-rs");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Makes the cluster CA in `dir` unless it exists; returns the path of its certificate.
pub fn create_ca(dir: &Path, cluster: &str) -> Result<PathBuf, Error> {
    let f = fail(dir);
    let cert_path = dir.join(CA_CERT);
    if [CA_CERT, CA_KEY, CA_NAME]
        .iter()
        .all(|f| dir.join(f).exists())
    {
        return Ok(cert_path);
    }
    fs_err::create_dir_all(dir).map_err(|e| f(&e))?;
    let key = KeyPair::generate().map_err(|e| f(&e))?;
    let cert = ca_params(cluster)
        .and_then(|p| p.self_signed(&key))
        .map_err(|e| f(&e))?;
    write_public(&dir.join(CA_NAME), cluster).map_err(|e| f(&e))?;
    write_private(&dir.join(CA_KEY), &key.serialize_pem()).map_err(|e| f(&e))?;
    write_public(&cert_path, &cert.pem()).map_err(|e| f(&e))?;
    Ok(cert_path)
}

/// The cluster CA in `ca_dir` as an issuer: its certificate rebuilt from `ca.name` and
/// `ca.key` (same subject and key, so what it signs chains to `ca.crt`) and its key.
pub fn issuer(ca_dir: &Path) -> Result<(rcgen::Certificate, KeyPair), Error> {
    let f = fail(ca_dir);
    let name = fs_err::read_to_string(ca_dir.join(CA_NAME)).map_err(|e| f(&e))?;
    // An edited file may end in a newline; the name is the cluster's.
    let name = name.trim_end_matches(['\n', '\r']).to_string();
    let ca_key = fs_err::read_to_string(ca_dir.join(CA_KEY)).map_err(|e| f(&e))?;
    let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| f(&e))?;
    let cert = ca_params(&name)
        .and_then(|p| p.self_signed(&ca_key))
        .map_err(|e| f(&e))?;
    Ok((cert, ca_key))
}

/// Key files: readable by root only, written atomically and durably (a crash never leaves a
/// half-written key, and a key is written before the certificate that names it).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    dcos_store::file::write_atomic(path, text.as_bytes(), 0o600)
}

/// Certificates and public files, written atomically and durably.
fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    dcos_store::file::write_atomic(path, text.as_bytes(), 0o644)
}

/// The acceptor for a server on a node with `ips` and `names`. Its certificate is
/// `<dir>/<stem>.crt`, made once: issued by the CA in `ca_dir` if given, else self-signed.
pub fn acceptor(
    dir: &Path,
    stem: &str,
    ips: &[IpAddr],
    names: &[&str],
    ca_dir: Option<&Path>,
) -> Result<TlsAcceptor, Error> {
    let f = fail(dir);
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    // A CA-issued certificate is issued afresh at each start, so a changed IP or a new CA
    // never leaves an old one served; a self-signed one is kept, as clients may pin it.
    if ca_dir.is_some() || !cert_path.exists() || !key_path.exists() {
        fs_err::create_dir_all(dir).map_err(|e| f(&e))?;
        let sans: Vec<String> = ips
            .iter()
            .map(ToString::to_string)
            .chain(names.iter().map(|n| n.to_string()))
            .collect();
        let mut params = CertificateParams::new(sans).map_err(|e| f(&e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            ips.first().map_or(stem.to_string(), ToString::to_string),
        );
        let key = KeyPair::generate().map_err(|e| f(&e))?;
        let cert = match ca_dir {
            Some(ca) => {
                let (issuer, ca_key) = issuer(ca)?;
                params
                    .signed_by(&key, &issuer, &ca_key)
                    .map_err(|e| f(&e))?
            }
            None => params.self_signed(&key).map_err(|e| f(&e))?,
        };
        write_private(&key_path, &key.serialize_pem()).map_err(|e| f(&e))?;
        write_public(&cert_path, &cert.pem()).map_err(|e| f(&e))?;
    }
    let cert_pem = fs_err::read_to_string(&cert_path).map_err(|e| f(&e))?;
    let key_pem = fs_err::read_to_string(&key_path).map_err(|e| f(&e))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| f(&format!("{e:?}")))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| f(&format!("{e:?}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| f(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| f(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// TLS handshakes in progress at most per listener.
const MAX_HANDSHAKES: usize = 1024;

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
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                // Ends with the listener, so a stopped server frees its port at once.
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    r = listener.accept() => r,
                };
                let (tcp, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Beyond this many handshakes at once, accepting waits (the backlog queues).
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (acceptor, ready_tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            // A server at its connection limit takes no more for a while: a
                            // finished handshake waits that long, then is closed.
                            let sent = ready_tx.send((tls, peer));
                            if tokio::time::timeout(HANDSHAKE_TIMEOUT, sent).await.is_err() {
                                tracing::debug!(%peer, "TLS connection not taken in time");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }

    /// The next connection whose handshake finished.
    pub async fn next(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.next().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
