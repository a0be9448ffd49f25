use super::reference::{Scan, WfqScan};
use super::*;

#[derive(Debug, Clone)]
struct C {
    uid: u64,
    w: i64,
    load: u32,
    ok: bool,
    cap: Option<u32>,
}

impl Candidate for C {
    fn weight_units(&self) -> i64 {
        self.w
    }
    fn in_flight(&self) -> u32 {
        self.load
    }
}

/// Like `Member::eligible`: not switched off (breaker, disabled) and below its own cap.
fn eligible(_: usize, c: &C) -> bool {
    c.ok && c.cap.is_none_or(|m| c.load < m)
}

fn cands(weights: &[f64]) -> Vec<C> {
    weights.iter().enumerate().map(|(i, &w)| C { uid: i as u64, w: weight_units(w), load: 0, ok: true, cap: None }).collect()
}

fn counts(b: &mut Balancer, s: &Strategy, items: &[C], picks: usize) -> Vec<usize> {
    let mut out = vec![0; items.len()];
    for _ in 0..picks {
        out[b.pick(s, items, eligible).unwrap()] += 1;
    }
    out
}

fn seq(b: &mut Balancer, s: &Strategy, items: &[C], picks: usize) -> Vec<usize> {
    (0..picks).map(|_| b.pick(s, items, eligible).unwrap()).collect()
}

#[test]
fn round_robin_skips_ineligible_in_order() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[1.0, 1.0, 1.0, 1.0]);
    items[2].ok = false;
    assert_eq!(seq(&mut b, &Strategy::RoundRobin, &items, 6), [0, 1, 3, 0, 1, 3]);
    for c in items.iter_mut() {
        c.ok = false;
    }
    assert_eq!(b.pick(&Strategy::RoundRobin, &items, eligible), None);
}

#[test]
fn weighted_is_exact_and_interleaved_over_10000_picks() {
    let mut b = Balancer::with_seed(1);
    let items = cands(&[5.0, 3.0, 2.0]);
    assert_eq!(counts(&mut b, &Strategy::Weighted, &items, 10_000), [5000, 3000, 2000]);
    // Smooth: the heaviest never runs more than twice in a row with 5:3:2.
    let s = seq(&mut b, &Strategy::Weighted, &items, 10);
    assert!(s.windows(3).all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)), "{s:?}");
    // Fractional weights are exact too, and weight 0 is never picked.
    let mut b = Balancer::with_seed(1);
    let items = cands(&[0.5, 1.5, 0.0]);
    assert_eq!(counts(&mut b, &Strategy::Weighted, &items, 10_000), [2500, 7500, 0]);
}

#[test]
fn weighted_redistributes_when_a_candidate_is_ineligible() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[1.0, 1.0, 2.0]);
    items[2].ok = false;
    assert_eq!(counts(&mut b, &Strategy::Weighted, &items, 1000), [500, 500, 0]);
    let mut b = Balancer::with_seed(1);
    let zero = cands(&[0.0, 0.0]);
    assert_eq!(counts(&mut b, &Strategy::Weighted, &zero, 10), [5, 5]);
}

#[test]
fn least_connections_prefers_idle_and_rotates_ties() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[1.0, 1.0, 1.0]);
    items[0].load = 3;
    items[1].load = 1;
    items[2].load = 2;
    assert_eq!(b.pick(&Strategy::LeastConnections, &items, eligible), Some(1));
    for (i, c) in items.iter_mut().enumerate() {
        c.load = 0;
        b.changed(i, c);
    }
    assert_eq!(seq(&mut b, &Strategy::LeastConnections, &items, 6), [2, 0, 1, 2, 0, 1]);
}

#[test]
fn random_covers_all_and_respects_eligibility() {
    let mut b = Balancer::with_seed(7);
    let mut items = cands(&[1.0; 4]);
    items[1].ok = false;
    let c = counts(&mut b, &Strategy::Random, &items, 4000);
    assert_eq!(c[1], 0);
    assert!(c.iter().enumerate().filter(|(i, _)| *i != 1).all(|(_, &n)| n > 800), "{c:?}");
}

