/// Large blocks mapped fresh, not carved from the heap and cleared (see alloc.rs).
#[global_allocator]
static ALLOCATOR: wharf::alloc::LargeBlocksMapped = wharf::alloc::LargeBlocksMapped;

fn main() -> std::process::ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`wharf status | head`) instead of panicking on a broken pipe.
    // SAFETY: resetting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    wharf::cli::main()
}
