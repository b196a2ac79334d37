//! The `traceledger` command: parse, then call the library (see `cli/`).

mod cli;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: serving a request allocates and frees many small
/// objects across threads, which costs glibc's malloc about a quarter of the API's CPU in
/// single-event ingest (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // While this is the only thread: the environment may be changed safely.
    let renamed = cli::adopt_renamed_env();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli::main(renamed)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
