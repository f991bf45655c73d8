//! Renders `docs/editor.svg`, the picture of the editor in the README, from what the server
//! really answers: semantic tokens for the colours, inlay hints, a diagnostic's squiggle and
//! message, and a hover. Regenerate after changing what the server shows:
//!
//! ```sh
//! cargo test -p netc-lsp --test editor_picture -- --ignored
//! ```

mod common;

use std::fmt::Write as _;

use common::*;
use serde_json::json;

const SAMPLE: &str = "model Broken(x: f32[B, 64]) -> f32[B, 10] {
  let a = x |> linear(32)
  let b = x |> linear(16)
  (a + b) |> linear(10)
}

model Classifier(x: f32[B, 1, 28, 28]) -> f32[B, 10] {
  let h = x |> conv2d(8, kernel: 3) |> relu
  let p = h |> max_pool(2) |> flatten
  p |> linear(128) |> relu
    |> linear(10)
}
";

/// Empty editor lines below the code, where the hover box opens.
const EDITOR_LINES: usize = 23;

const CHAR_W: f64 = 8.4;
const LINE_H: f64 = 20.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(token_type: &str) -> &'static str {
    match token_type {
        "keyword" => "#569CD6",
        "type" | "class" | "namespace" | "typeParameter" => "#4EC9B0",
        "function" => "#DCDCAA",
        "variable" | "parameter" | "property" => "#9CDCFE",
        "number" => "#B5CEA8",
        "string" => "#CE9178",
        "comment" => "#6A9955",
        _ => "#D4D4D4",
    }
}

fn x_of(col: usize) -> f64 {
    LEFT + col as f64 * CHAR_W
}

fn y_of(line: usize) -> f64 {
    TOP + line as f64 * LINE_H
}

/// Hover markdown as plain lines: `(text, is_code)`, wrapped to `width` characters.
fn hover_lines(markdown: &str, width: usize) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            code = !code;
            continue;
        }
        let mut text = line.replace("**", "").replace('`', "");
        if let Some(rest) = text.strip_prefix('*') {
            // `*layer* — ...`: the kind in italics.
            text = rest.replacen('*', "", 1);
        }
        if text.is_empty() {
            out.push((String::new(), false));
            continue;
        }
        let mut current = String::new();
        for word in text.split(' ') {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
                out.push((std::mem::take(&mut current), code));
                current.push_str("  ");
            } else if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push((current, code));
    }
    out
}

