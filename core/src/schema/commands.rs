//! The body schemas of one handler's commands, compiled when it loads.

use std::collections::HashMap;

use super::{Schema, SchemaError, Violations};
use crate::envelope::Envelope;
use crate::error::ErrorBody;
use crate::host_info::CommandInfo;

/// Why a manifest's body schemas cannot be compiled: names the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body schema of {routing_key:?} cannot be checked by the host, {error}")]
pub struct BodySchemaError {
    /// The command whose schema failed.
    pub routing_key: String,
    /// What is wrong with it.
    pub error: SchemaError,
}

/// The compiled schemas of one handler's commands, by routing key.
#[derive(Debug, Clone, Default)]
pub struct BodySchemas(HashMap<String, Schema>);

impl BodySchemas {
    /// Compiles every declared `body_schema`; the first that cannot be
    /// compiled fails the whole manifest.
    pub fn compile(commands: &[CommandInfo]) -> Result<Self, BodySchemaError> {
        let mut schemas = HashMap::new();
        for c in commands {
            if let Some(schema) = &c.body_schema {
                let compiled = Schema::compile(schema).map_err(|error| BodySchemaError {
                    routing_key: c.routing_key.clone(),
                    error,
                })?;
                schemas.insert(c.routing_key.clone(), compiled);
            }
        }
        Ok(BodySchemas(schemas))
    }

    /// The schema of the command `routing_key`, if it declares one.
    pub fn get(&self, routing_key: &str) -> Option<&Schema> {
        self.0.get(routing_key)
    }

    /// Checks `cmd`'s body against its command's schema (a command without
    /// one always passes); the error is the body of the `validation` error
    /// event.
    pub fn check(&self, cmd: &Envelope) -> Result<(), ErrorBody> {
        match self.get(&cmd.meta.routing_key) {
            Some(schema) => schema
                .check_json(cmd.body.get())
                .map_err(Violations::into_error_body),
            None => Ok(()),
        }
    }
}
