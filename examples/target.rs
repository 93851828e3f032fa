//! A local HTTP target for trying Shoal: prints every request it receives (method, path and the
//! `X-Shoal-Instance` header workers send) and serves endpoints that succeed, fail, are slow or
//! answer any status.
//!
//! ```sh
//! cargo run --release --example target -- 127.0.0.1:8080
//! ```
//!
//! `/ok` → 200 "ok", `/fail` → 500, `/status/{code}`, `/slow?ms=N` → 200 after N ms,
//! `/requests` → JSON list of what was received.

use std::io::IsTerminal;
use std::net::SocketAddr;

fn main() -> anyhow::Result<()> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|error| anyhow::anyhow!("the listen address (HOST:PORT): {error}"))?;
    tracing_subscriber::fmt()
        .with_env_filter("shoal::local::target=info")
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let target = shoal::local::target::Target::start(listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
        println!("target listening on {}; Ctrl-C stops it", target.url(""));
        shoal::shutdown::signal().await;
        anyhow::Ok(())
    })
}
