//! `text(path, length)`: a character-level corpus for language models.
//!
//! The vocabulary is the sorted set of distinct characters (Unicode scalar values) of the source
//! corpus; id `k` is the `k`-th smallest character. Samples are consecutive, non-overlapping
//! windows of `length` characters (`ids[i·L .. i·L + L]`), and each sample's target is the same
//! window shifted by one character (`ids[i·L + 1 .. i·L + L + 1]`), the next-character
//! prediction char-rnn and nanoGPT train on. The input window goes to the data item's feature
//! field, the targets to its label field (a field named `target` or `label`).
//!
//! `split val: F` holds out the **last** `round(F·N)` characters of the corpus (its seed is not
//! used): neighbouring windows overlap in content, so a random split would leak validation text
//! into training. A `test` corpus is encoded with the source's vocabulary.

use std::collections::BTreeSet;
use std::path::Path;

use netc_compiler::check::DataInfo;

use super::{
    Column, DataError, Features, FieldDecl, Loaded, Locator, Raw, Reshape, Roles, Splits, Staged,
    read_text,
};

pub(crate) fn load(
    info: &DataInfo,
    decls: &[FieldDecl],
    roles: &Roles,
    base_dir: &Path,
) -> Result<Splits, DataError> {
    let source = info.source.as_ref().expect("checked by the caller");
    let path = base_dir.join(
        source
            .args
            .paths("path")
            .into_iter()
            .next()
            .unwrap_or_default(),
    );
    let length = source.args.dim("length").as_known().unwrap_or(0).max(1) as usize;
    let text = read_text(&path)?;
    if text.is_empty() {
        return Err(DataError::at(&path, "the corpus is empty"));
    }
    let chars: Vec<char> = text.chars().collect();
    let vocab: Vec<char> = chars
        .iter()
        .copied()
        .collect::<BTreeSet<char>>()
        .into_iter()
        .collect();
    for i in [roles.features, roles.labels].into_iter().flatten() {
        let d = &decls[i];
        if let Some(c) = d.classes
            && c < vocab.len()
        {
            return Err(DataError::at(
                &path,
                format!(
                    "the corpus has {} distinct characters, but field `{}` is declared with {c} classes",
                    vocab.len(),
                    d.name
                ),
            ));
        }
    }
    let ids: Vec<i64> = chars
        .iter()
        .map(|c| {
            vocab
                .binary_search(c)
                .expect("every character is in the vocabulary") as i64
        })
        .collect();
    let n = ids.len();
    let cut = match info.split {
        Some((fraction, _)) => n - ((fraction * n as f64).round() as usize).min(n),
        None => n,
    };
    let train = windows(&ids[..cut], length, &path, 0, || {
        if cut == n {
            format!("the corpus has {n} characters")
        } else {
            format!("the training part (the first {cut} of {n} characters)")
        }
    })?;
    let val = if cut < n {
        Some(windows(&ids[cut..], length, &path, cut, || {
            format!(
                "the validation part (the last {} of {n} characters)",
                n - cut
            )
        })?)
    } else {
        None
    };
    let test = match &info.test {
        Some(spec) => {
            let test_path = base_dir.join(
                spec.args
                    .paths("path")
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
            );
            let test_text = read_text(&test_path)?;
            let mut test_ids = Vec::with_capacity(test_text.len());
            for (l, line) in test_text.split_inclusive('\n').enumerate() {
                for c in line.chars() {
                    let id = vocab.binary_search(&c).map_err(|_| {
                        DataError::at(
                            &test_path,
                            format!(
                                "line {}: the character {c:?} does not occur in the training corpus {}",
                                l + 1,
                                path.display()
                            ),
                        )
                    })?;
                    test_ids.push(id as i64);
                }
            }
            let total = test_ids.len();
            Some(windows(&test_ids, length, &test_path, 0, || {
                format!("the corpus has {total} characters")
            })?)
        }
        None => None,
    };
    let spec = source;
    let finish = |loaded: Loaded| Staged::new(loaded, decls, roles, spec)?.finish(None);
    Ok(Splits {
        train: finish(train)?,
        val: val.map(finish).transpose()?,
        test: test.map(finish).transpose()?,
        vocab: Some(vocab.iter().map(char::to_string).collect()),
    })
}

/// Non-overlapping windows of `length` ids and their next-id targets. `start` is the position
/// of `ids[0]` in the corpus (for messages); `what` describes the text for the too-short error.
fn windows(
    ids: &[i64],
    length: usize,
    path: &Path,
    start: usize,
    what: impl Fn() -> String,
) -> Result<Loaded, DataError> {
    if ids.len() < length + 1 {
        return Err(DataError::at(
            path,
            format!(
                "{}, too few for one sample of {length} characters and the character after it",
                what()
            ),
        ));
    }
    let count = (ids.len() - 1) / length;
    let mut inputs = Vec::with_capacity(count * length);
    let mut targets = Vec::with_capacity(count * length);
    for i in 0..count {
        inputs.extend_from_slice(&ids[i * length..i * length + length]);
        targets.extend_from_slice(&ids[i * length + 1..i * length + length + 1]);
    }
    let locate = Locator::Windows {
        path: path.to_path_buf(),
        start,
        length,
    };
    Ok(Loaded {
        len: count,
        features: Features::Dense(Column {
            values: Raw::I64(inputs),
            dims: vec![length],
            path: path.to_path_buf(),
            what: format!("samples are {length} characters"),
            reshape: Reshape::Exact,
            locate: locate.clone(),
        }),
        labels: Some(Column {
            values: Raw::I64(targets),
            dims: vec![length],
            path: path.to_path_buf(),
            what: format!("targets are the next {length} characters"),
            reshape: Reshape::Exact,
            locate,
        }),
    })
}
