//! `pyou`: runs Parallel You command handlers (WebAssembly components).

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(commands::EXIT_FAILURE);
        }
    };
    let exporter = match cli.otlp() {
        Ok(None) => None,
        Ok(Some((url, service))) => {
            match commands::Exporter::start(&url, service, runtime.handle().clone()) {
                Ok(exporter) => Some(exporter),
                Err(err) => {
                    eprintln!("error: {err:#}");
                    return ExitCode::from(commands::EXIT_FAILURE);
                }
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(commands::EXIT_USAGE);
        }
    };
    commands::init_tracing(cli.verbose, exporter.as_ref());
    let ran = runtime.block_on(cli.command.run());
    // The last batch goes out over the runtime, which still runs.
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    match ran {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
