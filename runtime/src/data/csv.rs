//! `csv(path, label, header)`: numeric CSV, one sample per row, one column of which is the label.
//!
//! Fields are separated by commas and may be padded with spaces or wrapped in double quotes;
//! every field must be a finite number. Every row must have as many columns as the first one,
//! and blank lines are skipped. The label column is never part of the features (even when the
//! data item declares no label field). scikit-learn's iris, wine and breast-cancer files start
//! with a `n_samples,n_features,<class names>` line: read them with `header: true`.

use std::path::Path;

use super::{Column, DataError, Features, Loaded, Locator, Raw, Reshape, read_text};

pub(crate) fn load(path: &Path, label: i64, header: bool) -> Result<Loaded, DataError> {
    let text = read_text(path)?;
    let mut features: Vec<f64> = Vec::new();
    let mut labels: Vec<f64> = Vec::new();
    let mut at: Vec<(u32, u32)> = Vec::new();
    // Columns of the first data row, its line, and the resolved label column.
    let mut shape: Option<(usize, usize, usize)> = None;
    for (l, line) in text.lines().enumerate().skip(usize::from(header)) {
        let line_no = l + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        let (columns, first_line, label_col) = match shape {
            Some(s) => s,
            None => {
                let n = cells.len();
                let col = if label < 0 { n as i64 + label } else { label };
                if !(0..n as i64).contains(&col) {
                    return Err(DataError::at(
                        path,
                        format!(
                            "line {line_no}: the label column is {label}, but the row has {n} columns (0 to {})",
                            n - 1
                        ),
                    ));
                }
                let s = (n, line_no, col as usize);
                shape = Some(s);
                s
            }
        };
        if cells.len() != columns {
            return Err(DataError::at(
                path,
                format!(
                    "line {line_no}: expected {columns} columns like line {first_line}, found {}",
                    cells.len()
                ),
            ));
        }
        for (c, cell) in cells.iter().enumerate() {
            let v = number(cell).map_err(|(found, word)| {
                let hint = if line_no == 1 && !header && word {
                    " (if the first line holds column names, write `header: true`)"
                } else {
                    ""
                };
                DataError::at(
                    path,
                    format!(
                        "line {line_no}, column {}: expected a number, found {found}{hint}",
                        c + 1
                    ),
                )
            })?;
            if c == label_col {
                labels.push(v);
            } else {
                features.push(v);
            }
        }
        at.push((0, line_no as u32));
    }
    let Some((columns, _, _)) = shape else {
        return Err(DataError::at(path, "no data rows"));
    };
    let len = labels.len();
    let locate = Locator::Lines {
        files: vec![path.to_path_buf()],
        at,
    };
    Ok(Loaded {
        len,
        features: Features::Dense(Column {
            values: Raw::F64(features),
            dims: vec![columns - 1],
            path: path.to_path_buf(),
            what: format!(
                "rows have {} feature columns ({columns} columns less the label)",
                columns - 1
            ),
            reshape: Reshape::Count,
            locate: locate.clone(),
        }),
        labels: Some(Column {
            values: Raw::F64(labels),
            dims: Vec::new(),
            path: path.to_path_buf(),
            what: "each row has one label column".to_string(),
            reshape: Reshape::Scalar,
            locate,
        }),
    })
}

/// One cell as a finite number; the error describes what was found instead, and whether it
/// looks like a word (a column name).
fn number(cell: &str) -> Result<f64, (String, bool)> {
    let mut s = cell.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s = s[1..s.len() - 1].trim();
    }
    if s.is_empty() {
        return Err(("an empty field".to_string(), false));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err((
            format!("`{s}` (missing and infinite values are not supported)"),
            false,
        )),
        Err(_) => Err((format!("`{s}`"), true)),
    }
}
