//! The canary judge: is a canary's metric worse than its baseline's?
//!
//! Pure statistics over two samples of one metric (say, request latencies
//! on the canary hosts and on the others over the same window):
//!
//! * **Mann-Whitney U** with the normal approximation, tie correction and
//!   continuity correction, computed as SciPy's
//!   `mannwhitneyu(canary, baseline, alternative=..., method="asymptotic")`
//!   does (the tests hold it to SciPy's own values, 1e-9). It compares
//!   ranks, not means, so one outlier or a pile of zeros (sparse error
//!   counts) does not fool it.
//! * **Effect size**: the rank-biserial correlation `2·U/(n₁n₂) − 1` in the
//!   "worse" direction (1: every canary value is worse than every baseline
//!   value; 0: no difference). A tiny shift that many samples make
//!   "significant" is not a reason to roll back.
//! * **Variance check**: the ratio of the canary's sample variance to the
//!   baseline's, and the Brown-Forsythe test (Levene's test centred on the
//!   median, SciPy's `levene(..., center="median")`) for the explanation.
//!   A canary with the same median and a much wider spread is not passed.
//! * **Verdict**: `inconclusive` with too few samples; `fail` when the
//!   canary is worse (one-sided p below `alpha`) by at least `min_effect`;
//!   `marginal` when it is worse by less, or its variance grew past
//!   `max_variance_ratio`; else `pass`. Inconclusive and marginal are for a
//!   person to decide: they never roll back by themselves.

use std::f64::consts::SQRT_2;

/// Which alternative hypothesis, as SciPy names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// The canary's distribution differs from the baseline's.
    TwoSided,
    /// The canary's values tend to be greater.
    Greater,
    /// The canary's values tend to be less.
    Less,
}

/// A Mann-Whitney U test of `canary` against `baseline`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the canary (SciPy's `statistic`): the number of (canary,
    /// baseline) pairs where the canary is greater, ties counting half.
    pub u: f64,
    /// The standard normal deviate (with continuity correction).
    pub z: f64,
    /// The p-value for the alternative asked.
    pub p: f64,
}

/// The Mann-Whitney U test, asymptotic (normal approximation with tie and
/// continuity corrections). `None` when a sample is empty or holds a value
/// that is not finite.
pub fn mann_whitney_u(
    canary: &[f64],
    baseline: &[f64],
    alternative: Alternative,
) -> Option<MannWhitney> {
    let (n1, n2) = (canary.len(), baseline.len());
    if n1 == 0 || n2 == 0 || canary.iter().chain(baseline).any(|v| !v.is_finite()) {
        return None;
    }
    let all: Vec<f64> = canary.iter().chain(baseline).copied().collect();
    let (ranks, tie_term) = ranks(&all);
    let r1: f64 = ranks[..n1].iter().sum();
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let n = n1f + n2f;
    let mu = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    // Every value tied: no evidence either way (SciPy's z is -inf, p 1).
    let z = if variance > 0.0 {
        (u - mu - 0.5) / variance.sqrt()
    } else {
        f64::NEG_INFINITY
    };
    let p = (normal_sf(z) * factor).clamp(0.0, 1.0);
    Some(MannWhitney { u: u1, z, p })
}

/// Average ranks (1-based) and the tie term Σ(t³ − t) over groups of ties.
fn ranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Positions i..=j share the average of ranks i+1..=j+1.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    (ranks, tie_term)
}

/// The standard normal survival function, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / SQRT_2)
}

/// The Brown-Forsythe test of equal variances (Levene's, centred on each
/// group's median).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrownForsythe {
    pub statistic: f64,
    pub p: f64,
}

/// Brown-Forsythe for two samples; `None` with fewer than two values in
/// either, or when neither spreads at all.
pub fn brown_forsythe(a: &[f64], b: &[f64]) -> Option<BrownForsythe> {
    if a.len() < 2 || b.len() < 2 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let deviations = |xs: &[f64]| -> Vec<f64> {
        let m = median(xs);
        xs.iter().map(|x| (x - m).abs()).collect()
    };
    let groups = [deviations(a), deviations(b)];
    let n: f64 = groups.iter().map(|g| g.len() as f64).sum();
    let k = groups.len() as f64;
    let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect();
    let grand = groups.iter().flatten().sum::<f64>() / n;
    let between: f64 = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.len() as f64 * (m - grand).powi(2))
        .sum();
    let within: f64 = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.iter().map(|z| (z - m).powi(2)).sum::<f64>())
        .sum();
    if within <= 0.0 {
        return None;
    }
    let statistic = (n - k) / (k - 1.0) * between / within;
    Some(BrownForsythe {
        statistic,
        p: f_sf(statistic, k - 1.0, n - k),
    })
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The median (the mean of the two middle values for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The sample variance (n − 1 in the denominator).
pub fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

/// P(F > f) for the F distribution with `d1` and `d2` degrees of freedom.
fn f_sf(f: f64, d1: f64, d2: f64) -> f64 {
    if f <= 0.0 {
        return 1.0;
    }
    incomplete_beta(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f))
}

