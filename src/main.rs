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
        Ok(Command::HashPassword { user, cost }) => return hash_password(&user, cost),
        Ok(Command::Bench { quick }) => return bench(quick),
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

/// `wsvnc bench [--quick]` (src/bench/).
fn bench(quick: bool) -> ExitCode {
    #[cfg(feature = "bench")]
    match wsvnc::bench::run(quick) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsvnc bench: {e}");
            ExitCode::FAILURE
        }
    }
    #[cfg(not(feature = "bench"))]
    {
        let _ = quick;
        eprintln!("wsvnc: built without the `bench` feature");
        ExitCode::from(2)
    }
}

/// `wsvnc hash-password USER [COST]`: reads the password from standard input
/// (without echo on a terminal) and prints `USER:$2y$…` for --basic-auth-file.
fn hash_password(user: &str, cost: u32) -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let saved = if tty { echo_off() } else { None };
    if tty {
        eprint!("password for {user}: ");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the terminal settings read by echo_off on fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        eprintln!();
    }
    if let Err(e) = read {
        eprintln!("wsvnc: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("wsvnc: empty password");
        return ExitCode::from(2);
    }
    match wsvnc::http::access::basic::hash_entry(user, password.as_bytes(), cost) {
        Ok(l) => {
            println!("{l}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsvnc: {e}");
            ExitCode::from(2)
        }
    }
}

/// Turns terminal echo off on standard input; returns the settings to restore.
fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios they fill in.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(saved)
    }
}
