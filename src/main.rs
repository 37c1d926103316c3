use clap::Parser;

// glibc malloc was about an eighth of a replica's CPU on the API's reads
// (perf, BENCHMARKS.md round four); mimalloc's thread-local free lists cost
// a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ld_eaas::cli::Cli::parse();
    match ld_eaas::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
