//! The proposal arithmetic: how a parent's boxes are split among its children. Pure: no I/O,
//! no clock, no randomness, so the same inputs always give the same lines.
//!
//! The method (also in the README, "Allocation"):
//!
//! 1. `T` boxes are to be handed out. The adjustment pool is `A = ⌊T · p / 100⌋` (p is the
//!    adjustment percentage, 20 by default) and the base pool `B = T − A`.
//! 2. Only eligible children take part. With `wᵢ` a child's weight (target population, or for
//!    sites their request), `W = Σw`, `rᵢ` its request (0 without one) and `R = Σr`:
//!    `idealᵢ = B · wᵢ / W + A · rᵢ / R`.
//!    If `W = 0` the base pool goes by requests instead; if `R = 0` the adjustment pool goes by
//!    weight; if both are 0 both pools are split equally.
//! 3. Caps (a child's own maximum, and its request when `cap_at_request`): a child whose share
//!    exceeds its cap gets the cap, and what it leaves is shared by the others in proportion to
//!    their ideal shares, repeatedly (water-filling), so nobody is pushed over a cap.
//! 4. Whole boxes by largest remainder: each child gets the whole part of its share; the boxes
//!    left over go one each to the largest fractional parts; ties go to the larger ideal share,
//!    then to the lower child code.
//!
//! Everything is exact integer arithmetic (u128): `idealᵢ` is the fraction `sᵢ / D` with
//! `sᵢ = B·wᵢ·R + A·rᵢ·W` and `D = W·R`. The sum is never more than `T`, is exactly `T` when
//! no cap binds and at least one child is eligible, and every number is ≥ 0.

use serde::{Deserialize, Serialize};

use super::Ineligible;
use crate::quantity::Boxes;

vocabulary! {
    /// What a pool was split by.
    WeightSource {
        /// Target population of the municipality (or the prefecture's sum).
        TargetPopulation = "TARGET_POPULATION",
        /// The child's request (希望量) for the round.
        Request = "REQUEST",
        /// Equal shares: nothing else to go by.
        Equal = "EQUAL",
    }
}

/// The default adjustment share (調整枠): about 20% of a round (domain-facts §3.3).
pub const DEFAULT_ADJUSTMENT_PERCENT: u8 = 20;

/// One child competing for a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The child's code; also the last tie-break.
    pub code: String,
    /// Its weight for the base pool (population, or its request for sites).
    pub weight: u64,
    /// Its request for the round, if it made one.
    pub request: Option<Boxes>,
    /// The most it may get, if limited.
    pub cap: Option<Boxes>,
    /// Why it gets nothing, if it may not receive this product.
    pub ineligible: Option<Ineligible>,
}

/// The parameters of one proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The boxes to hand out (what the parent received, less nothing).
    pub total: Boxes,
    /// 0..=100.
    pub adjustment_percent: u8,
    /// What `Claim::weight` measures.
    pub weight_source: WeightSource,
    /// Also cap every child that made a request at that request.
    pub cap_at_request: bool,
}

/// Totals of one proposal, kept with the allocation so each line's reason can be read later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalSummary {
    pub total: Boxes,
    pub adjustment_percent: u8,
    pub base_pool: Boxes,
    pub adjustment_pool: Boxes,
    pub base_by: WeightSource,
    pub adjustment_by: WeightSource,
    pub cap_at_request: bool,
    /// Σ weight over eligible children.
    pub weight_total: u64,
    /// Σ requests over eligible children.
    pub request_total: u64,
    pub eligible: u32,
    pub capped: u32,
    pub allocated: Boxes,
    /// Boxes no child could take (every eligible child capped, or none eligible).
    pub unallocated: Boxes,
}

/// Why one child got what it got: the inputs and each step's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineReason {
    pub weight: u64,
    pub request: Option<Boxes>,
    /// The cap that applied (its own, or its request with `cap_at_request`).
    pub cap: Option<Boxes>,
    pub ineligible: Option<Ineligible>,
    /// `B · w / W` (or by the fallback), in boxes.
    pub base_share: f64,
    /// `A · r / R` (or by the fallback), in boxes.
    pub adjustment_share: f64,
    /// Whether the cap bound.
    pub capped: bool,
    /// The share after caps were applied and redistributed, before rounding.
    pub share_after_caps: f64,
    /// Whether it got one of the leftover boxes of the largest-remainder step.
    pub rounded_up: bool,
    pub boxes: Boxes,
}

