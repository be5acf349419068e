//! What a client may send: the rules every command from outside passes,
//! written once for the HTTP API (`api.rs`) and the WebSocket (`ws.rs`).
//!
//! - its routing key is not of a domain the host keeps for itself
//!   (`names::RESERVED_DOMAINS`), nor a command a manifest marks internal;
//! - the caller's token allows it (`auth::Scopes`);
//! - and, for an envelope a client wrote itself (WebSocket): it is a
//!   command; its session and reply channel are the connection's own (or
//!   absent); it names no user (the gateway sets `meta.user_id` from the
//!   token, never from the client); its message id does not start with a
//!   prefix the host derives its own ids with (`timer-`, `rx-`, `rc-`), so
//!   it can never pass for a timer's or collide with a host's record.

use parallel_you_core::envelope::{Envelope, Kind};
use parallel_you_core::names::{
    check_client_message_id, domain_of, session_channel, RESERVED_DOMAINS,
};

use crate::auth::Caller;
use crate::rejection::ApiError;
use crate::Gateway;

fn forbidden(message: String) -> ApiError {
    ApiError::Forbidden {
        message,
        missing_scope: None,
    }
}

/// Whether `caller` may send the command `routing_key` at all.
pub(crate) fn admit(gw: &Gateway, caller: &Caller, routing_key: &str) -> Result<(), ApiError> {
    let domain = domain_of(routing_key);
    if RESERVED_DOMAINS.contains(&domain) {
        return Err(forbidden(format!(
            "the domain {domain:?} is the host's own: clients cannot send its commands"
        )));
    }
    if gw.catalog.is_internal(routing_key) {
        return Err(forbidden(format!(
            "{routing_key:?} is internal: only its handler's timers send it"
        )));
    }
    caller.may_send(routing_key)
}

/// Why a client's envelope was refused: the error event's code and message.
pub(crate) enum Refused {
    /// Not a well-formed command of this connection.
    Invalid(String),
    /// Well-formed, but not the caller's to send.
    Forbidden(String),
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Forbidden { .. } => Refused::Forbidden(err.to_string()),
            other => Refused::Invalid(other.to_string()),
        }
    }
}

/// The command a client's envelope `cmd` on `session`'s connection
/// becomes: the same, in the connection's session, sent by the caller.
pub(crate) fn client_envelope(
    gw: &Gateway,
    caller: &Caller,
    session: &str,
    mut cmd: Envelope,
) -> Result<Envelope, Refused> {
    let m = &cmd.meta;
    if m.kind != Kind::Command {
        return Err(Refused::Invalid("only commands can be sent".to_owned()));
    }
    if m.session_id.as_deref().is_some_and(|s| s != session) {
        return Err(Refused::Invalid(format!(
            "meta.session_id must be this socket's session {session:?}"
        )));
    }
    let own = session_channel(session);
    if m.reply_channel.as_deref().is_some_and(|r| r != own) {
        return Err(Refused::Invalid(format!(
            "meta.reply_channel must be this socket's {own:?} (or left out)"
        )));
    }
    if m.user_id.is_some() {
        return Err(Refused::Invalid(
            "meta.user_id is set by the gateway from the token; leave it out".to_owned(),
        ));
    }
    check_client_message_id(&m.message_id).map_err(|e| Refused::Invalid(e.0))?;
    admit(gw, caller, &m.routing_key)?;
    cmd.meta.set_session(session);
    cmd.meta.user_id = caller.subject.clone();
    Ok(cmd)
}
