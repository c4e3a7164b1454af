//! `cogview backends`: which backends this machine can run, and why the others cannot.

use cogview::core::backend::{Availability, Backend};
use cogview::plugin_host;
use cogview::{Device, Error, Result};
use std::path::PathBuf;

/// List the built-in backend and every plugin found in the plugin folders ($COGVIEW_PLUGIN_PATH,
/// the executable's folder, its plugins/ and ../lib/cogview/), with whether each can run on the
/// CPU and on CUDA device 0 here, and why not.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check these plugin libraries.
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Devices to ask about (default: cpu and cuda:0).
    #[arg(long = "device")]
    devices: Vec<Device>,
}

fn verdicts(b: &dyn Backend, devices: &[Device]) -> Vec<String> {
    devices
        .iter()
        .map(|d| match b.availability(*d) {
            Availability::Usable { score } => format!("    {d}: usable (score {score})"),
            Availability::Unusable { reason } => format!("    {d}: not usable: {reason}"),
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let devices = if args.devices.is_empty() {
        vec![Device::Cpu, Device::Cuda(0)]
    } else {
        args.devices.clone()
    };
    let builtin = cogview::candle::CandleBackend;
    println!("{} (built in): {}", builtin.name(), builtin.describe());
    for line in verdicts(&builtin, &devices) {
        println!("{line}");
    }
    let mut found = plugin_host::discover();
    for p in &args.plugins {
        found.push((p.clone(), plugin_host::load_path(p)));
    }
    let mut failures = 0;
    for (path, plugin) in found {
        match plugin {
            Ok(p) => {
                println!(
                    "{} (plugin {}): version {}, {}",
                    p.name(),
                    path.display(),
                    p.version(),
                    p.build_info()
                );
                for d in &devices {
                    match p.availability(*d) {
                        Availability::Usable { score } => {
                            println!("    {d}: usable (score {score})")
                        }
                        Availability::Unusable { reason } => {
                            println!("    {d}: not usable: {reason}")
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                println!(
                    "{} (plugin): cannot be used: {}",
                    path.display(),
                    cogview::core::error::with_causes(&e)
                );
            }
        }
    }
    let dirs = plugin_host::search_dirs();
    println!(
        "plugin folders searched: {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if failures > 0 && !args.plugins.is_empty() {
        return Err(Error::plugin(
            "(command line)",
            format!("{failures} plugin(s) could not be loaded"),
        ));
    }
    Ok(())
}
