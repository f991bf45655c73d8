//! The handshake, the main loop and request dispatch.
//!
//! Messages are handled one at a time, in order. Edits only update the text and mark the
//! document dirty; diagnostics are published when no message is waiting, so a burst of
//! keystrokes costs one analysis, and a request in the middle of a burst analyses the text it
//! sees (the analysis is cached until the next edit).

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::Receiver;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeConfiguration, DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest, InlayHintRequest,
    References, Request as _, SemanticTokensFullRequest,
};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse,
    HoverProviderCapability, InitializeParams, Location, OneOf, PublishDiagnosticsParams, Range,
    SemanticTokens, SemanticTokensFullOptions, SemanticTokensOptions, SemanticTokensResult,
    SemanticTokensServerCapabilities, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextEdit, Uri,
};
use netc_grammar::line_index::ColumnUnit;
use serde_json::Value;

use crate::document::{Document, Snap};
use crate::index::Role;
use crate::position::{encoding_kind, negotiate};

/// A request's failure: an LSP error code and a message.
type Failure = (i32, String);

/// Handshake (negotiating the position encoding and reading the inlay-hint toggle), then the
/// main loop until `exit`.
pub(crate) fn serve(connection: Connection) -> Result<i32, String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let unit = negotiate(
        params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_deref()),
    );
    let inlay_hints = params
        .initialization_options
        .as_ref()
        .and_then(|o| o.get("inlayHints"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let result = serde_json::json!({
        "capabilities": capabilities(unit),
        "serverInfo": { "name": "netc", "version": env!("CARGO_PKG_VERSION") },
    });
    connection
        .initialize_finish(id, result)
        .map_err(|e| e.to_string())?;

    // The stdio transport hands messages over one by one; an unbounded queue in front of the
    // loop lets it see whether more are waiting (and coalesce a burst of edits).
    let (forward, inbox) = crossbeam_channel::unbounded();
    let receiver = connection.receiver.clone();
    std::thread::Builder::new()
        .name("netc-lsp-inbox".to_string())
        .spawn(move || {
            for message in receiver {
                if forward.send(message).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| e.to_string())?;

    let mut server = Server {
        connection,
        docs: HashMap::new(),
        dirty: BTreeSet::new(),
        unit,
        inlay_hints,
        shutdown: false,
    };
    Ok(server.run(&inbox))
}

/// What the server offers; positions are in `unit`.
fn capabilities(unit: ColumnUnit) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(encoding_kind(unit)),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["(".into(), ",".into(), ".".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: crate::semantic::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                ..SemanticTokensOptions::default()
            },
        )),
        ..ServerCapabilities::default()
    }
}

struct Server {
    connection: Connection,
    docs: HashMap<String, Document>,
    /// Documents edited since their diagnostics were last published.
    dirty: BTreeSet<String>,
    unit: ColumnUnit,
    /// The client's toggle (`initializationOptions.inlayHints`, or the `netc.inlayHints`
    /// setting): when off, inlay hint requests answer with no hints.
    inlay_hints: bool,
    shutdown: bool,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn params<P: serde::de::DeserializeOwned>(req: Request) -> Result<P, Failure> {
    serde_json::from_value(req.params).map_err(|e| {
        (
            ErrorCode::InvalidParams as i32,
            format!("invalid parameters: {e}"),
        )
    })
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| (ErrorCode::InternalError as i32, e.to_string()))
}

impl Server {
    /// Handle messages until `exit`; returns the exit code.
    fn run(&mut self, inbox: &Receiver<Message>) -> i32 {
        loop {
            let Ok(message) = inbox.recv() else {
                // The client went away without `exit`.
                return 1;
            };
            match message {
                Message::Request(req) => self.request(req),
                Message::Notification(n) if n.method == "exit" => {
                    return if self.shutdown { 0 } else { 1 };
                }
                Message::Notification(n) => self.notification(n),
                Message::Response(_) => {}
            }
            if inbox.is_empty() {
                self.publish_dirty();
            }
        }
    }

