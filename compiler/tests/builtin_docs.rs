//! `docs/builtins.md` is exactly what the built-in table generates (`BLESS=1` rewrites it).

#[test]
fn builtin_reference_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/builtins.md");
    let generated = netc_compiler::docs::builtins_markdown();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/builtins.md is stale: run `BLESS=1 cargo test -p netc-compiler --test builtin_docs`"
    );
}
