use std::process::ExitCode;

use clap::Parser;

use capt_fargate::cli::{Cli, Command};

// Reconciles allocate many short-lived objects across tokio's threads; glibc's allocator spent
// about half of the operator's CPU time on them in `tests/bench` (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workers = match &cli.command {
        Command::Run(args) => args.worker_threads.get(),
        _ => 1,
    };
    // One thread runs everything on tokio's current-thread scheduler: with a worker pool of one,
    // `block_on` would still poll the controllers on the main thread and the connections on
    // the worker, and the two threads wake each other for every request (perf, tests/bench).
    let runtime = match workers {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Crds { dir: None } => {
            print!("{}", capt_fargate::crdgen::all_yaml());
            Ok(())
        }
        Command::Crds { dir: Some(dir) } => {
            capt_fargate::crdgen::write_dir(&dir).map_err(|e| e.to_string())
        }
        Command::Render { file, namespace } => {
            capt_fargate::render::manifest::render_file(&file, &namespace)
                .map(|yaml| print!("{yaml}"))
                .map_err(|e| e.to_string())
        }
        Command::Run(args) => {
            capt_fargate::run::init_logging(args.log_format, &args.log_level);
            capt_fargate::run::run(*args)
                .await
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
