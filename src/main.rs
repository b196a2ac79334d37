//! The `traceledger` command: parse, then call the library (see `cli/`).

mod cli;

/// mimalloc instead of the system allocator: serving a request allocates and frees many small
/// objects across threads, and glibc's malloc was a quarter of the API's CPU in a profile of
/// single-event ingest (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
