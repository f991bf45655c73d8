//! `netc`: check, format and (later) compile and train `.net` programs.

mod cli;

fn main() {
    // Checking recurses over the syntax tree; a generous stack keeps adversarial input
    // (long chains, deep nesting within the parser's limits) far from overflowing it.
    let child = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(cli::run);
    let code = match child.map(|c| c.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("error: netc crashed; this is a bug, please report it with the input file");
            101
        }
    };
    std::process::exit(code);
}