/// The regularised incomplete beta function I_x(a, b), by its continued
/// fraction (modified Lentz), on the side where it converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln())
            .exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPSILON: f64 = 1e-16;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// Which way is worse for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Worse {
    /// Higher is worse (latency, error rate): the default.
    #[default]
    Higher,
    /// Lower is worse (throughput, success rate).
    Lower,
}

/// How strict the judge is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judge {
    pub worse: Worse,
    /// Fewer values than this in either sample: inconclusive.
    pub min_samples: usize,
    /// One-sided p-value below which the canary is worse.
    pub alpha: f64,
    /// Rank-biserial effect at or above which "worse" is a failure.
    pub min_effect: f64,
    /// Canary variance over baseline variance above which the spread grew.
    pub max_variance_ratio: f64,
}

impl Default for Judge {
    fn default() -> Self {
        Judge {
            worse: Worse::Higher,
            min_samples: 10,
            alpha: 0.05,
            min_effect: 0.3,
            max_variance_ratio: 2.0,
        }
    }
}

/// The judge's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Pass,
    /// Worse, but by little, or more spread: for a person to decide.
    Marginal,
    Fail,
    /// Not enough data to say: for a person to decide.
    Inconclusive,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Pass => "pass",
            Call::Marginal => "marginal",
            Call::Fail => "fail",
            Call::Inconclusive => "inconclusive",
        }
    }

    /// The call as a canary signal's value, which conditions compare with
    /// the words `pass`, `marginal`, `fail` and `inconclusive`.
    pub fn code(self) -> f64 {
        match self {
            Call::Pass => 0.0,
            Call::Marginal => 1.0,
            Call::Fail => 2.0,
            Call::Inconclusive => 3.0,
        }
    }

    /// The call a condition word names.
    pub fn from_word(word: &str) -> Option<Call> {
        [Call::Pass, Call::Marginal, Call::Fail, Call::Inconclusive]
            .into_iter()
            .find(|c| c.as_str() == word)
    }

    /// Only a failure may roll back by itself; marginal and inconclusive
    /// wait for a person.
    pub fn may_roll_back(self) -> bool {
        self == Call::Fail
    }
}

/// What the judge found, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub call: Call,
    /// One sentence for people.
    pub reason: String,
    pub canary_n: usize,
    pub baseline_n: usize,
    pub canary_median: f64,
    pub baseline_median: f64,
    /// The one-sided test in the "worse" direction.
    pub test: Option<MannWhitney>,
    /// Rank-biserial correlation, positive when the canary is worse.
    pub effect: Option<f64>,
    pub variance_ratio: Option<f64>,
    pub spread: Option<BrownForsythe>,
    /// The canary's values judged (finite ones), for charts.
    pub canary: Vec<f64>,
    /// The baseline's values judged.
    pub baseline: Vec<f64>,
}

impl Judgement {
    /// The call, its reason and the figures behind it, in one line.
    pub fn explain(&self) -> String {
        let mut text = format!(
            "{}: {} (canary median {:.4} of {}, baseline median {:.4} of {}",
            self.call.as_str(),
            self.reason,
            self.canary_median,
            self.canary_n,
            self.baseline_median,
            self.baseline_n
        );
        if let Some(test) = self.test {
            text.push_str(&format!("; U {} p {:.3e}", test.u, test.p));
        }
        if let Some(effect) = self.effect {
            text.push_str(&format!("; effect {effect:.2}"));
        }
        if let Some(ratio) = self.variance_ratio {
            text.push_str(&format!("; variance ratio {ratio:.2}"));
        }
        if let Some(spread) = self.spread {
            text.push_str(&format!(
                "; Brown-Forsythe W {:.3} p {:.3e}",
                spread.statistic, spread.p
            ));
        }
        text.push(')');
        text
    }
}

