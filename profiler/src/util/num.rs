//! The one ratio every figure uses. Pure.

/// `num / den` when both are finite and `den > 0`; `None` otherwise (callers that show 0 for
/// "nothing to divide by" say so with `unwrap_or(0.0)`).
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::ratio;

    #[test]
    fn divides_only_by_a_positive_finite_number() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, -1.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(1.0, f64::INFINITY), None);
    }
}
