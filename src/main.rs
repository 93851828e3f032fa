use std::process::ExitCode;

fn main() -> ExitCode {
    shoal::cli::main()
}
