//! The `wharf` command line, built inside the test package so integration tests can run it as a
//! real process (cargo only exposes binaries of the package under test). Same code as `wharf`.

fn main() -> std::process::ExitCode {
    wharf::cli::main()
}