/// The old smooth WRR and the new schedule choose every candidate equally often over each
/// period (Σweight / gcd picks), for many weight sets.
#[test]
fn weighted_matches_the_smooth_wrr_counts_over_every_period() {
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..200 {
        let n = rng.usize(1..8);
        let weights: Vec<f64> = (0..n).map(|_| [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.25][rng.usize(..7)]).collect();
        let items = cands(&weights);
        let units: Vec<i64> = items.iter().map(|c| c.w).collect();
        let total: i64 = units.iter().sum();
        if total == 0 {
            continue;
        }
        let g = units.iter().fold(0, |g, &w| gcd(g, w));
        let period = (total / g) as usize;
        let (mut new, mut old) = (Balancer::with_seed(1), Scan::with_seed(1));
        for _ in 0..3 {
            let mut a = vec![0usize; n];
            let mut b = vec![0usize; n];
            for _ in 0..period {
                a[new.pick(&Strategy::Weighted, &items, eligible).unwrap()] += 1;
                b[old.pick(&Strategy::Weighted, &items, eligible).unwrap()] += 1;
            }
            assert_eq!(a, b, "weights {weights:?}");
            let exact: Vec<usize> = units.iter().map(|&w| (w / g) as usize).collect();
            assert_eq!(a, exact, "weights {weights:?}");
        }
    }
}

/// Smoothness: never a longer run of one candidate than smooth WRR gave, and every candidate
/// within one pick of its exact share at every point (the old rule's guarantees, which plain
/// earliest-deadline-first does not keep: 10:1:1:1:1:1 would run the first ten in a row).
#[test]
fn weighted_is_as_smooth_as_the_smooth_wrr_it_replaces() {
    let longest_run = |s: &[usize]| s.chunk_by(|a, b| a == b).map(|r| r.len()).max().unwrap_or(0);
    // The classic example, pick for pick.
    let mut b = Balancer::with_seed(1);
    assert_eq!(seq(&mut b, &Strategy::Weighted, &cands(&[5.0, 3.0, 2.0]), 10), [0, 1, 0, 2, 0, 1, 0, 1, 0, 2]);
    let mut rng = fastrand::Rng::with_seed(5);
    for round in 0..400 {
        let n = rng.usize(2..10);
        let mut weights: Vec<f64> = (0..n).map(|_| [1.0, 1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0][rng.usize(..9)]).collect();
        if round == 0 {
            weights = vec![10.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        }
        let items = cands(&weights);
        let total: i64 = items.iter().map(|c| c.w).sum();
        let g = items.iter().fold(0, |g, c| gcd(g, c.w));
        let picks = 3 * (total / g) as usize;
        let (mut new, mut old) = (Balancer::with_seed(1), Scan::with_seed(1));
        let a = seq(&mut new, &Strategy::Weighted, &items, picks);
        let b: Vec<usize> = (0..picks).map(|_| old.pick(&Strategy::Weighted, &items, eligible).unwrap()).collect();
        assert!(longest_run(&a) <= longest_run(&b), "weights {weights:?}: {a:?} vs smooth WRR {b:?}");
        let mut count = vec![0i64; items.len()];
        for (t, &i) in a.iter().enumerate() {
            count[i] += 1;
            for (j, c) in items.iter().enumerate() {
                // |count − (t+1)·w/W| ≤ 1, in integers.
                assert!((count[j] * total - (t as i64 + 1) * c.w).abs() <= total, "weights {weights:?} at {t}: {count:?}");
            }
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Exact shares in a window of Σweight picks starting at `from`.
fn window(b: &mut Balancer, items: &[C], picks: usize) -> Vec<usize> {
    counts(b, &Strategy::Weighted, items, picks)
}

#[test]
fn weighted_proportions_hold_after_a_reweight_a_removal_and_an_addition() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[5.0, 3.0, 2.0]);
    assert_eq!(window(&mut b, &items, 7), [4, 2, 1]); // mid-period
    // Re-weight: from the next full period on, the new weights exactly.
    items[1].w = weight_units(1.0);
    b.changed(1, &items[1]);
    window(&mut b, &items, 16); // settles into the new period (5+1+2) within two
    for _ in 0..10 {
        assert_eq!(window(&mut b, &items, 8), [5, 1, 2]);
    }
    // Remove the first: the rest keep their exact ratio.
    items.remove(0);
    b.remove(0);
    window(&mut b, &items, 6);
    for _ in 0..10 {
        assert_eq!(window(&mut b, &items, 3), [1, 2]);
    }
    // Add one of weight 4 (1:2:4, period 7).
    items.push(C { uid: 9, w: weight_units(4.0), load: 0, ok: true, cap: None });
    b.push(items.last().unwrap());
    window(&mut b, &items, 14);
    for _ in 0..10 {
        assert_eq!(window(&mut b, &items, 7), [1, 2, 4]);
    }
    // Down to zero and back.
    items[2].w = 0;
    b.changed(2, &items[2]);
    assert_eq!(window(&mut b, &items, 30), [10, 20, 0]);
    items[2].w = weight_units(1.0);
    b.changed(2, &items[2]);
    window(&mut b, &items, 8);
    assert_eq!(window(&mut b, &items, 40), [10, 20, 10]);
}

#[test]
fn weighted_gives_no_catch_up_burst_after_a_candidate_was_ineligible() {
    for strategy in [Strategy::Weighted, Strategy::LeastConnections, Strategy::RoundRobin] {
        let mut b = Balancer::with_seed(1);
        let mut items = cands(&[1.0, 1.0, 1.0]);
        // Out for a long time (a breaker open: no `changed` when it goes out).
        items[0].ok = false;
        let s = seq(&mut b, &strategy, &items, 1000);
        assert!(!s.contains(&0));
        items[0].ok = true;
        b.changed(0, &items[0]);
        // Back: one pick in three, from now on, not a run of them.
        let s = seq(&mut b, &strategy, &items, 30);
        assert!(s.windows(3).all(|w| w.iter().filter(|&&i| i == 0).count() == 1), "{strategy:?}: {s:?}");
    }
    // The same with weights, when the absence is at its own cap (calls in flight).
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[3.0, 1.0]);
    items[0].cap = Some(1);
    items[0].load = 1;
    assert_eq!(window(&mut b, &items, 100), [0, 100]);
    items[0].load = 0;
    b.changed(0, &items[0]);
    let s = seq(&mut b, &Strategy::Weighted, &items, 8);
    assert_eq!(s.iter().filter(|&&i| i == 0).count(), 6, "{s:?}");
    assert!(s.windows(4).all(|w| w.iter().filter(|&&i| i == 0).count() == 3), "{s:?}");
}

#[test]
fn least_connections_picks_the_true_minimum_and_rotates_among_ties() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[1.0; 8]);
    for (i, c) in items.iter_mut().enumerate() {
        c.load = [4, 2, 7, 2, 9, 3, 2, 5][i];
    }
    let lc = Strategy::LeastConnections;
    // Ties at load 2 (1, 3, 6) rotate while the loads stay.
    assert_eq!(seq(&mut b, &lc, &items, 6), [1, 3, 6, 1, 3, 6]);
    // As calls start the minimum moves: every pick is a minimum of the loads at that time.
    for _ in 0..200 {
        let i = b.pick(&lc, &items, eligible).unwrap();
        let min = items.iter().map(|c| c.load).min().unwrap();
        assert_eq!(items[i].load, min);
        items[i].load += 1;
        b.changed(i, &items[i]);
    }
    // Finishing calls on one member makes it the minimum at once.
    items[4].load = 0;
    b.changed(4, &items[4]);
    assert_eq!(b.pick(&lc, &items, eligible), Some(4));
    // An ineligible minimum is skipped; the next one is the true minimum among the rest.
    items[4].ok = false;
    let i = b.pick(&lc, &items, eligible).unwrap();
    assert_eq!(items[i].load, items.iter().filter(|c| c.ok).map(|c| c.load).min().unwrap());
}

