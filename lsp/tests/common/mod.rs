//! An in-process LSP client for the tests: the server runs on its own thread behind
//! `Connection::memory()`, and the test speaks JSON-RPC messages to it.

#![allow(dead_code)] // Each test file uses a different part of the helper.

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{Value, json};

/// How long to wait for any one message before failing the test (the server answers in
/// milliseconds; this only bounds a hang).
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const URI: &str = "file:///work/test.net";

pub struct Client {
    conn: Connection,
    server: Option<JoinHandle<Result<i32, String>>>,
    next_id: i32,
    /// Notifications received while waiting for something else.
    pending: VecDeque<Notification>,
    pub init_result: Value,
}

impl Client {
    /// A client offering only UTF-16 positions, with default options.
    pub fn start() -> Client {
        Client::start_with(json!({}), None)
    }

    /// A client with these `initializationOptions` and, if given, these offered position
    /// encodings.
    pub fn start_with(options: Value, encodings: Option<&[&str]>) -> Client {
        let (server, client) = Connection::memory();
        let handle = netc_lsp::spawn(server);
        let mut c = Client {
            conn: client,
            server: Some(handle),
            next_id: 0,
            pending: VecDeque::new(),
            init_result: Value::Null,
        };
        let mut capabilities = json!({
            "textDocument": { "hover": { "contentFormat": ["markdown"] } }
        });
        if let Some(enc) = encodings {
            capabilities["general"] = json!({ "positionEncodings": enc });
        }
        c.init_result = c.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": null,
                "capabilities": capabilities,
                "initializationOptions": options,
            }),
        );
        c.notify("initialized", json!({}));
        c
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.conn
            .sender
            .send(Notification::new(method.to_string(), params).into())
            .expect("server gone");
    }

    /// Send a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> RequestId {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.conn
            .sender
            .send(Request::new(id.clone(), method.to_string(), params).into())
            .expect("server gone");
        id
    }

    /// Wait for the response to `id`, keeping notifications that arrive meanwhile.
    pub fn response(&mut self, id: RequestId) -> Response {
        loop {
            match self.conn.receiver.recv_timeout(TIMEOUT) {
                Ok(Message::Response(r)) if r.id == id => return r,
                Ok(Message::Response(r)) => panic!("unexpected response {r:?}"),
                Ok(Message::Notification(n)) => self.pending.push_back(n),
                Ok(Message::Request(_)) => {}
                Err(e) => panic!("no response to {id:?}: {e}"),
            }
        }
    }

    /// A request's result; fails the test on an error response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        let r = self.response(id);
        match r.response_result {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e:?}"),
        }
    }

    /// The next notification with this method.
    pub fn notification(&mut self, method: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|n| n.method == method) {
            return self.pending.remove(i).unwrap().params;
        }
        loop {
            match self.conn.receiver.recv_timeout(TIMEOUT) {
                Ok(Message::Notification(n)) if n.method == method => return n.params,
                Ok(Message::Notification(n)) => self.pending.push_back(n),
                Ok(other) => panic!("unexpected message {other:?}"),
                Err(e) => panic!("no {method} notification: {e}"),
            }
        }
    }

    /// The next diagnostics published (for any document).
    pub fn diagnostics(&mut self) -> Vec<Value> {
        let params = self.notification("textDocument/publishDiagnostics");
        params["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Open a document and return the diagnostics published for it.
    pub fn open(&mut self, text: &str) -> Vec<Value> {
        self.open_uri(URI, text)
    }

    pub fn open_uri(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "netdsl", "version": 1, "text": text } }),
        );
        self.diagnostics()
    }

    /// Apply changes (each `{"range": ..., "text": ...}` or `{"text": ...}`) and return the
    /// diagnostics published afterwards.
    pub fn change(&mut self, version: i32, changes: Value) -> Vec<Value> {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": version }, "contentChanges": changes }),
        );
        self.diagnostics()
    }

    /// A request at a position of the test document.
    pub fn at(&mut self, method: &str, line: u32, character: u32) -> Value {
        let mut params = json!({
            "textDocument": { "uri": URI },
            "position": { "line": line, "character": character },
        });
        if method == "textDocument/references" {
            params["context"] = json!({ "includeDeclaration": true });
        }
        self.request(method, params)
    }

    pub fn hover_text(&mut self, line: u32, character: u32) -> String {
        let h = self.at("textDocument/hover", line, character);
        h["contents"]["value"].as_str().unwrap_or("").to_string()
    }

    /// `shutdown` then `exit`; returns the server's exit code.
    pub fn shutdown(mut self) -> i32 {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        self.server
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
            .expect("protocol error")
    }
}

/// The line and UTF-16 column of the first occurrence of `needle` in `text` (plus `skip`
/// characters), as an editor would send it.
pub fn pos(text: &str, needle: &str, skip: usize) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in text"));
    let before = &text[..at];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..at].encode_utf16().count() + skip;
    (line as u32, col as u32)
}

/// `{"start": .., "end": ..}` as `(line, col, line, col)`.
pub fn range(v: &Value) -> (u64, u64, u64, u64) {
    (
        v["start"]["line"].as_u64().unwrap(),
        v["start"]["character"].as_u64().unwrap(),
        v["end"]["line"].as_u64().unwrap(),
        v["end"]["character"].as_u64().unwrap(),
    )
}
