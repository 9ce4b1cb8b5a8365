//! SRP initiator and target over a Unix socketpair, in one process: the
//! target is tgtkit's SRP session on the engine with a ram disk; see
//! [`tgtkit_examples::srp_loop`]. Prints each step; exits 1 if one fails.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "SRP initiator and target over a socketpair, on a tgtkit ram disk")]
struct Args {
    /// Disk size in 512-byte blocks.
    #[arg(long, default_value_t = 2048)]
    blocks: u64,
}

fn main() -> std::process::ExitCode {
    tgtkit_examples::logging::init("warn");
    match tgtkit_examples::srp_loop::run(Args::parse().blocks) {
        Ok(report) => {
            for line in report {
                println!("srp-loop: {line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("srp-loop: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
