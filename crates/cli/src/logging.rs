//! Logs to standard error. In text form every control, format and bidirectional character a
//! message or field carries (a username with a line break, an ANSI escape, a right-to-left
//! override) is written escaped, so no input can forge a log line or drive a terminal; JSON
//! logs escape them by being JSON.

use std::io::{self, Write};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Initialise logging to stderr (`RUST_LOG` sets the filter) and, with `traces`, the export of
/// the hub's spans, whatever the log filter. A log line written inside a gRPC call names the
/// call's `trace_id` (a field of the call's span, shown in text and in JSON).
pub fn init(
    format: LogFormat,
    default_filter: &str,
    traces: Option<&timpora_telemetry::traces::Exporter>,
) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let otel = traces.map(|t| t.layer());
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| Escaping(io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(io::stderr)
            .boxed(),
    };
    // A second initialisation (a test calling `run` twice) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(logs.with_filter(filter))
        .try_init();
}

/// Whether `c` must not reach a text log line as it is.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// `line` with its final line break kept and every other hidden character escaped.
pub fn escape(line: &str) -> String {
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let mut out = String::with_capacity(line.len() + 8);
    for c in body.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(end);
    out
}

/// Writes each formatted event (one `write` per event) escaped.
struct Escaping<W>(W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write_all(escape(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_hidden_survives_but_the_final_line_break() {
        let forged =
            "login failed user=evil\n2026-01-01 INFO fake line\u{1b}[2J\u{202E}\u{200B}\r\n";
        let out = escape(forged);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(out.ends_with('\n'));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202E}') && !out.contains('\u{200B}'));
        assert!(
            out.contains("\\n2026-01-01 INFO fake line\\u{1b}[2J"),
            "{out}"
        );
        assert_eq!(
            escape("plain text, Sulawesi Tenggara"),
            "plain text, Sulawesi Tenggara"
        );
    }
}
