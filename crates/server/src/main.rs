//! The `keybridge` binary.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// mimalloc returns freed memory to the system promptly; with glibc's allocator, argon2's 19 MiB
/// working areas and per-thread arenas kept the resident set several times larger (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keybridge_server::cli::main()
}