#[test]
fn avoided_candidates_are_chosen_only_when_nothing_else_is_eligible() {
    for strategy in [Strategy::RoundRobin, Strategy::Random, Strategy::Weighted, Strategy::LeastConnections] {
        let mut b = Balancer::with_seed(3);
        let mut items = cands(&[1.0, 2.0, 3.0]);
        for _ in 0..30 {
            let i = b.pick_avoiding(&strategy, &items, eligible, |_, c| c.uid != 1).unwrap();
            assert_eq!(i, 1, "{strategy:?}");
        }
        items[1].ok = false;
        let i = b.pick_avoiding(&strategy, &items, eligible, |_, c| c.uid != 1).unwrap();
        assert!(i == 0 || i == 2, "{strategy:?}");
        items[1].ok = true;
        b.changed(1, &items[1]);
        assert_eq!(b.pick_avoiding(&strategy, &items, eligible, |_, c| c.uid == 0 || c.uid == 2), Some(1));
    }
}

#[test]
fn weighted_stays_exact_when_its_clock_is_shifted_back() {
    // Weights of 0.001 (one unit): the clock runs one unit per pick and is shifted back every
    // 2048 picks; the periods stay exact across it.
    let mut b = Balancer::with_seed(1);
    let items = cands(&[0.001, 0.002, 0.004]);
    for _ in 0..3000 {
        assert_eq!(window(&mut b, &items, 7), [1, 2, 4]);
    }
    // The largest weights too.
    let mut b = Balancer::with_seed(1);
    let items = cands(&[5e11, 0.001, 1e12]); // 10^15 units is the cap
    let c = window(&mut b, &items, 3_000_000);
    // Within one pick of the exact shares (the tiny one's is 2·10^-9).
    assert!(c[1] <= 1 && (c[2] as i64 - 2 * c[0] as i64).abs() <= 3, "{c:?}");
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "a Balancer::changed call is missing")]
fn a_candidate_made_eligible_without_changed_is_caught_in_debug_builds() {
    let mut b = Balancer::with_seed(1);
    let mut items = cands(&[1.0, 1.0]);
    items[0].ok = false;
    seq(&mut b, &Strategy::LeastConnections, &items, 3);
    items[0].ok = true;
    seq(&mut b, &Strategy::LeastConnections, &items, 1);
}

