//! "Did you mean ...?" suggestions for misspelled names.

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // One edit in a two-letter name makes a different name, not a typo.
    let limit = name.chars().count() / 3;
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .filter(|c| limit > 0 || c.eq_ignore_ascii_case(name))
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, c)| d <= limit.max(1) || c.starts_with(name) && name.len() >= 3)
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters, treating an adjacent swap as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 8 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        assert_eq!(
            closest("conv2", ["conv2d", "conv_transpose2d", "linear"]),
            Some("conv2d")
        );
        assert_eq!(closest("lienar", ["conv2d", "linear"]), Some("linear"));
        assert_eq!(closest("xyz", ["conv2d", "linear"]), None);
        assert_eq!(closest("h", ["A", "x"]), None);
        assert_eq!(edit_distance("kernal", "kernel"), 1);
    }
}
