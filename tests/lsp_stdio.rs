//! End to end: spawn the real `netc lsp` and speak JSON-RPC over its stdin/stdout, as an editor
//! does. Initialize, open a file with two errors, get both with the right ranges, fix one with an
//! incremental change, get the other alone, hover a binding for its shape, shut down cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);
const URI: &str = "file:///tmp/two_errors.net";

/// `é😀` before each error on its line: columns in UTF-16 differ from bytes and characters.
const TEXT: &str = "data digits {
  source csv(\"données/😀.csv\", labell: 64)
  pixels: f32[64]
  label:  class(10)
}

model Mlp(x: f32[B, 64]) -> f32[B, 10] {
  let h = x |> linear(64) |> relu
  h |> linear(10) |> softmaxx  # é😀
}
";

/// Kills the server if the test fails before it exits.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Value>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start netc lsp");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = channel();
        // Read `Content-Length`-framed messages on a thread so the test can time out.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some(n) = header.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let message: Value = serde_json::from_slice(&body).expect("JSON body");
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        Server {
            child,
            stdin,
            messages,
        }
    }

    fn send(&mut self, message: Value) {
        let body = serde_json::to_string(&message).unwrap();
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        stdin.flush().unwrap();
    }

    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let response = self.next(|m| m["id"] == json!(id));
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The next message matching `want` (others are skipped).
    fn next(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .expect("the server did not answer in time");
            if want(&m) {
                return m;
            }
        }
    }

    fn diagnostics(&mut self) -> Vec<Value> {
        let m = self.next(|m| m["method"] == json!("textDocument/publishDiagnostics"));
        assert_eq!(m["params"]["uri"], json!(URI));
        m["params"]["diagnostics"].as_array().unwrap().clone()
    }
}

fn range(d: &Value) -> (u64, u64, u64, u64) {
    let r = &d["range"];
    (
        r["start"]["line"].as_u64().unwrap(),
        r["start"]["character"].as_u64().unwrap(),
        r["end"]["line"].as_u64().unwrap(),
        r["end"]["character"].as_u64().unwrap(),
    )
}

#[test]
fn netc_lsp_over_stdio() {
    let mut server = Server::start();
    let init = server.request(
        1,
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert_eq!(init["capabilities"]["positionEncoding"], json!("utf-16"));
    assert_eq!(init["serverInfo"]["name"], json!("netc"));
    server.notify("initialized", json!({}));

    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "netdsl", "version": 1, "text": TEXT } }),
    );
    let diags = server.diagnostics();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["N2004", "N2002"], "{diags:#?}");
    // `  source csv("données/😀.csv", ` is 31 UTF-16 units.
    assert_eq!(range(&diags[0]), (1, 31, 1, 37));
    assert_eq!(range(&diags[1]), (8, 21, 8, 29));
    assert!(diags[1]["message"].as_str().unwrap().contains("`softmaxx`"));

    // Fix `labell` by deleting one character, after the emoji.
    server.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": URI, "version": 2 },
            "contentChanges": [{ "range": { "start": { "line": 1, "character": 36 }, "end": { "line": 1, "character": 37 } }, "text": "" }],
        }),
    );
    let diags = server.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0]["code"], json!("N2002"));
    assert_eq!(range(&diags[0]), (8, 21, 8, 29));

    // Hover the binding `h` where it is used.
    let hover = server.request(
        2,
        "textDocument/hover",
        json!({ "textDocument": { "uri": URI }, "position": { "line": 8, "character": 2 } }),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("let h: f32[B, 64]"), "{text}");

    let shutdown = server.request(3, "shutdown", Value::Null);
    assert_eq!(shutdown, Value::Null);
    server.notify("exit", Value::Null);
    drop(server.stdin.take());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "netc lsp did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
}
