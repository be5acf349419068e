//! Exporting traces: an OpenTelemetry tracer provider whose batches go to
//! an OTLP/HTTP collector (protobuf), and the `tracing` layer that feeds
//! it. Built only with `--otlp-endpoint`; shut down (flushed) on exit.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::EnvFilter;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a collector's answer read (only its status matters).
const MAX_ANSWER: usize = 64 * 1024;
/// What becomes a span or span event: the host's, the gateway's and
/// core's spans, and every line a guest logs.
const EXPORTED: &str =
    "parallel_you_core=info,parallel_you_host=info,parallel_you_gateway=info,handler=trace";

/// A running exporter.
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// A provider exporting to `url` (the full `/v1/traces` URL) as
    /// `service`; its HTTP requests run on `runtime`.
    pub(crate) fn start(
        url: &str,
        service: &'static str,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make the OTLP exporter's HTTP client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(Client { http, runtime })
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make the OTLP exporter for {url}: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        // The batch processor runs on a thread of its own; its schedule
        // follows `OTEL_BSP_SCHEDULE_DELAY` and the other `OTEL_BSP_*`.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Exporter { provider })
    }

    /// The layer that turns spans and events into exported spans.
    pub(crate) fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("pyou"))
            .with_filter(EnvFilter::new(EXPORTED))
    }

    /// Exports what is still batched, then stops. Call it outside the
    /// async runtime, while the runtime still runs (the requests use it).
    pub(crate) fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("warning: exporting the last traces: {err}");
        }
    }
}

/// The exporter's HTTP client: reqwest on the process's runtime, so no
/// second HTTP stack (or runtime) is built for it. The batch thread
/// awaits the spawned request.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut answer = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let mut read = Vec::new();
            while let Some(chunk) = answer.chunk().await? {
                let room = MAX_ANSWER.saturating_sub(read.len());
                read.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok::<_, HttpError>(Response::builder().status(status).body(Bytes::from(read))?)
        });
        sent.await?
    }
}
