//! The `mongo-oss-backup` binary: the same command line the Python console script runs.

fn main() {
    std::process::exit(_core::cli::main(std::env::args_os().collect()));
}
