//! The `vsys` binary: parses the command line and hands over to `api::cli`.

use clap::Parser;

/// mimalloc instead of the system allocator: the server allocates and frees many small values
/// per request and large buffers in bulk writes, where glibc malloc both costs more CPU and
/// hands memory back to the kernel only to fault it in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::cli::run(api::config::Cli::parse()).await
}
