//! The `gitmq` command-line tool: parse arguments, run one command, map the outcome to an
//! exit code (0 success or a closed stdout pipe, 1 failure, 2 usage), print errors on one line.

#[cfg(feature = "bench")]
mod bench;
mod cli;
mod commands;
mod output;
mod sign;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match <cli::Cli as clap::Parser>::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gitmq: {}", chain(err.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// The error and its sources, joined on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        current = err.source();
    }
    false
}
