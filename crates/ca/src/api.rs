//! cfssl's wire format: request bodies, the response envelope, and errors as cfssl's
//! `HandleError` writes them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One name entry of a certificate request (cfssl's `csr.Name`).
#[derive(Debug, Default, Deserialize)]
pub struct Name {
    /// Country.
    #[serde(rename = "C")]
    pub c: Option<String>,
    /// State or province.
    #[serde(rename = "ST")]
    pub st: Option<String>,
    /// Locality.
    #[serde(rename = "L")]
    pub l: Option<String>,
    /// Organization.
    #[serde(rename = "O")]
    pub o: Option<String>,
    /// Organizational unit.
    #[serde(rename = "OU")]
    pub ou: Option<String>,
    /// Subject serial number.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
}

/// The key to generate (cfssl's `BasicKeyRequest`).
#[derive(Debug, Default, Deserialize)]
pub struct KeyRequest {
    /// `ecdsa` (default) or `rsa`.
    pub algo: Option<String>,
    /// Curve size or modulus bits (default 256).
    pub size: Option<u32>,
}

/// A certificate request (cfssl's `csr.CertificateRequest`): `newkey`'s body and
/// `newcert`'s `request`.
#[derive(Debug, Default, Deserialize)]
pub struct CertificateRequest {
    /// Common name.
    #[serde(rename = "CN", alias = "cn")]
    pub cn: Option<String>,
    /// Subject names.
    pub names: Option<Vec<Name>>,
    /// SANs: IP addresses, email addresses or DNS names.
    pub hosts: Option<Vec<String>>,
    /// The key to generate.
    pub key: Option<KeyRequest>,
    /// Subject serial number.
    #[serde(rename = "serialnumber")]
    pub serial_number: Option<String>,
    /// A CA section, which cfssl allows only in `initca`.
    pub ca: Option<serde_json::Value>,
}

/// `newcert`'s body.
#[derive(Debug, Default, Deserialize)]
pub struct NewCertRequest {
    /// The certificate request.
    pub request: Option<CertificateRequest>,
    /// Signing profile (only the default exists).
    pub profile: Option<String>,
    /// Signer label.
    pub label: Option<String>,
    /// Whether to bundle the certificate (no bundler here).
    #[serde(default)]
    pub bundle: bool,
}

/// A `sign` request's subject override (cfssl's `signer.Subject`).
#[derive(Debug, Default, Deserialize)]
pub struct Subject {
    /// Common name.
    #[serde(rename = "CN", alias = "cn")]
    pub cn: Option<String>,
    /// Subject names.
    pub names: Option<Vec<Name>>,
    /// Subject serial number.
    #[serde(rename = "SerialNumber")]
    pub serial_number: Option<String>,
}

/// `sign`'s body.
#[derive(Debug, Default, Deserialize)]
pub struct SignRequest {
    /// The PEM CSR.
    pub certificate_request: Option<String>,
    /// SANs replacing the CSR's.
    pub hosts: Option<Vec<String>>,
    /// Comma-separated SANs; wins over `hosts` when not empty.
    pub hostname: Option<String>,
    /// Subject fields replacing the CSR's.
    pub subject: Option<Subject>,
    /// Signing profile (only the default exists).
    pub profile: Option<String>,
    /// Signer label.
    pub label: Option<String>,
    /// A serial the client asks for; the default profile draws its own, as cfssl's does.
    pub serial: Option<serde_json::Value>,
    /// Whether to bundle the certificate (no bundler here).
    #[serde(default)]
    pub bundle: bool,
}

/// `info`'s body.
#[derive(Debug, Default, Deserialize)]
pub struct InfoRequest {
    /// Signer label.
    pub label: Option<String>,
    /// Signing profile; unknown or empty means the default, as cfssl's local signer does.
    pub profile: Option<String>,
}

/// A code and text in `errors` or `messages`.
#[derive(Debug, Serialize)]
pub struct Message {
    /// cfssl's code.
    pub code: u32,
    /// The text.
    pub message: String,
}

/// cfssl's envelope. Fields in cfssl's order.
#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    result: T,
    errors: Vec<Message>,
    messages: Vec<Message>,
}

/// A success: `result` with `messages` (warnings), as JSON with Go's trailing newline.
pub fn success<T: Serialize>(result: T, messages: Vec<Message>) -> Response {
    let envelope = Envelope {
        success: true,
        result,
        errors: Vec::new(),
        messages,
    };
    match serde_json::to_string(&envelope) {
        Ok(mut body) => {
            body.push('\n');
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
        Err(e) => Failure::internal(e.to_string()).into_response(),
    }
}

/// A refusal as cfssl answers it: the HTTP status and the code in `errors`.
#[derive(Debug)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// cfssl's code: the status for HTTP errors, 4–5 digits for cfssl errors, 0 otherwise.
    pub code: u32,
    /// The text.
    pub message: String,
}

// === impl Failure ===

impl Failure {
    /// A cfssl `HTTPError` 400 (bad JSON, missing parameters).
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: message.into(),
        }
    }

    /// A cfssl error: HTTP 400 with cfssl's numeric code.
    pub fn cfssl(code: u32, message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// Any other error: HTTP 500, code 0.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 0,
            message: message.into(),
        }
    }

    /// A body larger than the service reads.
    pub fn too_large(limit: usize) -> Failure {
        Failure {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: 413,
            message: format!("request body larger than {limit} bytes"),
        }
    }

    /// A method other than POST.
    pub fn method(method: &axum::http::Method) -> Failure {
        Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: 405,
            message: format!("Method is not allowed:\"{method}\""),
        }
    }
}

impl IntoResponse for Failure {
    /// cfssl sends errors through Go's `http.Error`: text/plain, nosniff, a trailing newline.
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "CA request failed");
        } else {
            tracing::debug!(code = self.code, message = %self.message, "CA request refused");
        }
        let envelope = Envelope {
            success: false,
            result: (),
            errors: vec![Message {
                code: self.code,
                message: self.message,
            }],
            messages: Vec::new(),
        };
        let mut body = serde_json::to_string(&envelope).unwrap_or_default();
        body.push('\n');
        (
            self.status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            body,
        )
            .into_response()
    }
}
