//! Runs one parsed command against the library: one file per subcommand, each a `run`
//! taking the repository and its arguments; data to stdout, nothing else printed.

mod consolidate;
mod consume;
mod consumers;
pub mod demo;
mod dlq;
mod fetch;
mod init;
mod join;
pub mod log;
mod prune;
mod publish;
mod push;
mod remote;
mod serve;
mod split;
mod sync;
mod topics;
mod unlock;

use std::{error::Error, path::Path};

use gitmq::Repository;

use crate::cli::{Cli, Command, RemoteCommand};

pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Run `cli`'s subcommand.
pub fn run(cli: Cli) -> Result<()> {
    let signer = cli.sign.as_deref().map(crate::sign::load_key).transpose()?;
    let repo = || crate::sign::with_copy_signer(open(cli.repo.as_deref()), signer.as_ref());
    match cli.command {
        Command::Init(args) => init::run(&args),
        Command::Demo(args) => demo::run(args.keep.as_deref()),
        #[cfg(feature = "bench")]
        Command::Bench(command) => crate::bench::run(command),
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => Err("this gitmq was built without benchmarks: run \
             `cargo run --release --features bench -- bench ...`"
            .into()),
        Command::Serve(args) => serve::run(repo()?, &args),
        Command::Publish(args) => publish::run(&repo()?, &args),
        Command::Consume(args) => consume::run(&repo()?, &args),
        Command::Log(args) => log::run(&repo()?, &args),
        Command::Topics => topics::run(&repo()?),
        Command::Consumers(args) => consumers::run(&repo()?, &args),
        Command::Join(args) => join::run(&repo()?, &args),
        Command::Split(args) => split::run(&repo()?, &args),
        Command::Dlq(command) => dlq::run(&repo()?, &command),
        Command::Fetch(args) => fetch::run(&repo()?, &args),
        Command::Push(args) => push::run(&repo()?, &args),
        Command::Sync(args) => sync::run(&repo()?, &args),
        Command::Remote(RemoteCommand::Add { name, url }) => remote::add(&repo()?, &name, &url),
        Command::Prune(args) => prune::run(&repo()?, &args),
        Command::Unlock(args) => unlock::run(&repo()?, &args),
        Command::Consolidate(args) => consolidate::run(&repo()?, &args),
    }
}

/// The repository at `path`, or the one around the current directory.
fn open(path: Option<&Path>) -> Result<Repository> {
    Ok(match path {
        Some(path) => Repository::open(path)?,
        None => Repository::discover(".")?,
    })
}
