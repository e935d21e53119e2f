//! The `wsvnc` binary: command line → Config → Server::run.

use std::io::Write;
use std::process::ExitCode;

use wsvnc::config::{parse_args, Command, USAGE};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(cfg)) => cfg,
        // A closed stdout (`wsvnc --help | head`) is not an error worth a panic.
        Ok(Command::Help) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            let _ = writeln!(std::io::stdout(), "wsvnc {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wsvnc: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = cfg.demo_server {
        return match wsvnc::server::run_demo_server(addr, cfg.demo_size) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsvnc: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut server = match wsvnc::Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsvnc: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.handle_signals() {
        eprintln!("wsvnc: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsvnc: {e}");
            ExitCode::FAILURE
        }
    }
}
