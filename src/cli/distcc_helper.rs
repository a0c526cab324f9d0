//! `build-helper distcc-helper`: serves a history's compilers to other build machines with its own distccd.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::error::UsageError;
use crate::starter::HistorySel;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// History to serve: latest, a name under history/, or a path.
    #[arg(long, default_value = "latest")]
    pub history: String,
    /// Address to listen on (default: every address, 0.0.0.0, with a warning).
    #[arg(long)]
    pub listen: Option<std::net::IpAddr>,
    /// TCP port.
    #[arg(long, default_value_t = crate::distcc::helper::DEFAULT_PORT)]
    pub port: u16,
    /// A network allowed to connect (ADDR or ADDR/BITS); required, may repeat.
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Compile jobs at once (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long)]
    pub tree: Option<PathBuf>,
}

/// Serves until Ctrl-C; returns the helper's exit status.
pub(super) fn run(args: Args, sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let Args {
        history,
        listen,
        port,
        allow,
        jobs,
        tree,
    } = args;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let history = HistorySel::parse(&history, &cwd)
        .map_err(|e| UsageError(format!("--history {history}: {e}")))?;
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    crate::distcc::serve(
        sys.as_ref(),
        &crate::distcc::HelperOptions {
            tree: super::tree_arg(tree),
            history,
            listen: listen.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
            listen_given: listen.is_some(),
            port,
            allow,
            jobs,
        },
    )
}
