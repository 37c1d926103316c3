//! Logging setup. Logs are readable text by default and JSON on request.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

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
/// Lines are formatted where they happen and gathered in memory; one thread
/// writes what has gathered to stderr every [`FLUSH_EVERY`], and a line that
/// brings the batch past [`BATCH_BYTES`] writes it at once. A busy replica so
/// makes a few `write` calls a second instead of one per request, and nothing
/// is dropped. What a `SIGKILL` interrupts loses at most the last
/// [`FLUSH_EVERY`] of lines; dropping the guard writes the rest.
pub fn init_server(format: LogFormat) -> LogGuard {
    let batch = Batched::default();
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let flusher = {
        let (batch, stop) = (batch.clone(), stop.clone());
        std::thread::Builder::new()
            .name("ld-eaas-log".to_owned())
            .spawn(move || {
                let (lock, wake) = &*stop;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    stopped = wake
                        .wait_timeout(stopped, FLUSH_EVERY)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    batch.flush_batch();
                }
            })
            .ok()
    };
    init(format, batch.clone());
    LogGuard {
        batch,
        stop,
        flusher,
    }
}

/// How often gathered log lines are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A batch this large is written at once, without waiting for the timer.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Log lines waiting to be written (to stderr), in order.
#[derive(Clone)]
pub struct Batched {
    lines: Arc<Mutex<Vec<u8>>>,
    /// Locked while writing, so batches leave in the order they formed.
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Default for Batched {
    fn default() -> Self {
        Self::to(Box::new(std::io::stderr()))
    }
}

impl Batched {
    /// Lines gathered for `out`.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        Self {
            lines: Arc::default(),
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Writes what has gathered.
    pub fn flush_batch(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(PoisonError::into_inner));
        if !lines.is_empty() {
            // Nowhere to report a failed write of the log itself.
            let _ = out.write_all(&lines).and_then(|()| out.flush());
        }
    }
}

impl Write for Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            lines.extend_from_slice(line);
            lines.len() >= BATCH_BYTES
        };
        if full {
            self.flush_batch();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Writes what is left of the log when dropped, and stops the writer thread.
pub struct LogGuard {
    batch: Batched,
    stop: Arc<(Mutex<bool>, Condvar)>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.batch.flush_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    #[test]
    fn lines_gather_until_flushed_and_leave_whole_and_in_order() {
        let sink = Sink::default();
        let batch = Batched::to(Box::new(sink.clone()));
        let mut writer = batch.make_writer();
        writer.write_all(b"one\n").unwrap_or_default();
        batch.make_writer().write_all(b"two\n").unwrap_or_default();
        assert_eq!(sink.text(), "", "nothing written per line");
        batch.flush_batch();
        assert_eq!(sink.text(), "one\ntwo\n");
        batch.flush_batch();
        assert_eq!(sink.text(), "one\ntwo\n", "an empty batch writes nothing");
    }

    #[test]
    fn a_full_batch_is_written_at_once() {
        let sink = Sink::default();
        let batch = Batched::to(Box::new(sink.clone()));
        let line = vec![b'x'; 1000];
        for _ in 0..(BATCH_BYTES / 1000) {
            batch.make_writer().write_all(&line).unwrap_or_default();
        }
        assert_eq!(sink.text(), "", "still below the batch size");
        batch.make_writer().write_all(&line).unwrap_or_default();
        assert_eq!(sink.text().len(), (BATCH_BYTES / 1000 + 1) * 1000);
    }
}