impl LineReason {
    /// The ideal share before caps.
    pub fn ideal_share(&self) -> f64 {
        self.base_share + self.adjustment_share
    }

    /// One sentence a person can check with a calculator.
    pub fn explain(&self, s: &ProposalSummary) -> String {
        if let Some(why) = self.ineligible {
            return format!("0 boxes: {}", why.explain());
        }
        let pool = |by: WeightSource, mine: u64, total: u64| match by {
            WeightSource::Equal => format!("equally among {} children", s.eligible),
            _ => format!("by {} {} of {}", by.describe(), mine, total),
        };
        let base_mine = match s.base_by {
            WeightSource::Request => self.request.map_or(0, Boxes::get),
            _ => self.weight,
        };
        let base_total = match s.base_by {
            WeightSource::Request => s.request_total,
            _ => s.weight_total,
        };
        let adj_mine = match s.adjustment_by {
            WeightSource::Request => self.request.map_or(0, Boxes::get),
            _ => self.weight,
        };
        let adj_total = match s.adjustment_by {
            WeightSource::Request => s.request_total,
            _ => s.weight_total,
        };
        let mut out = format!(
            "base share {:.2} of {} boxes {}; adjustment share {:.2} of {} boxes {}; together {:.2}",
            self.base_share,
            s.base_pool.get(),
            pool(s.base_by, base_mine, base_total),
            self.adjustment_share,
            s.adjustment_pool.get(),
            pool(s.adjustment_by, adj_mine, adj_total),
            self.ideal_share(),
        );
        match (self.capped, self.cap) {
            (true, Some(cap)) => out.push_str(&format!("; capped at {}", cap.get())),
            _ => {
                if (self.share_after_caps - self.ideal_share()).abs() > 1e-9 {
                    out.push_str(&format!(
                        "; {:.2} after other children's caps were shared out",
                        self.share_after_caps
                    ));
                }
                if self.rounded_up {
                    out.push_str("; rounded up (largest remainder)");
                } else if self.share_after_caps.fract() > 1e-9 {
                    out.push_str("; rounded down");
                }
            }
        }
        out.push_str(&format!(" → {} boxes", self.boxes.get()));
        out
    }
}

impl WeightSource {
    fn describe(self) -> &'static str {
        match self {
            WeightSource::TargetPopulation => "target population",
            WeightSource::Request => "request",
            WeightSource::Equal => "equal shares",
        }
    }
}

/// One proposed line. `Proposal::lines` are in the order of the claims (`lines[i]` is for
/// `claims[i]`), so codes are not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposedLine {
    pub boxes: Boxes,
    pub reason: LineReason,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub summary: ProposalSummary,
    pub lines: Vec<ProposedLine>,
}

/// Why a proposal could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("adjustment percentage must be between 0 and 100")]
    AdjustmentPercent,
    #[error(
        "the numbers are too large to compute exactly (boxes² × total weight × total requests must stay below 2^128)"
    )]
    TooLarge,
}

/// Which key splits a pool, after the fallbacks.
#[derive(Clone, Copy)]
enum Key {
    Weight,
    Request,
    One,
}

impl Key {
    fn of(self, c: &Claim) -> u128 {
        match self {
            Key::Weight => u128::from(c.weight),
            Key::Request => u128::from(c.request.map_or(0, Boxes::get)),
            Key::One => 1,
        }
    }
}

