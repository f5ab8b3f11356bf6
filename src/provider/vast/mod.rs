//! Vast.ai (issue 29), being built: what the tool sends to Vast's REST API (`requests`:
//! an offer search, an instance from an offer, exactly per `reference/vast-ai.md` and the
//! document), what it reads of the answers (`answers`, tolerantly), and the client that
//! keeps Vast's per-endpoint rate limits (`api`). Not yet a provider:
//! the provision flow, the watchdog, `pods list` and the experiment's `provider: vast` come
//! with its stateful fake and contract test, so that no part of it runs untested against money.

pub mod answers;
pub mod api;
pub mod requests;
