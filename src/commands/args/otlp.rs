//! Where traces are exported, if anywhere.

/// Where the process exports its traces (OpenTelemetry OTLP over
/// HTTP/protobuf); without it no exporter runs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct OtlpArgs {
    /// Export traces to this OTLP/HTTP collector (plain http), e.g.
    /// `http://127.0.0.1:4318` (spans are POSTed to `<it>/v1/traces`, as
    /// OpenTelemetry's own variable means; a URL already ending in
    /// `/v1/traces` is used as it is). Batching follows the `OTEL_BSP_*`
    /// variables.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
}

impl OtlpArgs {
    /// The URL spans are POSTed to, if exporting; an error for one that
    /// is not an `http://` URL.
    pub(crate) fn traces_url(&self) -> anyhow::Result<Option<String>> {
        let Some(base) = self.otlp_endpoint.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if base.is_empty() {
            return Ok(None);
        }
        let parsed: reqwest::Url = base
            .parse()
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint {base:?} is not a URL: {e}"))?;
        // The exporter's client is built without TLS: a collector beside
        // the process (an OpenTelemetry Collector's `otlphttp` receiver)
        // forwards to remote backends.
        if parsed.scheme() != "http" {
            anyhow::bail!(
                "--otlp-endpoint {base:?} must be an http:// URL (OTLP over HTTP, without TLS: run a collector beside pyou for a remote backend)"
            );
        }
        Ok(Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::OtlpArgs;

    fn url(endpoint: Option<&str>) -> Option<String> {
        OtlpArgs {
            otlp_endpoint: endpoint.map(str::to_owned),
        }
        .traces_url()
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_endpoint_is_a_base_url() {
        assert_eq!(url(None), None);
        assert_eq!(url(Some("")), None);
        let traces = Some("http://127.0.0.1:4318/v1/traces".to_owned());
        assert_eq!(url(Some("http://127.0.0.1:4318")), traces);
        assert_eq!(url(Some("http://127.0.0.1:4318/")), traces);
        assert_eq!(url(Some("http://127.0.0.1:4318/v1/traces")), traces);
        for bad in ["127.0.0.1:4318", "grpc://x:4317", "https://x", "not a url"] {
            let args = OtlpArgs {
                otlp_endpoint: Some(bad.to_owned()),
            };
            assert!(args.traces_url().is_err(), "{bad}");
        }
    }
}
