//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the same
//! command list as `GET /api`.

use serde_json::{json, Map, Value};

use crate::catalog::CommandEntry;
use crate::query::QueryEntry;

/// The OpenAPI 3.1 document describing `commands` and `queries`.
pub fn document(commands: &[CommandEntry], queries: &[QueryEntry]) -> Value {
    let mut paths = Map::new();
    crate::query::openapi_paths(queries, &mut paths);
    for c in commands {
        // OpenAPI 3.1 uses JSON Schema 2020-12, so a handler's schema can be
        // used as it is.
        let schema = c.body_schema.clone().unwrap_or_else(|| json!({}));
        let summary = c
            .summary
            .clone()
            .unwrap_or_else(|| format!("Send the command {}", c.routing_key));
        paths.insert(
            c.path.clone(),
            json!({
                "post": {
                    "operationId": c.routing_key,
                    "summary": summary,
                    "tags": [c.routing_key.split('.').next().unwrap_or_default()],
                    "parameters": [
                        {"$ref": "#/components/parameters/SessionHeader"},
                        {"$ref": "#/components/parameters/SessionQuery"},
                        {"$ref": "#/components/parameters/Wait"}
                    ],
                    "requestBody": {
                        "required": false,
                        "content": {"application/json": {"schema": schema}}
                    },
                    "responses": {
                        "202": {"description": "Accepted: the command is on the bus", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                        "200": {"description": "With ?wait=: the events the command caused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answered"}}}},
                        "400": {"$ref": "#/components/responses/Error"},
                        "404": {"$ref": "#/components/responses/Error"},
                        "413": {"$ref": "#/components/responses/Error"},
                        "503": {"$ref": "#/components/responses/Error"},
                        "504": {"$ref": "#/components/responses/Error"}
                    }
                }
            }),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Parallel You",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Commands discovered from the bus bindings. Each answers 202 with the correlation id that the events it causes carry as causation_id; they arrive on GET /ws?session=<id>."
        },
        "paths": paths,
        "components": {
            "parameters": {
                "SessionHeader": {"name": "X-Session-Id", "in": "header", "required": false, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}},
                "SessionQuery": {"name": "session", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}},
                "Wait": {"name": "wait", "in": "query", "required": false, "description": "Wait up to this many milliseconds for the command's events", "schema": {"type": "integer", "minimum": 0}}
            },
            "schemas": {
                "Accepted": {"type": "object", "required": ["correlation_id", "message_id"], "properties": {"correlation_id": {"type": "string"}, "message_id": {"type": "string"}}},
                "Answered": {"type": "object", "required": ["correlation_id", "message_id", "events"], "properties": {"correlation_id": {"type": "string"}, "message_id": {"type": "string"}, "events": {"type": "array", "items": {"$ref": "#/components/schemas/Envelope"}}}},
                "Envelope": {"type": "object", "required": ["meta", "body"], "properties": {"meta": {"type": "object"}, "body": {}}},
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
            },
            "responses": {
                "Error": {"description": "Refused; the body says why and what to do", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        }
    })
}
