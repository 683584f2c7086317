use std::process::ExitCode;

use clap::Parser;

use capt_fargate::cli::{Cli, Command};

// The system allocator (glibc's malloc). mimalloc was used while the operator ran tokio's
// multi-threaded scheduler, where glibc's allocator took about half of its CPU time (perf,
// `tests/bench`). On the current-thread scheduler (the default) it does not: at 200 control
// planes × 8 profiles, one round each, glibc's malloc gave a peak RSS of 87.1 / 76.0 MiB
// (convergence / after a restart's resync) and 5.3 s of operator CPU, against mimalloc's
// 98.7 / 83.1 MiB and 7.1 s with the same simulator (BENCHMARKS.md, "The system allocator").

// `--features heap-stats`: the system allocator, counting the heap bytes in use and their
// peak, written every 250 ms to the file named by CAPT_FARGATE_HEAP_STATS ("<live> <peak>",
// bytes); the bench compares them with the process's RSS to tell live data from allocator
// overhead.
#[cfg(feature = "heap-stats")]
#[global_allocator]
static ALLOCATOR: capt_fargate::heap_stats::Counting<capt_fargate::heap_stats::Global> =
    capt_fargate::heap_stats::Counting(capt_fargate::heap_stats::Global);

fn main() -> ExitCode {
    no_transparent_huge_pages();
    #[cfg(feature = "heap-stats")]
    if let Some(path) = std::env::var_os("CAPT_FARGATE_HEAP_STATS") {
        capt_fargate::heap_stats::Global::report(path.into());
    }
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

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`, Linux 3.15+,
/// for its mappings present and future). Where THP is `always`, or where an allocator advises
/// it, each 2 MiB region the heap touches becomes resident whole: with mimalloc, which advises
/// it (`MADV_HUGEPAGE`), that was 24 MiB of the operator's peak RSS at 200 control planes × 8
/// profiles (`tests/bench`), in huge pages mostly unused. A failure (an old kernel) only leaves
/// THP as it was.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
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
