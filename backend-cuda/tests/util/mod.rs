//! Helpers shared by this crate's integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Every `examples/*.net`, sorted: a new example is tested without touching the tests.
pub fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    files
}

/// `f` on every item, on as many threads as the machine has cores (the slow suites are
/// independent per example). A panic in any worker fails the caller.
pub fn par_each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync) {
    let queue = Mutex::new(items);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some(item) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    f(item);
                }
            });
        }
    });
}