/// The index against the scans, over random operations: picks (some avoiding candidates),
/// calls starting and finishing, candidates going out (without a `changed` call, like a breaker
/// opening) and back, caps, weights, additions and removals, configuration updates. Least-
/// connections, round-robin and random must answer exactly as the old scan; weighted exactly
/// as the scan of its own schedule.
#[test]
fn randomized_cross_check_against_the_reference_scans() {
    for strategy in [Strategy::LeastConnections, Strategy::Weighted, Strategy::RoundRobin, Strategy::Random] {
        for seed in 0..12u64 {
            cross_check(&strategy, seed, 3000);
        }
    }
}

fn cross_check(strategy: &Strategy, seed: u64, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed * 7919 + 1);
    let weights = [0, 1, 2, 3, 1000, 2000, 3000, 5000, 250];
    let mut next_uid = 0u64;
    let fresh = |rng: &mut fastrand::Rng, next_uid: &mut u64| {
        *next_uid += 1;
        C {
            uid: *next_uid,
            w: if rng.u32(..6) == 0 { 0 } else { weights[rng.usize(1..weights.len())] },
            load: 0,
            ok: true,
            cap: if rng.bool() { Some(rng.u32(1..4)) } else { None },
        }
    };
    let mut items: Vec<C> = (0..rng.usize(1..40)).map(|_| fresh(&mut rng, &mut next_uid)).collect();
    let mut new = Balancer::with_seed(seed);
    let mut scan = Scan::with_seed(seed);
    let mut wfq = WfqScan::new(&items);
    let weighted = *strategy == Strategy::Weighted;
    // Tells both the balancer and the weighted reference (which parks the same way).
    macro_rules! changed {
        ($i:expr) => {{
            let i = $i;
            new.changed(i, &items[i]);
            wfq.changed(i, &items[i]);
        }};
    }
    let mut picks = 0;
    for step in 0..steps {
        // The first operation is a pick: the index is built before any change, as in the
        // scheduler (where the reference starts from the same state).
        let op = if step == 0 { 0 } else { rng.u32(..100) };
        match op {
            // Pick; sometimes avoiding a few candidates; often a call starts on the pick.
            0..=54 => {
                let avoided: Vec<u64> = if rng.u32(..4) == 0 { (0..rng.usize(1..4)).map(|_| rng.u64(..=next_uid)).collect() } else { Vec::new() };
                let avoid = |_: usize, c: &C| avoided.contains(&c.uid);
                let got = new.pick_avoiding(strategy, &items, eligible, avoid);
                let want = if weighted { wfq.pick_avoiding(&items, eligible, avoid) } else { scan.pick_avoiding(strategy, &items, eligible, avoid) };
                assert_eq!(got, want, "{strategy:?} seed {seed} step {step}: {items:?}");
                picks += got.is_some() as usize;
                if let Some(i) = got {
                    if rng.u32(..10) < 7 {
                        items[i].load += 1;
                        changed!(i);
                    }
                }
            }
            // A call finishes.
            55..=74 => {
                let busy: Vec<usize> = (0..items.len()).filter(|&i| items[i].load > 0).collect();
                if !busy.is_empty() {
                    let i = busy[rng.usize(..busy.len())];
                    items[i].load -= 1;
                    changed!(i);
                }
            }
            // Goes out (the scheduler does not tell: a breaker opening, a failed health check)
            // or comes back (it tells).
            75..=82 if !items.is_empty() => {
                let i = rng.usize(..items.len());
                items[i].ok = !items[i].ok;
                if items[i].ok || rng.bool() {
                    changed!(i);
                }
            }
            // Options: cap or weight.
            83..=88 if !items.is_empty() => {
                let i = rng.usize(..items.len());
                if rng.bool() {
                    items[i].cap = if rng.bool() { Some(rng.u32(1..4)) } else { None };
                } else {
                    items[i].w = weights[rng.usize(..weights.len())];
                }
                changed!(i);
            }
            89..=92 if items.len() < 60 => {
                let c = fresh(&mut rng, &mut next_uid);
                new.push(&c);
                wfq.push(&c);
                items.push(c);
            }
            93..=95 if items.len() > 1 => {
                let i = rng.usize(..items.len());
                items.remove(i);
                new.remove(i);
                wfq.remove(i);
                if scan.swrr.len() > i {
                    scan.swrr.remove(i);
                }
            }
            96 => {
                new.changed_all(strategy, &items);
                wfq.changed_all(&items);
            }
            _ => {}
        }
    }
    assert!(picks > steps / 4, "{strategy:?} seed {seed}: only {picks} picks");
}
