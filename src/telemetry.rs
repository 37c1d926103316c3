//! Logging setup. Logs are readable text by default and JSON on request.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_sessions=warn,tower_sessions_core=warn";

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
/// Colours only on a terminal: a file or a log collector gets plain text.
pub fn init<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests, demo) keeps the first subscriber.
    let _ = result;
}

/// Installs the global subscriber for a long-running server and returns the
/// guard that flushes it; keep the guard until the process exits.
///
/// Lines are formatted where they happen, then written to stderr by one
/// background thread through a 64 KiB buffer that is flushed whenever the
/// queue runs empty. A busy replica so makes one `write` per batch of lines
/// instead of one per line, and a quiet one still writes each line at once.
/// Nothing is dropped: when the queue is full, logging waits for the writer.
pub fn init_server(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ld-eaas-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    init(format, writer);
    guard
}
