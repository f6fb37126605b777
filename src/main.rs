//! The `ringx` binary: nginx's command line over [`ringx::cli`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = ringx::cli::main(std::env::args().collect());
    std::process::exit(code);
}
