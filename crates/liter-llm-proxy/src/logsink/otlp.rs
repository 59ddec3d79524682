//! The `otlp` sink's body: a batch of records as an OTLP `ExportLogsServiceRequest`
//! (protobuf), sent by the webhook machinery (`webhook.rs`) with its batching, gzip and
//! retries.
//!
//! One OTLP log record per request: its time, severity `INFO` (status below 400) or
//! `ERROR`, the event name `liter_llm.request`, the body `"{method} {path} {status}"`,
//! and every field of the [`LogRecord`] as an attribute under its own name (numbers as
//! numbers; the prompt and the answer, for a sink with `content = true`, as JSON text).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{
    LogRecord as OtlpRecord, ResourceLogs, ScopeLogs, SeverityNumber,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::LogRecord;

/// The records as one export request for the resource named `service`.
pub(super) fn encode(batch: &[Arc<LogRecord>], service: &str) -> Option<Vec<u8>> {
    let records = batch
        .iter()
        .map(|r| record(r))
        .collect::<Option<Vec<_>>>()?;
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", service.to_owned())],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "liter-llm".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Some(request.encode_to_vec())
}

fn text(key: &str, value: String) -> KeyValue {
    attribute(key.to_owned(), Any::StringValue(value))
}

fn attribute(key: String, value: Any) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn record(r: &LogRecord) -> Option<OtlpRecord> {
    let nanos = r.unix_ms.saturating_mul(1_000_000);
    let (severity, severity_text) = if r.success() {
        (SeverityNumber::Info, "INFO")
    } else {
        (SeverityNumber::Error, "ERROR")
    };
    let serde_json::Value::Object(fields) = serde_json::to_value(r).ok()? else {
        return None;
    };
    let attributes = fields
        .into_iter()
        .filter_map(|(key, v)| {
            let value = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::Bool(b) => Any::BoolValue(b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Any::IntValue(i),
                    None => Any::DoubleValue(n.as_f64()?),
                },
                serde_json::Value::String(s) => Any::StringValue(s),
                other => Any::StringValue(other.to_string()),
            };
            Some(attribute(key, value))
        })
        .collect();
    Some(OtlpRecord {
        time_unix_nano: nanos,
        observed_time_unix_nano: nanos,
        severity_number: severity as i32,
        severity_text: severity_text.into(),
        body: Some(AnyValue {
            value: Some(Any::StringValue(format!(
                "{} {} {}",
                r.method, r.path, r.status
            ))),
        }),
        attributes,
        event_name: "liter_llm.request".into(),
        ..Default::default()
    })
}