impl Judge {
    /// Judges `canary` against `baseline` (values that are not finite are
    /// left out).
    pub fn judge(&self, canary: &[f64], baseline: &[f64]) -> Judgement {
        let canary: Vec<f64> = canary.iter().copied().filter(|v| v.is_finite()).collect();
        let baseline: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
        let mut judgement = Judgement {
            call: Call::Inconclusive,
            reason: String::new(),
            canary_n: canary.len(),
            baseline_n: baseline.len(),
            canary_median: median(&canary),
            baseline_median: median(&baseline),
            test: None,
            effect: None,
            variance_ratio: None,
            spread: None,
            canary: canary.clone(),
            baseline: baseline.clone(),
        };
        let min = self.min_samples.max(2);
        if canary.len() < min || baseline.len() < min {
            judgement.reason = format!(
                "too few samples: {} canary and {} baseline values, {min} of each needed",
                canary.len(),
                baseline.len()
            );
            return judgement;
        }
        let alternative = match self.worse {
            Worse::Higher => Alternative::Greater,
            Worse::Lower => Alternative::Less,
        };
        let Some(test) = mann_whitney_u(&canary, &baseline, alternative) else {
            judgement.reason = "the samples cannot be compared".into();
            return judgement;
        };
        let pairs = canary.len() as f64 * baseline.len() as f64;
        let rank_biserial = 2.0 * test.u / pairs - 1.0;
        let effect = match self.worse {
            Worse::Higher => rank_biserial,
            Worse::Lower => -rank_biserial,
        };
        let (vc, vb) = (variance(&canary), variance(&baseline));
        let ratio = if vb > 0.0 {
            vc / vb
        } else if vc > 0.0 {
            f64::INFINITY
        } else {
            1.0
        };
        judgement.test = Some(test);
        judgement.effect = Some(effect);
        judgement.variance_ratio = Some(ratio);
        judgement.spread = brown_forsythe(&canary, &baseline);
        let worse = test.p < self.alpha;
        (judgement.call, judgement.reason) = if worse && effect >= self.min_effect {
            (
                Call::Fail,
                format!(
                    "canary worse: p = {:.2e} < {}, effect {effect:.2} ≥ {}",
                    test.p, self.alpha, self.min_effect
                ),
            )
        } else if worse {
            (
                Call::Marginal,
                format!(
                    "canary slightly worse: p = {:.2e} < {}, but effect {effect:.2} < {}",
                    test.p, self.alpha, self.min_effect
                ),
            )
        } else if ratio > self.max_variance_ratio {
            (
                Call::Marginal,
                format!(
                    "canary spread grew: variance {ratio:.2}× the baseline's (more than {}×)",
                    self.max_variance_ratio
                ),
            )
        } else {
            (
                Call::Pass,
                format!(
                    "no sign the canary is worse: p = {:.3}, effect {effect:.2}, variance {ratio:.2}×",
                    test.p
                ),
            )
        };
        judgement
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = include_str!("../testdata/judge_reference.json");

    fn samples(case: &Value, key: &str) -> Vec<f64> {
        case[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    fn case(name: &str) -> (Vec<f64>, Vec<f64>) {
        let doc: Value = serde_json::from_str(REFERENCE).unwrap();
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone();
        (samples(&case, "canary"), samples(&case, "baseline"))
    }

    fn close(actual: f64, expected: f64, what: &str) {
        let tolerance = 1e-9 * expected.abs().max(1e-300);
        assert!(
            (actual - expected).abs() <= tolerance,
            "{what}: {actual:e} vs SciPy's {expected:e}"
        );
    }

    /// Every case of `testdata/judge_reference.json` (SciPy 1.17.1's
    /// `mannwhitneyu(..., method="asymptotic")` and `levene(...,
    /// center="median")` on fixed samples with ties), to 1e-9 relative.
    #[test]
    fn the_statistics_match_scipy() {
        let doc: Value = serde_json::from_str(REFERENCE).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 6);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let (canary, baseline) = (samples(case, "canary"), samples(case, "baseline"));
            for (key, alternative) in [
                ("two-sided", Alternative::TwoSided),
                ("greater", Alternative::Greater),
                ("less", Alternative::Less),
            ] {
                let expected = &case["mannwhitneyu"][key];
                let test = mann_whitney_u(&canary, &baseline, alternative).unwrap();
                close(
                    test.u,
                    expected["statistic"].as_f64().unwrap(),
                    &format!("{name} {key} U"),
                );
                close(
                    test.p,
                    expected["pvalue"].as_f64().unwrap(),
                    &format!("{name} {key} p"),
                );
            }
            let bf = brown_forsythe(&canary, &baseline).unwrap();
            let expected = &case["brown_forsythe"];
            close(
                bf.statistic,
                expected["statistic"].as_f64().unwrap(),
                &format!("{name} Brown-Forsythe W"),
            );
            close(
                bf.p,
                expected["pvalue"].as_f64().unwrap(),
                &format!("{name} Brown-Forsythe p"),
            );
            close(
                variance(&canary),
                case["variance"]["canary"].as_f64().unwrap(),
                &format!("{name} variance"),
            );
        }
    }

    #[test]
    fn identical_distributions_pass() {
        let (_, baseline) = case("same");
        let j = Judge::default().judge(&baseline, &baseline);
        assert_eq!(j.call, Call::Pass, "{}", j.reason);
        assert_eq!(j.effect, Some(0.0));
        // Two draws of one distribution pass too.
        let (canary, baseline) = case("same");
        let j = Judge::default().judge(&canary, &baseline);
        assert_eq!(j.call, Call::Pass, "{}", j.reason);
        // Every value the same on both sides: nothing to tell them apart.
        let flat = [0.0; 20];
        assert_eq!(Judge::default().judge(&flat, &flat).call, Call::Pass);
    }

    #[test]
    fn a_shifted_canary_fails_only_in_the_worse_direction() {
        let (canary, baseline) = case("shifted");
        let j = Judge::default().judge(&canary, &baseline);
        assert_eq!(j.call, Call::Fail, "{}", j.reason);
        assert!(j.call.may_roll_back());
        assert!(j.effect.unwrap() > 0.8, "{j:?}");
        // Explained with both distributions, the statistic, p and effect.
        let why = j.explain();
        for part in [
            "canary median",
            "baseline median",
            "; U ",
            " p ",
            "; effect 0.",
            "; variance ratio ",
        ] {
            assert!(why.contains(part), "{part}: {why}");
        }
        // Higher values are better for this metric (say, throughput): pass.
        let lower_is_worse = Judge {
            worse: Worse::Lower,
            ..Judge::default()
        };
        assert_eq!(lower_is_worse.judge(&canary, &baseline).call, Call::Pass);
    }

    #[test]
    fn too_few_samples_are_inconclusive() {
        let (canary, baseline) = case("few");
        let j = Judge::default().judge(&canary, &baseline);
        assert_eq!(j.call, Call::Inconclusive);
        assert!(
            j.reason.contains("5 canary and 30 baseline"),
            "{}",
            j.reason
        );
        assert!(!j.call.may_roll_back());
    }

    #[test]
    fn the_same_median_with_three_times_the_variance_is_not_passed() {
        let (canary, baseline) = case("wider");
        let j = Judge::default().judge(&canary, &baseline);
        assert_ne!(j.call, Call::Pass, "{}", j.reason);
        assert!(!j.call.may_roll_back(), "{}", j.reason);
        assert!(j.variance_ratio.unwrap() > 3.0);
        assert!(j.spread.unwrap().p < 0.001);
        // The same spread without the shift of this draw: still marginal.
        let m = median(&canary);
        let centred: Vec<f64> = canary.iter().map(|v| v - m + median(&baseline)).collect();
        let j = Judge::default().judge(&centred, &baseline);
        assert_eq!(j.call, Call::Marginal, "{}", j.reason);
        assert!(j.reason.contains("spread grew"), "{}", j.reason);
    }

    #[test]
    fn sparse_error_counts_with_a_small_effect_are_for_a_person() {
        let (canary, baseline) = case("sparse_counts");
        let j = Judge::default().judge(&canary, &baseline);
        assert_eq!(j.call, Call::Marginal, "{}", j.reason);
    }

    #[test]
    fn ranks_average_over_ties() {
        let (ranks, tie_term) = ranks(&[3.0, 1.0, 3.0, 2.0]);
        assert_eq!(ranks, [3.5, 1.0, 3.5, 2.0]);
        assert_eq!(tie_term, 6.0);
        assert_eq!(mann_whitney_u(&[], &[1.0], Alternative::Greater), None);
        assert_eq!(
            mann_whitney_u(&[f64::NAN], &[1.0], Alternative::Greater),
            None
        );
    }
}
