//! Document symbols: the outline of a file (consts, models and blocks with their inputs and
//! bindings, data sets with their fields, training runs with their steps), from the index.

use lsp_types::{DocumentSymbol, SymbolKind};

use crate::document::Snap;
use crate::index::DefKind;

/// The top-level symbols of a file with their children, from the index (so items that did not
/// parse are missing, and everything that did is there).
pub(crate) fn outline(snap: &Snap) -> Vec<DocumentSymbol> {
    let index = &snap.a.index;
    (0..index.defs.len())
        .filter(|&d| index.defs[d].parent.is_none() && index.defs[d].kind != DefKind::Dim)
        .map(|d| symbol(snap, d))
        .collect()
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must be written out; `tags` replaces it.
fn symbol(snap: &Snap, d: usize) -> DocumentSymbol {
    let index = &snap.a.index;
    let def = &index.defs[d];
    let kind = match def.kind {
        DefKind::Const => SymbolKind::CONSTANT,
        DefKind::Model => SymbolKind::CLASS,
        DefKind::Block => SymbolKind::FUNCTION,
        DefKind::Data => SymbolKind::STRUCT,
        DefKind::Train => SymbolKind::MODULE,
        DefKind::Step => SymbolKind::METHOD,
        DefKind::Field => SymbolKind::FIELD,
        DefKind::Input => SymbolKind::VARIABLE,
        DefKind::HParam => SymbolKind::TYPE_PARAMETER,
        DefKind::Let => SymbolKind::VARIABLE,
        DefKind::Dim => SymbolKind::TYPE_PARAMETER,
    };
    let detail = match def.kind {
        DefKind::Model => snap.a.analysis.models.get(&def.name).map(|m| {
            let inputs: Vec<String> = m.inputs.iter().map(|(_, t)| t.to_string()).collect();
            match &m.output {
                Some(out) => format!("({}) -> {out}", inputs.join(", ")),
                None => format!("({})", inputs.join(", ")),
            }
        }),
        _ => {
            let types = snap.types_at(def.span);
            (!types.is_empty()).then(|| {
                types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
        }
    };
    let children: Vec<DocumentSymbol> = index
        .children(d)
        .filter(|&c| index.defs[c].kind != DefKind::Dim)
        .map(|c| symbol(snap, c))
        .collect();
    DocumentSymbol {
        name: def.name.clone(),
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: snap.lines.range(def.full.to(def.span)),
        selection_range: snap.lines.range(def.span),
        children: (!children.is_empty()).then_some(children),
    }
}
