//! Logging for the example binaries: `tracing` to stderr, filtered by
//! `RUST_LOG`.

/// Log to stderr at `RUST_LOG`'s filter, or `default` (`"info"`, `"warn"`)
/// when it is unset or unparsable; colours only on a terminal.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
