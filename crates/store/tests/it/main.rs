//! Integration tests of dcos-store: the backend-independent suite (`suite`), run against each
//! backend, and what only the embedded backend promises (`embedded`: reopen, kill -9).

mod embedded;
mod suite;
