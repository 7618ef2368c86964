fn main() {
    std::process::exit(ncsh::cli::run(std::env::args_os().collect()));
}
