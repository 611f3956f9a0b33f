//! Integration tests of dcos-store: the backend-independent suite (`suite`), run against each
//! backend, and what each backend promises beyond it (`embedded`: reopen, kill -9 of the
//! writer; `zookeeper`: kill -9 of the server).

mod embedded;
mod suite;
mod zookeeper;
