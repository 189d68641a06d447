//! The `scopegate` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    scopegate::main()
}

/// mimalloc: the gateway allocates many small, short-lived buffers per request (headers,
/// URIs, futures); glibc's allocator spent ~6% of a request's CPU on them in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
