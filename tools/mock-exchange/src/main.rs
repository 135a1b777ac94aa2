//! `mock-exchange`: serves many mock Exchange sites on loopback addresses for the probe
//! benchmark (bench/probe.sh). Test-only.
//!
//! Usage: mock-exchange FIRST_IP COUNT PORT [THREADS]
//! Binds COUNT consecutive addresses from FIRST_IP (loopback only) on PORT with TLS, builds
//! cycling over a fixed list, prints `ready` and serves until stdin closes.

use std::io::Read;
use std::net::Ipv4Addr;

use mock_exchange::{ExchangeSite, Profile, start_range};

const BUILDS: [&str; 6] = [
    "15.2.1118.20",
    "15.2.721.2",
    "15.1.2176.9",
    "15.1.2507.16",
    "15.2.986.5",
    "15.0.1497.2",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        anyhow::bail!("usage: mock-exchange FIRST_IP COUNT PORT [THREADS]");
    }
    let first: Ipv4Addr = args[1].parse()?;
    let count: u32 = args[2].parse()?;
    let port: u16 = args[3].parse()?;
    let threads: usize = args.get(4).map_or(Ok(2), |t| t.parse())?;
    let (mock, _) = start_range(
        first,
        count,
        port,
        |i| Profile::Exchange(ExchangeSite::new(BUILDS[i as usize % BUILDS.len()])),
        threads,
    )?;
    println!("ready {}", mock.addrs().len());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(mock);
    Ok(())
}
