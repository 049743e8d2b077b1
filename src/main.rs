//! The `detect-agent` binary: flags, config loading and wiring (src/cli/); all logic worth
//! testing lives in the library (src/lib.rs).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