    fn send(&self, message: Message) {
        // A closed channel means the client is gone; the loop ends on the next receive.
        let _ = self.connection.sender.send(message);
    }

    fn request(&mut self, req: Request) {
        let id: RequestId = req.id.clone();
        if self.shutdown {
            self.send(
                Response::new_err(
                    id,
                    ErrorCode::InvalidRequest as i32,
                    "the server is shutting down".to_string(),
                )
                .into(),
            );
            return;
        }
        if req.method == "shutdown" {
            self.shutdown = true;
            self.send(Response::new_ok(id, ()).into());
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(req)));
        let response = match result {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code, message),
            Err(panic) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!(
                    "netc lsp failed on this request ({}); this is a bug, please report it",
                    panic_message(&*panic)
                ),
            ),
        };
        self.send(response.into());
    }

    /// Run `f` on the analysed document; `null` when the document is not open.
    fn with_doc(
        &mut self,
        uri: &Uri,
        f: impl FnOnce(&Snap) -> Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let unit = self.unit;
        let Some(doc) = self.docs.get_mut(uri.as_str()) else {
            return Ok(Value::Null);
        };
        let analyzed = doc.analyzed();
        let snap = Snap::new(&doc.text, &analyzed, unit);
        f(&snap)
    }

    fn dispatch(&mut self, req: Request) -> Result<Value, Failure> {
        match req.method.as_str() {
            HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = params(req)?;
                let pos = p.text_document_position_params;
                self.with_doc(&pos.text_document.uri, |snap| {
                    let offset = snap.lines.offset(pos.position);
                    to_json(crate::hover::hover(snap, offset))
                })
            }
            InlayHintRequest::METHOD => {
                let p: lsp_types::InlayHintParams = params(req)?;
                if !self.inlay_hints {
                    return to_json(Vec::<lsp_types::InlayHint>::new());
                }
                self.with_doc(&p.text_document.uri, |snap| {
                    let from = snap.lines.offset(p.range.start);
                    let mut end = p.range.end;
                    end.character = u32::MAX;
                    let to = snap.lines.offset(end);
                    to_json(crate::inlay::hints(snap, from, to))
                })
            }
            GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = params(req)?;
                let pos = p.text_document_position_params;
                let uri = pos.text_document.uri.clone();
                self.with_doc(&pos.text_document.uri, |snap| {
                    let offset = snap.lines.offset(pos.position);
                    let index = &snap.a.index;
                    let target =
                        index
                            .occurrence_at(offset)
                            .and_then(|o| o.def)
                            .map(|d| Location {
                                uri,
                                range: snap.lines.range(index.defs[d].span),
                            });
                    to_json(target.map(GotoDefinitionResponse::Scalar))
                })
            }
            References::METHOD => {
                let p: lsp_types::ReferenceParams = params(req)?;
                let pos = p.text_document_position;
                let uri = pos.text_document.uri.clone();
                let declaration = p.context.include_declaration;
                self.with_doc(&pos.text_document.uri, |snap| {
                    let offset = snap.lines.offset(pos.position);
                    let index = &snap.a.index;
                    let Some(def) = index.occurrence_at(offset).and_then(|o| o.def) else {
                        return Ok(Value::Null);
                    };
                    let locations: Vec<Location> = index
                        .uses_of(def)
                        .filter(|o| declaration || o.role != Role::Def)
                        .map(|o| Location {
                            uri: uri.clone(),
                            range: snap.lines.range(o.span),
                        })
                        .collect();
                    to_json(locations)
                })
            }
            DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = params(req)?;
                self.with_doc(&p.text_document.uri, |snap| {
                    to_json(DocumentSymbolResponse::Nested(crate::symbols::outline(
                        snap,
                    )))
                })
            }
            Completion::METHOD => {
                let p: lsp_types::CompletionParams = params(req)?;
                let pos = p.text_document_position;
                self.with_doc(&pos.text_document.uri, |snap| {
                    let offset = snap.lines.offset(pos.position);
                    to_json(CompletionResponse::Array(crate::completion::complete(
                        snap, offset,
                    )))
                })
            }
            Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = params(req)?;
                self.with_doc(&p.text_document.uri, |snap| {
                    // A file with syntax errors is left alone (as `netc fmt` does).
                    let Some(formatted) = netc_grammar::format(snap.text) else {
                        return Ok(Value::Null);
                    };
                    let edits = if formatted == snap.text {
                        Vec::new()
                    } else {
                        vec![TextEdit {
                            range: Range::new(
                                snap.lines.position(0),
                                snap.lines.position(snap.text.len()),
                            ),
                            new_text: formatted,
                        }]
                    };
                    to_json(edits)
                })
            }
            SemanticTokensFullRequest::METHOD => {
                let p: lsp_types::SemanticTokensParams = params(req)?;
                self.with_doc(&p.text_document.uri, |snap| {
                    to_json(SemanticTokensResult::Tokens(SemanticTokens {
                        result_id: None,
                        data: crate::semantic::tokens(snap),
                    }))
                })
            }
            method => Err((
                ErrorCode::MethodNotFound as i32,
                format!("netc lsp does not handle `{method}`"),
            )),
        }
    }

    fn notification(&mut self, n: Notification) {
        let method = n.method.clone();
        let handled = catch_unwind(AssertUnwindSafe(|| self.handle_notification(n)));
        if let Err(panic) = handled {
            eprintln!(
                "netc lsp: failed on `{method}` ({}); this is a bug, please report it",
                panic_message(&*panic)
            );
        }
    }

    fn handle_notification(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params)
                else {
                    return;
                };
                let uri = p.text_document.uri.as_str().to_string();
                self.docs.insert(
                    uri.clone(),
                    Document::new(p.text_document.text, p.text_document.version),
                );
                self.dirty.insert(uri);
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params)
                else {
                    return;
                };
                let uri = p.text_document.uri.as_str().to_string();
                if let Some(doc) = self.docs.get_mut(&uri) {
                    doc.apply(p.content_changes, self.unit);
                    doc.version = p.text_document.version;
                    self.dirty.insert(uri);
                }
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params)
                else {
                    return;
                };
                self.docs.remove(p.text_document.uri.as_str());
                self.dirty.remove(p.text_document.uri.as_str());
                self.publish(p.text_document.uri, Vec::new(), None);
            }
            DidChangeConfiguration::METHOD => {
                // `{"settings": {"netc": {"inlayHints": false}}}`
                let enabled = n
                    .params
                    .pointer("/settings/netc/inlayHints")
                    .and_then(Value::as_bool);
                if let Some(enabled) = enabled {
                    self.inlay_hints = enabled;
                }
            }
            _ => {}
        }
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new(PublishDiagnostics::METHOD.to_string(), params).into());
    }

    /// Publish the diagnostics of every document edited since the last publication.
    fn publish_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for uri in dirty {
            let unit = self.unit;
            let Some(doc) = self.docs.get_mut(&uri) else {
                continue;
            };
            let Ok(parsed) = uri.parse::<Uri>() else {
                continue;
            };
            let version = doc.version;
            let analyzed = doc.analyzed();
            let diagnostics = catch_unwind(AssertUnwindSafe(|| {
                let snap = Snap::new(&doc.text, &analyzed, unit);
                analyzed
                    .analysis
                    .diagnostics
                    .iter()
                    .map(|d| crate::diagnostics::to_lsp(d, &snap.lines, &parsed))
                    .collect::<Vec<_>>()
            }));
            match diagnostics {
                Ok(diagnostics) => self.publish(parsed, diagnostics, Some(version)),
                Err(panic) => eprintln!(
                    "netc lsp: failed to convert diagnostics ({}); this is a bug",
                    panic_message(&*panic)
                ),
            }
        }
    }
}
