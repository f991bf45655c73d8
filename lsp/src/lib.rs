//! The `.net` language server behind `netc lsp`: diagnostics as you type, shapes on hover and
//! as inlay hints, navigation, completion, formatting and semantic tokens.
//!
//! Architecture invariant: the server reuses the compiler's front end and checker directly
//! ([`netc_compiler::analyze`], the built-in table, [`netc_grammar::format`]); it never
//! re-implements checking and never goes through rendered miette text. What it adds is only
//! editor plumbing: positions in the client's encoding, a syntactic index of definitions and
//! uses for navigation, and a small lexer for highlighting and completion contexts.
//!
//! The server is single-threaded and synchronous ([`lsp_server`]): document changes are applied
//! in the order they arrive, and analysis is recomputed lazily when a request or a diagnostics
//! publication needs it, so a burst of keystrokes costs one analysis. Every request runs inside
//! `catch_unwind`: a bug in a handler answers that request with an error and the server goes on.

mod completion;
mod diagnostics;
mod document;
mod hover;
mod index;
mod inlay;
mod lexer;
mod position;
mod semantic;
mod server;
mod symbols;

use std::thread::JoinHandle;

/// The transport [`spawn`] and [`serve`] take: re-exported so callers (tests, other front ends)
/// need not depend on `lsp-server` themselves.
pub use lsp_server::Connection;

/// Stack size of the thread the server runs on. The checker recurses over the syntax tree; the
/// command line gives it the same generous stack, so adversarial input cannot overflow it here
/// either (a stack overflow aborts the process, which `catch_unwind` cannot stop).
pub const STACK_SIZE: usize = 256 << 20;

/// Run the server over stdin/stdout until the client sends `exit`; the process exit code is
/// returned (0 after a proper `shutdown`, 1 otherwise, as the protocol asks).
///
/// This is what `netc lsp` calls.
pub fn run_stdio() -> i32 {
    let (connection, io_threads) = Connection::stdio();
    let code = match spawn(connection).join() {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("netc lsp: {e}");
            1
        }
        Err(_) => {
            eprintln!("netc lsp: the server crashed; this is a bug, please report it");
            101
        }
    };
    // The reader thread has stopped at `exit`; the writer stops once every sender is dropped.
    if let Err(e) = io_threads.join() {
        eprintln!("netc lsp: {e}");
    }
    code
}

/// Start the server on its own big-stack thread (see [`STACK_SIZE`]) and return its handle.
///
/// Tests call this with one end of [`Connection::memory`] and speak the protocol through the
/// other end; the handle's result is the exit code the process would have.
pub fn spawn(connection: Connection) -> JoinHandle<Result<i32, String>> {
    std::thread::Builder::new()
        .name("netc-lsp".to_string())
        .stack_size(STACK_SIZE)
        .spawn(move || serve(connection))
        .expect("cannot start the language server thread")
}

/// Run the server on the current thread: the `initialize` handshake, then the main loop until
/// `exit`. Returns the exit code (0 after `shutdown`, 1 if `exit` came without it), or a
/// protocol error (the client broke the handshake).
///
/// Prefer [`spawn`], which gives the checker the stack it expects.
pub fn serve(connection: Connection) -> Result<i32, String> {
    server::serve(connection)
}