#[test]
#[ignore = "writes docs/editor.svg; run with --ignored to regenerate"]
fn render_editor_picture() {
    let mut c = Client::start();
    let legend: Vec<String> =
        c.init_result["capabilities"]["semanticTokensProvider"]["legend"]["tokenTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    let diagnostics = c.open(SAMPLE);
    let tokens = c.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": URI } }),
    );
    let hints = c.request(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": URI }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 20, "character": 0 } } }),
    );
    let (hover_line, hover_col) = pos(SAMPLE, "linear(128)", 2);
    let hover = c.hover_text(hover_line, hover_col);
    c.shutdown();

    let lines: Vec<&str> = SAMPLE.lines().collect();
    // Semantic tokens → per-line coloured spans (the sample is ASCII: UTF-16 = chars).
    let mut colours: Vec<Vec<(usize, usize, &str)>> = vec![Vec::new(); lines.len()];
    let data: Vec<u64> = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let (mut line, mut start) = (0usize, 0usize);
    for t in data.chunks(5) {
        if t[0] > 0 {
            line += t[0] as usize;
            start = t[1] as usize;
        } else {
            start += t[1] as usize;
        }
        colours[line].push((start, start + t[2] as usize, colour(&legend[t[3] as usize])));
    }

    let width = 980.0;
    let height = y_of(EDITOR_LINES) + 120.0;
    let mut svg = String::new();
    writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">"##
    )
    .unwrap();
    svg.push_str(r##"<rect width="100%" height="100%" fill="#1E1E1E"/>"##);
    svg.push_str(r##"<rect width="100%" height="28" fill="#252526"/><rect x="0" y="0" width="170" height="28" fill="#1E1E1E"/>"##);
    svg.push_str(r##"<text x="14" y="19" fill="#FFFFFF" font-family="sans-serif" font-size="13">classifier.net</text>"##);

    for (i, text) in lines.iter().enumerate() {
        let y = y_of(i);
        writeln!(
            svg,
            r##"<text x="{}" y="{y}" fill="#858585" text-anchor="end">{}</text>"##,
            LEFT - 16.0,
            i + 1
        )
        .unwrap();
        // Text in runs: coloured tokens, default colour between them.
        let mut col = 0;
        let chars: Vec<char> = text.chars().collect();
        let mut spans = colours[i].clone();
        spans.sort();
        let mut runs: Vec<(usize, usize, &str)> = Vec::new();
        for (s, e, c) in spans {
            if s > col {
                runs.push((col, s, "#D4D4D4"));
            }
            runs.push((s, e, c));
            col = e;
        }
        if col < chars.len() {
            runs.push((col, chars.len(), "#D4D4D4"));
        }
        for (s, e, c) in runs {
            let piece: String = chars[s.min(chars.len())..e.min(chars.len())]
                .iter()
                .collect();
            if piece.trim().is_empty() {
                continue;
            }
            writeln!(
                svg,
                r##"<text x="{}" y="{y}" fill="{c}" xml:space="preserve">{}</text>"##,
                x_of(s),
                esc(&piece)
            )
            .unwrap();
        }
    }

    // Inlay hints at line ends.
    for h in hints.as_array().unwrap() {
        let line = h["position"]["line"].as_u64().unwrap() as usize;
        let col = h["position"]["character"].as_u64().unwrap() as usize;
        let label = h["label"].as_str().unwrap();
        let x = x_of(col) + CHAR_W;
        let w = label.chars().count() as f64 * CHAR_W * 0.93 + 10.0;
        writeln!(
            svg,
            r##"<rect x="{x}" y="{}" width="{w}" height="17" rx="3" fill="#2F3239"/><text x="{}" y="{}" fill="#9A9A9A" font-size="13">{}</text>"##,
            y_of(line) - 13.5,
            x + 5.0,
            y_of(line),
            esc(label)
        )
        .unwrap();
    }

    // Squiggles under each diagnostic, and the problem list at the bottom.
    for d in &diagnostics {
        let r = range(&d["range"]);
        let (y, x0, x1) = (
            y_of(r.0 as usize) + 4.0,
            x_of(r.1 as usize),
            x_of(r.3 as usize),
        );
        let mut path = format!("M{x0},{y}");
        let mut x = x0;
        let mut up = true;
        while x < x1 {
            x += 3.0;
            path.push_str(&format!(" L{x},{}", if up { y - 2.0 } else { y + 1.0 }));
            up = !up;
        }
        let colour = if d["severity"] == json!(1) {
            "#F14C4C"
        } else {
            "#CCA700"
        };
        writeln!(
            svg,
            r##"<path d="{path}" stroke="{colour}" fill="none" stroke-width="1.2"/>"##
        )
        .unwrap();
    }
    let panel = y_of(EDITOR_LINES) - 6.0;
    writeln!(
        svg,
        r##"<rect x="0" y="{panel}" width="100%" height="{}" fill="#181818"/><text x="14" y="{}" fill="#E7E7E7" font-family="sans-serif" font-size="12">PROBLEMS</text>"##,
        height - panel,
        panel + 20.0
    )
    .unwrap();
    let mut y = panel + 42.0;
    for d in &diagnostics {
        let r = range(&d["range"]);
        let message = d["message"].as_str().unwrap();
        for (i, line) in message.lines().enumerate() {
            let text = if i == 0 {
                format!(
                    "{} {}  netc({}) [Ln {}, Col {}]",
                    if d["severity"] == json!(1) {
                        "⊗"
                    } else {
                        "⚠"
                    },
                    line,
                    d["code"].as_str().unwrap_or(""),
                    r.0 + 1,
                    r.1 + 1
                )
            } else {
                format!("    {line}")
            };
            writeln!(
                svg,
                r##"<text x="14" y="{y}" fill="{}" font-size="13" xml:space="preserve">{}</text>"##,
                if i == 0 { "#E7E7E7" } else { "#A0A0A0" },
                esc(&text)
            )
            .unwrap();
            y += 18.0;
        }
        for related in d["relatedInformation"].as_array().into_iter().flatten() {
            let rr = range(&related["location"]["range"]);
            writeln!(
                svg,
                r##"<text x="14" y="{y}" fill="#A0A0A0" font-size="13" xml:space="preserve">{}</text>"##,
                esc(&format!(
                    "    ↳ {} [Ln {}, Col {}]",
                    related["message"].as_str().unwrap(),
                    rr.0 + 1,
                    rr.1 + 1
                ))
            )
            .unwrap();
            y += 18.0;
        }
    }

    // The hover box, below the hovered word.
    let hover = hover_lines(&hover, 74);
    let box_x = x_of(hover_col as usize) - 20.0;
    let box_y = y_of(hover_line as usize) + 8.0;
    let box_w = 74.0 * 7.6 + 24.0;
    let box_h = hover.len() as f64 * 17.0 + 16.0;
    writeln!(
        svg,
        r##"<rect x="{box_x}" y="{box_y}" width="{box_w}" height="{box_h}" fill="#252526" stroke="#454545"/>"##
    )
    .unwrap();
    for (i, (text, code)) in hover.iter().enumerate() {
        writeln!(
            svg,
            r##"<text x="{}" y="{}" fill="{}" font-size="12.5" xml:space="preserve">{}</text>"##,
            box_x + 12.0,
            box_y + 20.0 + i as f64 * 17.0,
            if *code { "#DCDCAA" } else { "#CCCCCC" },
            esc(text)
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");

    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/editor.svg");
    std::fs::write(out, svg).unwrap();
}
