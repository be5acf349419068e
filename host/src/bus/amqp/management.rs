//! The client of the broker's management HTTP API, which reads the command
//! bindings back.

use std::time::Duration;

use lapin::uri::AMQPUri;

use parallel_you_core::bus::{Binding, BusError};

use super::topology::{command_of, COMMANDS_EXCHANGE};

/// The broker's management HTTP API.
pub(super) struct Management {
    client: reqwest::Client,
    base: String,
    vhost: String,
    user: String,
    password: String,
}

impl Management {
    pub(super) fn new(uri: &AMQPUri, url: Option<&str>) -> Result<Self, BusError> {
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}:15672", uri.authority.host),
        };
        if !base.starts_with("http://") {
            return Err(BusError::Invalid(format!(
                "management URL {base:?}: only http:// is supported"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| BusError::Invalid(format!("HTTP client: {err}")))?;
        Ok(Management {
            client,
            base,
            vhost: uri.vhost.clone(),
            user: uri.authority.userinfo.username.clone(),
            password: uri.authority.userinfo.password.clone(),
        })
    }

    /// The command bindings: `parallel_you.commands` → a domain queue,
    /// with what their arguments declare. A key bound twice (two versions
    /// mid-upgrade) is one entry: internal if either says so, else the one
    /// that declares something.
    pub(super) async fn bindings(&self) -> Result<Vec<Binding>, BusError> {
        let rows = self.source_bindings(COMMANDS_EXCHANGE).await?;
        let prefix = format!("{COMMANDS_EXCHANGE}.");
        let mut bindings: Vec<Binding> = rows
            .into_iter()
            .filter_map(|r| {
                let domain = r.destination.strip_prefix(&prefix)?.to_owned();
                Some(Binding {
                    info: command_of(&r.routing_key, &r.arguments),
                    routing_key: r.routing_key,
                    domain,
                })
            })
            .collect();
        let rank = |b: &Binding| match &b.info {
            Some(i) if i.internal => 0,
            Some(_) => 1,
            None => 2,
        };
        bindings.sort_by(|a, b| {
            (&a.routing_key, &a.domain, rank(a)).cmp(&(&b.routing_key, &b.domain, rank(b)))
        });
        bindings.dedup_by(|later, first| {
            later.routing_key == first.routing_key && later.domain == first.domain
        });
        Ok(bindings)
    }

    /// The bindings from `exchange` to queues.
    pub(super) async fn source_bindings(
        &self,
        exchange: &str,
    ) -> Result<Vec<BindingRow>, BusError> {
        #[derive(serde::Deserialize)]
        struct Row {
            source: String,
            destination: String,
            destination_type: String,
            routing_key: String,
            #[serde(default)]
            arguments: serde_json::Map<String, serde_json::Value>,
        }
        let url = format!(
            "{}/api/exchanges/{}/{exchange}/bindings/source",
            self.base,
            percent_encode(&self.vhost)
        );
        let fail = |err: String| {
            BusError::Unavailable(format!(
                "cannot read the bindings from the RabbitMQ management API at {}: {err} \
                 (is the rabbitmq_management plugin on? set --management-url)",
                self.base
            ))
        };
        let response = self
            .client
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|err| fail(err.to_string()))?;
        // A 404 (no such exchange) also fails: this bus declares the
        // exchange on connecting, so its absence means a broker still
        // recovering its definitions, not an empty API.
        let response = response
            .error_for_status()
            .map_err(|err| fail(err.to_string()))?;
        let rows: Vec<Row> = response.json().await.map_err(|err| fail(err.to_string()))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.source == exchange && r.destination_type == "queue")
            .map(|r| BindingRow {
                destination: r.destination,
                routing_key: r.routing_key,
                arguments: r.arguments,
            })
            .collect())
    }
}

/// One binding from an exchange to a queue, as the management API lists it.
pub(super) struct BindingRow {
    /// The queue.
    pub(super) destination: String,
    /// The binding key.
    pub(super) routing_key: String,
    /// The binding's arguments.
    pub(super) arguments: serde_json::Map<String, serde_json::Value>,
}

/// Percent-encodes a vhost for a URL path (`/` → `%2F`).
pub(super) fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts_are_encoded_for_the_management_api() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("prod"), "prod");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn management_defaults_to_the_broker_host() {
        let uri: AMQPUri = "amqp://u:p@10.0.0.7:5672/%2f".parse().unwrap();
        let m = Management::new(&uri, None).unwrap();
        assert_eq!(m.base, "http://10.0.0.7:15672");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("u", "p"));
        assert!(Management::new(&uri, Some("https://x")).is_err());
    }
}