/// Computes a proposal. See the module documentation for the method.
pub fn propose(params: &Params, claims: &[Claim]) -> Result<Proposal, ProposalError> {
    if params.adjustment_percent > 100 {
        return Err(ProposalError::AdjustmentPercent);
    }
    let t = u128::from(params.total.get());
    let a = t * u128::from(params.adjustment_percent) / 100;
    let b = t - a;
    let eligible = |c: &Claim| c.ineligible.is_none();
    let n_eligible = claims.iter().filter(|c| eligible(c)).count() as u128;
    let w_total: u128 = claims.iter().filter(|c| eligible(c)).map(|c| Key::Weight.of(c)).sum();
    let r_total: u128 = claims.iter().filter(|c| eligible(c)).map(|c| Key::Request.of(c)).sum();

    let (base_key, base_by, base_den) = if w_total > 0 {
        (Key::Weight, params.weight_source, w_total)
    } else if r_total > 0 {
        (Key::Request, WeightSource::Request, r_total)
    } else {
        (Key::One, WeightSource::Equal, n_eligible.max(1))
    };
    let (adj_key, adjustment_by, adj_den) = if r_total > 0 {
        (Key::Request, WeightSource::Request, r_total)
    } else if w_total > 0 {
        (Key::Weight, params.weight_source, w_total)
    } else {
        (Key::One, WeightSource::Equal, n_eligible.max(1))
    };

    // Every product below is at most t·t·base_den·adj_den; check that bound once.
    let d = base_den.checked_mul(adj_den).ok_or(ProposalError::TooLarge)?;
    t.checked_mul(t)
        .and_then(|tt| tt.checked_mul(d))
        .ok_or(ProposalError::TooLarge)?;

    let n = claims.len();
    // s[i] / d is child i's ideal share in boxes.
    let mut s = vec![0u128; n];
    let mut cap = vec![None::<u128>; n];
    for (i, c) in claims.iter().enumerate() {
        if !eligible(c) {
            continue;
        }
        s[i] = b * base_key.of(c) * adj_den + a * adj_key.of(c) * base_den;
        let own = c.cap.map(|x| u128::from(x.get()));
        let by_request = if params.cap_at_request {
            c.request.map(|x| u128::from(x.get()))
        } else {
            None
        };
        // A cap above the total never binds; clamping keeps the products in range.
        cap[i] = match (own, by_request) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
        .map(|x| x.min(t));
    }

    // Water-filling: the level is t_left / s_left boxes per unit of s. A child is capped when
    // its cap is below its share at the current level; capping one only raises the level, so
    // going through children by cap/s ascending and stopping at the first that fits is exact.
    let mut t_left = if n_eligible > 0 { t } else { 0 };
    let mut s_left: u128 = s.iter().sum();
    let mut capped = vec![false; n];
    let mut by_ratio: Vec<usize> = (0..n).filter(|&i| s[i] > 0 && cap[i].is_some()).collect();
    by_ratio.sort_by(|&i, &j| {
        let (ci, cj) = (cap[i].unwrap_or(0), cap[j].unwrap_or(0));
        (ci * s[j])
            .cmp(&(cj * s[i]))
            .then_with(|| claims[i].code.cmp(&claims[j].code))
    });
    let mut boxes = vec![0u128; n];
    for i in by_ratio {
        let c = cap[i].unwrap_or(0);
        if c * s_left <= t_left * s[i] {
            capped[i] = true;
            boxes[i] = c;
            t_left -= c;
            s_left -= s[i];
        } else {
            break;
        }
    }

    // Largest remainder over the uncapped children with a share.
    let none_capped_yet = !capped.iter().any(|c| *c);
    let mut rem = vec![0u128; n];
    let mut after = vec![0f64; n];
    let mut floor_sum = 0u128;
    if let Some(level) = std::num::NonZeroU128::new(s_left) {
        for i in 0..n {
            if s[i] > 0 && !capped[i] {
                let num = t_left * s[i];
                boxes[i] = num / level;
                rem[i] = num % level;
                floor_sum += boxes[i];
                if !none_capped_yet {
                    after[i] = num as f64 / s_left as f64;
                }
            }
        }
    }
    // Every child capped (or none with a share): the rest stays with the parent.
    let leftover = if s_left > 0 { t_left - floor_sum } else { 0 };
    let mut rounded_up = vec![false; n];
    if leftover > 0 {
        let mut order: Vec<usize> = (0..n).filter(|&i| rem[i] > 0).collect();
        order.sort_by(|&i, &j| {
            rem[j]
                .cmp(&rem[i])
                .then_with(|| s[j].cmp(&s[i]))
                .then_with(|| claims[i].code.cmp(&claims[j].code))
        });
        for &i in order.iter().take(leftover as usize) {
            boxes[i] += 1;
            rounded_up[i] = true;
        }
    }

    let allocated: u128 = boxes.iter().sum();
    let as_boxes = |x: u128| Boxes::new(u64::try_from(x).unwrap_or(u64::MAX));
    // Shares for display, in f64 from the small factors (cheaper than converting the u128s).
    let (bf, af) = (b as f64, a as f64);
    let (base_den_f, adj_den_f) = (base_den as f64, adj_den as f64);
    let none_capped = none_capped_yet;
    let lines = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (base_share, adjustment_share) = if eligible(c) {
                (
                    bf * base_key.of(c) as f64 / base_den_f,
                    af * adj_key.of(c) as f64 / adj_den_f,
                )
            } else {
                (0.0, 0.0)
            };
            let share_after_caps = if capped[i] {
                boxes[i] as f64
            } else if none_capped {
                base_share + adjustment_share
            } else {
                after[i]
            };
            ProposedLine {
                boxes: as_boxes(boxes[i]),
                reason: LineReason {
                    weight: c.weight,
                    request: c.request,
                    cap: cap[i].map(as_boxes),
                    ineligible: c.ineligible,
                    base_share,
                    adjustment_share,
                    capped: capped[i],
                    share_after_caps,
                    rounded_up: rounded_up[i],
                    boxes: as_boxes(boxes[i]),
                },
            }
        })
        .collect();
    let summary = ProposalSummary {
        total: params.total,
        adjustment_percent: params.adjustment_percent,
        base_pool: as_boxes(b),
        adjustment_pool: as_boxes(a),
        base_by,
        adjustment_by,
        cap_at_request: params.cap_at_request,
        weight_total: u64::try_from(w_total).unwrap_or(u64::MAX),
        request_total: u64::try_from(r_total).unwrap_or(u64::MAX),
        eligible: u32::try_from(n_eligible).unwrap_or(u32::MAX),
        capped: capped.iter().filter(|c| **c).count() as u32,
        allocated: as_boxes(allocated),
        unallocated: as_boxes(t - allocated),
    };
    Ok(Proposal { summary, lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(code: &str, weight: u64, request: Option<u64>, cap: Option<u64>) -> Claim {
        Claim {
            code: code.into(),
            weight,
            request: request.map(Boxes::new),
            cap: cap.map(Boxes::new),
            ineligible: None,
        }
    }

    fn params(total: u64, pct: u8) -> Params {
        Params {
            total: Boxes::new(total),
            adjustment_percent: pct,
            weight_source: WeightSource::TargetPopulation,
            cap_at_request: false,
        }
    }

    fn boxes(p: &Proposal) -> Vec<u64> {
        p.lines.iter().map(|l| l.boxes.get()).collect()
    }

    /// Hand-checked cases: (total, adjustment %, claims, expected boxes).
    #[test]
    fn table() {
        type Case = (u64, u8, Vec<Claim>, Vec<u64>, &'static str);
        let cases: Vec<Case> = vec![
            (
                100,
                20,
                vec![claim("a", 3, None, None), claim("b", 1, None, None)],
                // no requests: both pools by weight → 75 / 25
                vec![75, 25],
                "no requests: all by weight",
            ),
            (
                100,
                20,
                vec![claim("a", 1, Some(10), None), claim("b", 1, Some(30), None)],
                // base 80 → 40/40; adjustment 20 → 5/15
                vec![45, 55],
                "base by weight, adjustment by request",
            ),
            (
                10,
                0,
                vec![
                    claim("a", 1, None, None),
                    claim("b", 1, None, None),
                    claim("c", 1, None, None),
                ],
                // 3.33 each; one leftover box goes to the lowest code
                vec![4, 3, 3],
                "equal remainders: lower code first",
            ),
            (
                10,
                0,
                vec![
                    claim("c", 1, None, None),
                    claim("b", 1, None, None),
                    claim("a", 1, None, None),
                ],
                vec![3, 3, 4],
                "tie-break follows codes, not input order",
            ),
            (
                7,
                0,
                vec![claim("a", 2, None, None), claim("b", 1, None, None)],
                // 4.67 / 2.33 → 4 + 1 (larger remainder .67) / 2
                vec![5, 2],
                "largest remainder",
            ),
            (
                100,
                0,
                vec![
                    claim("a", 1, None, Some(10)),
                    claim("b", 1, None, None),
                    claim("c", 2, None, None),
                ],
                // ideal 25/25/50; a capped at 10, its 15 shared 1:2 → b 30, c 60
                vec![10, 30, 60],
                "a cap's excess is shared in proportion",
            ),
            (
                100,
                0,
                vec![
                    claim("a", 1, None, Some(10)),
                    claim("b", 1, None, Some(20)),
                    claim("c", 1, None, Some(30)),
                ],
                // every child capped: 40 boxes stay with the parent
                vec![10, 20, 30],
                "all capped",
            ),
            (
                0,
                20,
                vec![claim("a", 5, Some(3), None)],
                vec![0],
                "nothing to hand out",
            ),
            (
                9,
                20,
                vec![claim("a", 0, None, None), claim("b", 0, None, None)],
                // no weights and no requests: equal
                vec![5, 4],
                "equal fallback",
            ),
            (
                10,
                20,
                vec![claim("a", 0, Some(1), None), claim("b", 0, Some(4), None)],
                // no weights: base by requests too → 2 / 8
                vec![2, 8],
                "no weights: requests for both pools",
            ),
        ];
        for (total, pct, claims, want, what) in cases {
            let p = propose(&params(total, pct), &claims).expect(what);
            assert_eq!(boxes(&p), want, "{what}");
            assert_eq!(p.summary.allocated.get(), want.iter().sum::<u64>(), "{what}");
            assert_eq!(p.summary.allocated.get() + p.summary.unallocated.get(), total, "{what}");
        }
    }

    #[test]
    fn ineligible_children_get_nothing_and_say_why() {
        let mut claims = vec![claim("a", 1, Some(5), None), claim("b", 100, Some(50), None)];
        claims[1].ineligible = Some(Ineligible::Withdrawn);
        let p = propose(&params(10, 20), &claims).expect("proposal");
        assert_eq!(boxes(&p), vec![10, 0]);
        assert_eq!(p.summary.eligible, 1);
        assert_eq!(p.summary.weight_total, 1, "ineligible weights are left out");
        assert!(p.lines[1].reason.explain(&p.summary).starts_with("0 boxes: "));

        claims[0].ineligible = Some(Ineligible::NoFreezer);
        let p = propose(&params(10, 20), &claims).expect("proposal");
        assert_eq!(boxes(&p), vec![0, 0]);
        assert_eq!(p.summary.unallocated, Boxes::new(10));
    }

    #[test]
    fn cap_at_request() {
        let mut prm = params(100, 20);
        prm.cap_at_request = true;
        let claims = vec![claim("a", 1, Some(5), None), claim("b", 1, None, None)];
        let p = propose(&prm, &claims).expect("proposal");
        assert_eq!(boxes(&p), vec![5, 95]);
        assert!(p.lines[0].reason.capped);
        assert_eq!(p.lines[0].reason.cap, Some(Boxes::new(5)));
    }

    #[test]
    fn reasons_explain_the_numbers() {
        let claims = vec![claim("a", 1, Some(10), None), claim("b", 1, Some(30), None)];
        let p = propose(&params(100, 20), &claims).expect("proposal");
        let r = &p.lines[1].reason;
        assert_eq!(r.base_share, 40.0);
        assert_eq!(r.adjustment_share, 15.0);
        assert_eq!(
            r.explain(&p.summary),
            "base share 40.00 of 80 boxes by target population 1 of 2; adjustment share 15.00 of 20 boxes \
             by request 30 of 40; together 55.00 → 55 boxes"
        );
        let p = propose(&params(7, 0), &[claim("a", 2, None, None), claim("b", 1, None, None)]).expect("p");
        assert!(p.lines[0].reason.rounded_up);
        assert!(
            p.lines[0]
                .reason
                .explain(&p.summary)
                .ends_with("rounded up (largest remainder) → 5 boxes")
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            propose(&params(1, 101), &[]).expect_err("pct"),
            ProposalError::AdjustmentPercent
        );
        let huge = vec![
            claim("a", u64::MAX, Some(u64::MAX), None),
            claim("b", u64::MAX, None, None),
        ];
        assert_eq!(
            propose(&params(u64::MAX, 20), &huge).expect_err("too large"),
            ProposalError::TooLarge
        );
    }

    fn claims_strategy() -> impl Strategy<Value = Vec<Claim>> {
        proptest::collection::vec(
            (
                0u64..2_000_000,
                proptest::option::of(0u64..5_000),
                proptest::option::of(0u64..3_000),
                proptest::option::of(0usize..5),
            ),
            0..60,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (w, r, c, bad))| Claim {
                    code: format!("{:06}", (i * 7919) % 1_000_003),
                    weight: w,
                    request: r.map(Boxes::new),
                    cap: c.map(Boxes::new),
                    ineligible: bad.filter(|b| *b == 0).map(|_| Ineligible::Withdrawn),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Never more than the parent, never negative (u64), within caps, eligible only; and
        /// exactly the parent's total when no cap binds and someone is eligible.
        #[test]
        fn never_exceeds_the_parent(total in 0u64..200_000, pct in 0u8..=100, cap_at_request: bool,
                                    claims in claims_strategy()) {
            let prm = Params { total: Boxes::new(total), adjustment_percent: pct,
                               weight_source: WeightSource::TargetPopulation, cap_at_request };
            let p = propose(&prm, &claims).expect("in range");
            let sum: u64 = p.lines.iter().map(|l| l.boxes.get()).sum();
            prop_assert!(sum <= total);
            prop_assert_eq!(sum, p.summary.allocated.get());
            prop_assert_eq!(sum + p.summary.unallocated.get(), total);
            for (l, c) in p.lines.iter().zip(&claims) {
                if let Some(cap) = l.reason.cap { prop_assert!(l.boxes <= cap); }
                if c.ineligible.is_some() { prop_assert_eq!(l.boxes, Boxes::ZERO); }
            }
            let any_eligible = claims.iter().any(|c| c.ineligible.is_none());
            if p.summary.capped == 0 && any_eligible {
                prop_assert_eq!(sum, total);
            }
        }

        /// The same inputs in any order give the same boxes to the same children.
        #[test]
        fn deterministic_and_order_independent(total in 0u64..50_000, pct in 0u8..=100,
                                               claims in claims_strategy(), seed in any::<u64>()) {
            let prm = params(total, pct);
            let a = propose(&prm, &claims).expect("in range");
            let b = propose(&prm, &claims).expect("in range");
            prop_assert_eq!(&a, &b);
            let mut shuffled = claims.clone();
            let n = shuffled.len();
            if n > 1 {
                let mut x = seed;
                for i in (1..n).rev() {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    shuffled.swap(i, (x >> 33) as usize % (i + 1));
                }
            }
            let c = propose(&prm, &shuffled).expect("in range");
            let mut by_code_a: Vec<_> = claims.iter().zip(&a.lines).map(|(k, l)| (k.code.clone(), l.boxes)).collect();
            let mut by_code_c: Vec<_> = shuffled.iter().zip(&c.lines).map(|(k, l)| (k.code.clone(), l.boxes)).collect();
            by_code_a.sort();
            by_code_c.sort();
            prop_assert_eq!(by_code_a, by_code_c);
        }

        /// Each uncapped child is within one box of its exact share after caps (rounding moves
        /// at most one box).
        #[test]
        fn rounding_moves_at_most_one_box(total in 0u64..100_000, claims in claims_strategy()) {
            let p = propose(&params(total, 20), &claims).expect("in range");
            for l in &p.lines {
                if !l.reason.capped {
                    let diff = l.boxes.get() as f64 - l.reason.share_after_caps;
                    prop_assert!(diff > -1.0 - 1e-6 && diff < 1.0 + 1e-6, "{} vs {}", l.boxes.get(), l.reason.share_after_caps);
                }
            }
        }
    }
}
