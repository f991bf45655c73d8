//! Tensor dimensions: integers, or symbols such as `B` and `T` bound by a model's inputs.
//!
//! A [`Dim`] is a polynomial with integer coefficients over symbols, kept in a normal form so
//! two dims are equal exactly when their normal forms are. Division that does not come out
//! exact becomes an opaque atom (`(T - 4)/2`), which keeps shapes such as a strided conv over a
//! symbolic length printable and comparable without a full algebra system.

use std::collections::BTreeMap;
use std::fmt;

/// A monomial: symbol names (atoms) in sorted order, with repetition for powers.
type Monomial = Vec<String>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim {
    /// Monomial -> coefficient; never holds a zero coefficient. The empty monomial is the constant.
    terms: BTreeMap<Monomial, i64>,
}

/// Arithmetic on dims went outside what a dimension can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimError {
    Overflow,
    DivideByZero,
}

impl Dim {
    pub fn known(n: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if n != 0 {
            terms.insert(Vec::new(), n);
        }
        Dim { terms }
    }

    pub fn symbol(name: &str) -> Dim {
        Dim {
            terms: BTreeMap::from([(vec![name.to_string()], 1)]),
        }
    }

    /// The value, when the dim does not depend on any symbol.
    pub fn as_known(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    pub fn is_symbolic(&self) -> bool {
        self.as_known().is_none()
    }

    pub fn add(&self, other: &Dim) -> Result<Dim, DimError> {
        let mut terms = self.terms.clone();
        for (m, c) in &other.terms {
            let entry = terms.entry(m.clone()).or_insert(0);
            *entry = entry.checked_add(*c).ok_or(DimError::Overflow)?;
        }
        terms.retain(|_, c| *c != 0);
        Ok(Dim { terms })
    }

    pub fn neg(&self) -> Result<Dim, DimError> {
        let terms = self
            .terms
            .iter()
            .map(|(m, c)| Ok((m.clone(), c.checked_neg().ok_or(DimError::Overflow)?)))
            .collect::<Result<_, _>>()?;
        Ok(Dim { terms })
    }

    pub fn sub(&self, other: &Dim) -> Result<Dim, DimError> {
        self.add(&other.neg()?)
    }

    pub fn mul(&self, other: &Dim) -> Result<Dim, DimError> {
        let mut terms: BTreeMap<Monomial, i64> = BTreeMap::new();
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let mut m: Monomial = ma.iter().chain(mb).cloned().collect();
                m.sort();
                let c = ca.checked_mul(*cb).ok_or(DimError::Overflow)?;
                let entry = terms.entry(m).or_insert(0);
                *entry = entry.checked_add(c).ok_or(DimError::Overflow)?;
            }
        }
        terms.retain(|_, c| *c != 0);
        Ok(Dim { terms })
    }

    /// Floor division, as a conv or pool output size needs. Exact when both are known or when a
    /// known divisor divides every coefficient; otherwise an opaque atom.
    pub fn div(&self, other: &Dim) -> Result<Dim, DimError> {
        match (self.as_known(), other.as_known()) {
            (_, Some(0)) => Err(DimError::DivideByZero),
            (Some(a), Some(b)) => Ok(Dim::known(a.div_euclid(b))),
            (None, Some(b)) if self.terms.values().all(|c| c % b == 0) => Ok(Dim {
                terms: self.terms.iter().map(|(m, c)| (m.clone(), c / b)).collect(),
            }),
            _ if self == other => Ok(Dim::known(1)),
            _ => Ok(Dim::symbol(&format!("({})/{}", self, other.atom_text()))),
        }
    }

    pub fn rem(&self, other: &Dim) -> Result<Dim, DimError> {
        match (self.as_known(), other.as_known()) {
            (_, Some(0)) => Err(DimError::DivideByZero),
            (Some(a), Some(b)) => Ok(Dim::known(a.rem_euclid(b))),
            (None, Some(b)) if self.terms.values().all(|c| c % b == 0) => Ok(Dim::known(0)),
            _ => Ok(Dim::symbol(&format!("({})%{}", self, other.atom_text()))),
        }
    }

    /// Replace symbols by dims (binding `B` and `T` at a call site).
    pub fn substitute(&self, bindings: &BTreeMap<String, Dim>) -> Result<Dim, DimError> {
        let mut out = Dim::known(0);
        for (m, c) in &self.terms {
            let mut term = Dim::known(*c);
            for atom in m {
                let factor = bindings
                    .get(atom)
                    .cloned()
                    .unwrap_or_else(|| Dim::symbol(atom));
                term = term.mul(&factor)?;
            }
            out = out.add(&term)?;
        }
        Ok(out)
    }

    /// Symbols this dim mentions (opaque atoms included).
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.terms.keys().flatten().map(String::as_str)
    }

    /// The single symbol this dim is, if it is exactly one symbol (`B`).
    pub fn as_symbol(&self) -> Option<&str> {
        match self.terms.iter().next() {
            Some((m, 1)) if self.terms.len() == 1 && m.len() == 1 => Some(&m[0]),
            _ => None,
        }
    }

    fn atom_text(&self) -> String {
        if self.terms.len() <= 1 && self.terms.keys().all(|m| m.len() <= 1) {
            self.to_string()
        } else {
            format!("({self})")
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Highest degree first, so `2*T + 1` rather than `1 + 2*T`.
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|(ma, _), (mb, _)| mb.len().cmp(&ma.len()).then(ma.cmp(mb)));
        for (i, (m, c)) in terms.into_iter().enumerate() {
            let (sign, abs) = if *c < 0 {
                ("-", c.unsigned_abs())
            } else {
                ("+", c.unsigned_abs())
            };
            match (i, sign) {
                (0, "-") => f.write_str("-")?,
                (0, _) => {}
                (_, s) => write!(f, " {s} ")?,
            }
            let atoms = m.join("*");
            match (abs, atoms.is_empty()) {
                (_, true) => write!(f, "{abs}")?,
                (1, false) => f.write_str(&atoms)?,
                (_, false) => write!(f, "{abs}*{atoms}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Dim {
        Dim::symbol(s)
    }

    #[test]
    fn arithmetic_normalises() {
        let b = sym("B");
        let two_b = b.add(&b).unwrap();
        assert_eq!(two_b, Dim::known(2).mul(&b).unwrap());
        assert_eq!(two_b.to_string(), "2*B");
        assert_eq!(two_b.sub(&b).unwrap(), b);
        assert_eq!(b.mul(&sym("T")).unwrap().to_string(), "B*T");
        assert_eq!(b.add(&Dim::known(1)).unwrap().to_string(), "B + 1");
        assert_eq!(Dim::known(7).div(&Dim::known(2)).unwrap(), Dim::known(3));
    }

    #[test]
    fn inexact_division_is_opaque_but_stable() {
        let t = sym("T").sub(&Dim::known(4)).unwrap();
        let a = t.div(&Dim::known(2)).unwrap();
        assert_eq!(a.to_string(), "(T - 4)/2");
        assert_eq!(a, t.div(&Dim::known(2)).unwrap());
        let exact = Dim::known(4)
            .mul(&sym("T"))
            .unwrap()
            .div(&Dim::known(2))
            .unwrap();
        assert_eq!(exact.to_string(), "2*T");
    }

    #[test]
    fn substitution_binds_symbols() {
        let d = sym("B").mul(&Dim::known(3)).unwrap();
        let bind = BTreeMap::from([("B".to_string(), Dim::known(5))]);
        assert_eq!(d.substitute(&bind).unwrap(), Dim::known(15));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let big = Dim::known(i64::MAX);
        assert_eq!(big.mul(&Dim::known(2)), Err(DimError::Overflow));
        assert_eq!(big.add(&Dim::known(1)), Err(DimError::Overflow));
        assert_eq!(
            Dim::known(1).div(&Dim::known(0)),
            Err(DimError::DivideByZero)
        );
    }
}
