//! Strict security at the master: a framework's or an agent's SUBSCRIBE carries a token
//! of the IAM ([`dcos_iam::client::Verifier`]), and its account may `create` on the
//! resources the registration needs. Without a valid token: 401 (`WWW-Authenticate:
//! Bearer realm=...`, as Mesos answers); without the permission: 403.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::text;

/// The account of a SUBSCRIBE that may `create` on every one of `rids`, or the answer that
/// refuses it. `realm` names the API in the 401.
pub(super) async fn caller(
    verifier: &dcos_iam::client::Verifier,
    headers: &HeaderMap,
    realm: &str,
    rids: &[String],
) -> Result<String, Response> {
    let unavailable = || text(StatusCode::SERVICE_UNAVAILABLE, "the IAM cannot be reached");
    let caller = match verifier.caller(headers).await {
        Ok(c) => c,
        Err(dcos_iam::client::Unverified::Unavailable) => return Err(unavailable()),
        Err(why) => {
            tracing::info!(?why, realm, "subscription refused: no valid token");
            let challenge = format!("Bearer realm=\"{realm}\"");
            return Err((
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, challenge)],
                "",
            )
                .into_response());
        }
    };
    for rid in rids {
        let allowed = verifier
            .allowed(&caller.uid, rid, dcos_iam::api::Action::Create)
            .await
            .map_err(|_| unavailable())?;
        if !allowed {
            tracing::info!(uid = %caller.uid, %rid, "subscription refused: not allowed");
            return Err(text(
                StatusCode::FORBIDDEN,
                format!("Not authorized: `create` on `{rid}` is needed"),
            ));
        }
    }
    Ok(caller.uid)
}
