//! Errors whose one-line Display is fit for a task's TASK_FAILED message.

/// What went wrong with an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image name does not follow Docker's reference rules.
    #[error("invalid image reference '{input}': {reason}")]
    InvalidReference {
        /// What was given.
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Pulling or pushing `image` failed for `reason`.
    #[error("Failed to {op} image '{image}': {reason}")]
    Image {
        /// `pull` or `push`.
        op: &'static str,
        /// The reference as given (registry/repository:tag).
        image: String,
        /// Why.
        reason: Reason,
    },
    /// The store has no image with this digest.
    #[error("image {0} is not in the image store")]
    UnknownImage(String),
    /// The input of a push (an OCI layout or `docker save` archive) is unusable.
    #[error("cannot push from '{path}': {reason}")]
    BadSource {
        /// The file or directory given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store's own files.
    #[error("image store: {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a pull or push failed.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// The registry has no such manifest (repository or tag).
    #[error("manifest unknown (404)")]
    ManifestUnknown,
    /// No connection to the registry.
    #[error("registry {registry} is unreachable: {cause}")]
    Unreachable {
        /// host[:port]
        registry: String,
        /// e.g. `connection refused`.
        cause: String,
    },
    /// A downloaded blob or manifest hashes to something else than its digest.
    #[error("blob {0} does not match its digest")]
    DigestMismatch(String),
    /// The registry refused the credentials (or wants some).
    #[error("unauthorized ({0}): check the registry credentials")]
    Unauthorized(u16),
    /// Any other refusal by the registry.
    #[error("registry answered {status} for {what}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Which request.
        what: String,
        /// The registry's error text, shortened.
        message: String,
    },
    /// A manifest or config the puller cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// A layer could not be extracted.
    #[error("layer {digest} cannot be extracted: {cause}")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// Why.
        cause: String,
    },
    /// A transfer broke off, or a local file failed.
    #[error("{0}")]
    Transfer(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The reason of a pull or push failure, if this is one.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Error::Image { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The innermost cause of a reqwest error as words: "connection refused" rather than the
/// chain of wrappers around it.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if let Some(io) = cur.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
            std::io::ErrorKind::TimedOut => return "timed out".into(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
            _ => {}
        }
    }
    cur.to_string()
}
