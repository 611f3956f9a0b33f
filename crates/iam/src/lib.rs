//! The DC/OS Identity and Access Manager (`dcos-bouncer.service`, masters, `127.0.0.1:8101`):
//! who may use the cluster. Accounts (people with Argon2id password hashes, service accounts
//! with RSA public keys, people another OpenID Connect provider vouches for), groups, ACLs of
//! actions on DC/OS resource ids, logins that issue RS256 tokens, and the policy query Admin
//! Router asks on every protected request.
//!
//! The state and the token signing key are in the cluster's store ([`persist`]), so every
//! master answers alike and a token outlives a failover. The signing key is sealed there
//! with a key derived from the cluster CA's private key, which only masters hold.
//!
//! [`api`] is what Admin Router and the CLI share with it; [`model`] the state and its rules;
//! [`http`] the routes; [`keys`], [`password`], [`throttle`] and [`oidc`] the credentials;
//! [`client`] what other components use of it.

#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod http;
pub mod keys;
pub mod model;
pub mod oidc;
pub mod password;
pub mod persist;
pub mod throttle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use persist::Bootstrap;

/// The IAM's port in the contract.
pub const PORT: u16 = 8101;

/// Limits of the API: Admin Router's policy queries and logins, small bodies.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api().connections(512).body(64 * 1024);
/// Password hashes computed at once (each takes Argon2's memory for a moment).
const HASHING_AT_ONCE: usize = 2;
/// Password logins waiting at once (slowed down or for a hash); more get 429. Well under
/// [`LIMITS`]' connections, which Admin Router's policy queries need too.
const LOGINS_WAITING: usize = 64;

/// How the IAM runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it listens (`127.0.0.1:8101`).
    pub listen: SocketAddr,
    /// The cluster's store.
    pub store: dcos_store::Location,
    /// The account to create when the cluster has no IAM state yet.
    pub bootstrap: Option<Bootstrap>,
    /// The file whose bytes seal the signing key in the store: the cluster CA's private
    /// key, which every master has and nothing else does.
    pub seal_secret: PathBuf,
    /// Whether management calls need a token (every security mode but `disabled`).
    pub require_token: bool,
    /// Trusted OpenID Connect providers.
    pub oidc: Vec<oidc::ProviderConfig>,
}

/// Why the IAM cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address cannot be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store, the sealing secret or a provider cannot be used.
    #[error("{0}")]
    Setup(String),
}

/// The running IAM, shared by its handlers.
pub struct Iam {
    persist: persist::Persist,
    key: keys::SigningKey,
    throttle: throttle::Throttle,
    hashing: tokio::sync::Semaphore,
    logins: tokio::sync::Semaphore,
    require_token: bool,
    oidc: Vec<oidc::Provider>,
}

impl Iam {
    /// Opens the state (creating it, with the bootstrap account, on a new cluster) and the
    /// signing key.
    pub async fn open(config: &Config) -> Result<Iam, Error> {
        let setup = |what: &str, e: &dyn std::fmt::Display| Error::Setup(format!("{what}: {e}"));
        let secret =
            fs_err::read(&config.seal_secret).map_err(|e| setup("the sealing secret", &e))?;
        let store = config
            .store
            .open()
            .await
            .map_err(|e| setup("the IAM's store", &e))?;
        let persist = persist::Persist::open(store, config.bootstrap.clone(), &secret)
            .await
            .map_err(|e| setup("the IAM's state", &e))?;
        let key = persist
            .signing_key(&secret)
            .await
            .map_err(|e| setup("the signing key", &e))?;
        let oidc = config
            .oidc
            .iter()
            .cloned()
            .map(oidc::Provider::new)
            .collect::<Result<_, _>>()
            .map_err(|e| setup("an OpenID Connect provider", &e))?;
        Ok(Iam {
            persist,
            key,
            throttle: throttle::Throttle::default(),
            hashing: tokio::sync::Semaphore::new(HASHING_AT_ONCE),
            logins: tokio::sync::Semaphore::new(LOGINS_WAITING),
            require_token: config.require_token,
            oidc,
        })
    }

    /// Keeps the state fresh and the providers' keys current until `shutdown`.
    pub async fn maintain(&self, shutdown: CancellationToken) {
        let providers = async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            loop {
                for p in &self.oidc {
                    p.refresh(&client).await;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(oidc::REFRESH) => {}
                }
            }
        };
        tokio::join!(self.persist.follow(shutdown.clone()), providers);
    }
}

/// Binds, opens the IAM and serves until `shutdown`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let iam = Arc::new(Iam::open(&config).await?);
    tracing::info!(addr = %config.listen, "serving the IAM");
    let app = http::router(iam.clone());
    tokio::join!(
        dcos_serve::serve(listener, app, LIMITS, shutdown.clone()),
        iam.maintain(shutdown),
    );
    Ok(())
}
