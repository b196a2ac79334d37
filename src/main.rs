//! The `traceledger` command: parse, then call the library (see `cli/`).

mod cli;

/// mimalloc instead of the system allocator: serving a request allocates and frees many small
/// objects across threads, which costs glibc's malloc about a quarter of the API's CPU in
/// single-event ingest (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main().await
}
