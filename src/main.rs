use clap::Parser;

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
