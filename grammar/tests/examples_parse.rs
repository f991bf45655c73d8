//! Every example program parses without a syntax error.

use std::fs;

#[test]
fn examples_parse_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "net") {
            let src = fs::read_to_string(&path).unwrap();
            let (file, diags) = netc_grammar::parse(&src);
            assert!(diags.is_empty(), "{}: {diags:#?}", path.display());
            assert!(!file.items.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 5, "expected the five examples, found {seen}");
}
