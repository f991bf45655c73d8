//! `sentences(path, vocab, length)`: labelled sentences, `sentence<TAB>label` per line (the UCI
//! Sentiment Labelled Sentences layout), as word ids.
//!
//! Each line is split at its **last** tab (a sentence may contain tabs in other corpora; the
//! label never does), the sentence trimmed, and no CSV quoting applied: the UCI files contain
//! bare `"` that a CSV reader would swallow across lines. Several files are read in the order
//! given. Words are lowercased runs of letters and digits, keeping an apostrophe between two of
//! them (`don't`). The vocabulary is built from the **training split only**, so the validation
//! score is not flattered by words the model could not have seen.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{
    Column, DataError, Features, Field, FieldDecl, Loaded, Locator, Raw, Reshape, read_text,
};

/// Id of the padding token, appended after a short sentence.
pub const PAD: i64 = 0;
/// Id shared by every word outside the vocabulary.
pub const UNKNOWN: i64 = 1;

pub(crate) fn load(paths: &[PathBuf], length: usize) -> Result<Loaded, DataError> {
    let mut words = Vec::new();
    let mut labels = Vec::new();
    let mut at = Vec::new();
    for (f, path) in paths.iter().enumerate() {
        let text = read_text(path)?;
        for (l, line) in text.lines().enumerate() {
            let line_no = l + 1;
            if line.trim().is_empty() {
                continue;
            }
            let Some(tab) = line.rfind('\t') else {
                return Err(DataError::at(
                    path,
                    format!("line {line_no}: expected `sentence<TAB>label`, found no tab"),
                ));
            };
            let label_text = line[tab + 1..].trim();
            let label: i64 = label_text.parse().map_err(|_| {
                DataError::at(
                    path,
                    format!(
                        "line {line_no}: expected an integer label after the last tab, found `{label_text}`"
                    ),
                )
            })?;
            words.push(tokenize(line[..tab].trim()));
            labels.push(label);
            at.push((f as u32, line_no as u32));
        }
    }
    if words.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(DataError {
            message: format!(
                "{}: no sentences (expected lines of `sentence<TAB>label`)",
                names.join(", ")
            ),
            path: paths.first().cloned(),
        });
    }
    let len = words.len();
    Ok(Loaded {
        len,
        features: Features::Words(words, length),
        labels: Some(Column {
            values: Raw::I64(labels),
            dims: Vec::new(),
            path: paths.first().cloned().unwrap_or_default(),
            what: "each line has one label".to_string(),
            reshape: Reshape::Scalar,
            locate: Locator::Lines {
                files: paths.to_vec(),
                at,
            },
        }),
    })
}

/// Lowercased words: runs of alphanumeric characters, with an apostrophe kept when it joins two
/// of them (`don't`, `rock'n'roll`); everything else separates words.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let chars: Vec<char> = sentence.chars().flat_map(char::to_lowercase).collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        // An apostrophe stays only between two letters or digits.
        let joins =
            c == '\'' && !word.is_empty() && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || joins {
            word.push(c);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A word vocabulary: id 0 is padding, id 1 unknown, then the most frequent words of the
/// training split (ties broken alphabetically, so the ids do not depend on hash order).
#[derive(Clone, Debug)]
pub(crate) struct Vocab {
    /// `tokens[id]`: `<pad>`, `<unk>`, then the words.
    pub tokens: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Vocab {
    pub(crate) fn build(
        sentences: &[Vec<String>],
        size: i64,
        data: &str,
    ) -> Result<Vocab, DataError> {
        if size < 3 {
            return Err(DataError::new(format!(
                "data `{data}`: `vocab: {size}` leaves no room for words after the padding and unknown ids (0 and 1); use at least 3"
            )));
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for w in sentences.iter().flatten() {
            *counts.entry(w.as_str()).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        ranked.truncate(size as usize - 2);
        let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
        tokens.extend(ranked.iter().map(|(w, _)| w.to_string()));
        let ids = tokens
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, w)| (w.clone(), i as i64))
            .collect();
        Ok(Vocab { tokens, ids })
    }

    /// The ids of a sentence, cut or padded at the end to `length`.
    pub(crate) fn ids(&self, words: &[String], length: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = words
            .iter()
            .take(length)
            .map(|w| self.ids.get(w).copied().unwrap_or(UNKNOWN))
            .collect();
        ids.resize(length, PAD);
        ids
    }

    /// The token field of a set of sentences.
    pub(crate) fn encode(
        &self,
        decl: &FieldDecl,
        sentences: &[Vec<String>],
    ) -> Result<Field, DataError> {
        let length = decl.base_dims.first().copied().unwrap_or(0);
        if let Some(c) = decl.one_hot
            && c < self.tokens.len()
        {
            return Err(DataError::new(format!(
                "field `{}`: `one_hot({c})` is smaller than the vocabulary ({} ids)",
                decl.name,
                self.tokens.len()
            )));
        }
        let ids: Vec<i64> = sentences.iter().flat_map(|s| self.ids(s, length)).collect();
        let col = Column {
            values: Raw::I64(ids),
            dims: vec![length],
            path: PathBuf::new(),
            what: format!("sentences are {length} token ids"),
            reshape: Reshape::Exact,
            locate: Locator::Windows {
                path: PathBuf::new(),
                start: 0,
                length,
            },
        };
        decl.dense(&col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_inner_apostrophes() {
        assert_eq!(
            tokenize("Don't buy it -- 'seriously', it's BAD!! 10/10 café"),
            vec![
                "don't",
                "buy",
                "it",
                "seriously",
                "it's",
                "bad",
                "10",
                "10",
                "café"
            ]
        );
        assert!(tokenize(" ... ").is_empty());
    }

    #[test]
    fn vocabulary_ranks_by_frequency_then_alphabet() {
        let s = vec![tokenize("b a c a"), tokenize("c b a d")];
        let v = Vocab::build(&s, 4, "d").unwrap();
        assert_eq!(v.tokens, vec!["<pad>", "<unk>", "a", "b"]);
        assert_eq!(v.ids(&tokenize("a b c"), 5), vec![2, 3, 1, 0, 0]);
        assert_eq!(v.ids(&tokenize("a b c"), 2), vec![2, 3]);
    }
}
