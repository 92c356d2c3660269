//! The OBS algebra against direct dense computations: the block Schur downdate against the
//! inverse of the kept block, the cost of a block against a direct refit, and the greedy
//! order against a brute-force search.
use super::*;
use crate::lsq::RIDGE;

/// Relative agreement of the downdated inverse with a direct one (f64, well conditioned).
const DOWNDATE_MAX_REL_ERR: f64 = 1e-9;
/// Largest entry of `A A⁻¹ − I` for the blocked inverse (f64, condition number ~1e6).
const INVERSE_MAX_ERR: f64 = 1e-6;
/// Relative agreement of OBS costs with a direct refit on the same regularised system.
const REFIT_MAX_REL_ERR: f64 = 1e-9;

/// Deterministic pseudo-random numbers in [-1, 1).
fn rand_vec(seed: u64, len: usize) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// `XᵀX` of `rows × n` data (row-major).
fn gram_of(x: &[f64], rows: usize, n: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] += row[i] * row[j];
            }
        }
    }
    g
}

/// Correlated rows: each feature mixes a few shared factors plus noise.
fn correlated(seed: u64, rows: usize, n: usize) -> Vec<f64> {
    let base = rand_vec(seed, rows * n);
    let mix = rand_vec(seed + 1, n * n);
    let mut x = vec![0.0; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let mut v = 0.5 * base[r * n + j];
            for k in 0..3.min(n) {
                v += mix[k * n + j] * base[r * n + k];
            }
            x[r * n + j] = v;
        }
    }
    x
}

/// `min_{w'} Σ_o (w_o − w'_o)ᵀ H (w_o − w'_o)` over `w'` zero on `removed`, by a direct solve
/// of `H_KK w'_K = H_K· w` (Gaussian elimination with partial pivoting). With `H = XᵀX` it is
/// the reconstruction error of the dense least-squares refit `min ||X w − X_K w'||²`.
fn refit_error(g: &[f64], n: usize, w: &Array2<f64>, removed: &[usize]) -> f64 {
    let kept: Vec<usize> = (0..n).filter(|f| !removed.contains(f)).collect();
    let k = kept.len();
    let mut total = 0.0;
    for row in w.rows() {
        let mut a = vec![0.0; k * (k + 1)];
        for (r, &i) in kept.iter().enumerate() {
            for (c, &j) in kept.iter().enumerate() {
                a[r * (k + 1) + c] = g[i * n + j];
            }
            a[r * (k + 1) + k] = (0..n).map(|j| g[i * n + j] * row[j]).sum();
        }
        for col in 0..k {
            let p = (col..k)
                .max_by(|&x, &y| {
                    a[x * (k + 1) + col]
                        .abs()
                        .total_cmp(&a[y * (k + 1) + col].abs())
                })
                .unwrap();
            for c in 0..=k {
                a.swap(col * (k + 1) + c, p * (k + 1) + c);
            }
            for r in 0..k {
                if r != col {
                    let f = a[r * (k + 1) + col] / a[col * (k + 1) + col];
                    for c in col..=k {
                        a[r * (k + 1) + c] -= f * a[col * (k + 1) + c];
                    }
                }
            }
        }
        let mut d = row.to_vec();
        for (r, &i) in kept.iter().enumerate() {
            d[i] -= a[r * (k + 1) + k] / a[r * (k + 1) + r];
        }
        // ||X d||² = dᵀ G d.
        total += (0..n)
            .map(|i| (0..n).map(|j| d[i] * g[i * n + j] * d[j]).sum::<f64>())
            .sum::<f64>();
    }
    total
}

fn consumer(g: &[f64], n: usize, w: &Array2<f64>, block: usize) -> Consumer {
    let blocks = (0..n / block)
        .map(|u| (u * block..(u + 1) * block).collect())
        .collect();
    Consumer::new(g, n, w.clone(), &[], blocks).expect("positive definite")
}

#[test]
fn block_schur_downdate_equals_the_inverse_of_the_kept_block() {
    let (n, rows) = (12, 60);
    let x = correlated(3, rows, n);
    let g = gram_of(&x, rows, n);
    let w = Array2::from_shape_vec((2, n), rand_vec(5, 2 * n)).unwrap();
    let mut c = consumer(&g, n, &w, 3);
    c.remove(1);
    c.remove(3);
    let removed = [3, 4, 5, 9, 10, 11];
    let kept: Vec<usize> = (0..n).filter(|f| !removed.contains(f)).collect();
    let k = kept.len();
    // The direct inverse of H_KK, H = G + λI with reconstruction's λ.
    let lambda = RIDGE * (0..n).map(|i| g[i * n + i]).sum::<f64>() / n as f64;
    let mut hkk = vec![0.0; k * k];
    for (r, &i) in kept.iter().enumerate() {
        for (q, &j) in kept.iter().enumerate() {
            hkk[r * k + q] = g[i * n + j] + if i == j { lambda } else { 0.0 };
        }
    }
    let direct = inverse(hkk, k).unwrap();
    let scale = direct.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (r, &i) in kept.iter().enumerate() {
        for (q, &j) in kept.iter().enumerate() {
            let err = (c.s(i, j) - direct[r * k + q]).abs() / scale;
            assert!(err < DOWNDATE_MAX_REL_ERR, "S[{i},{j}]: rel err {err:e}");
        }
    }
    for &i in &removed {
        assert!((0..n).all(|j| c.s(i, j).abs() < 1e-9 * scale && c.s(j, i).abs() < 1e-9 * scale));
        assert!(c.w.column(i).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn block_cost_and_compensation_equal_a_direct_refit() {
    let (n, rows) = (10, 80);
    let x = correlated(11, rows, n);
    let g = gram_of(&x, rows, n);
    let w = Array2::from_shape_vec((3, n), rand_vec(13, 3 * n)).unwrap();
    let mut c = consumer(&g, n, &w, 2);
    let first = c.cost(2);
    c.remove(2);
    let compensated = c.w.clone();
    let second = c.cost(0);
    // OBS works on H = G + λI (reconstruction's ridge): against a direct refit on the same H
    // the costs are exact, and the compensated weights are the refit itself.
    let lambda = RIDGE * (0..n).map(|i| g[i * n + i]).sum::<f64>() / n as f64;
    let mut h = g.clone();
    (0..n).for_each(|i| h[i * n + i] += lambda);
    let direct_one = refit_error(&h, n, &w, &[4, 5]);
    let direct_two = refit_error(&h, n, &w, &[0, 1, 4, 5]);
    let close = |a: f64, b: f64| (a - b).abs() <= REFIT_MAX_REL_ERR * b.abs();
    assert!(close(first, direct_one), "{first} vs {direct_one}");
    assert!(
        close(first + second, direct_two),
        "{} vs {direct_two}",
        first + second
    );
    // The compensated weights reach the refit's error: (w − w')ᵀ H (w − w') over outputs.
    let d = &w - &compensated;
    let reached: f64 = d
        .rows()
        .into_iter()
        .map(|r| {
            (0..n)
                .map(|i| (0..n).map(|j| r[i] * h[i * n + j] * r[j]).sum::<f64>())
                .sum::<f64>()
        })
        .sum();
    assert!(close(reached, direct_one), "{reached} vs {direct_one}");
}

/// The removed units (sorted) of a score vector with `keep` kept.
fn removed_of(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut r = order[..scores.len() - keep].to_vec();
    r.sort_unstable();
    r
}

#[test]
fn greedy_order_matches_brute_force_on_a_tiny_case() {
    let (units, block, rows) = (6, 2, 50);
    let n = units * block;
    let x = correlated(21, rows, n);
    let g = gram_of(&x, rows, n);
    let w = Array2::from_shape_vec((4, n), rand_vec(22, 4 * n)).unwrap();
    for keep in [5, 4] {
        let mut consumers = [consumer(&g, n, &w, block)];
        let scores = greedy_order(&mut consumers, units, keep);
        let chosen = removed_of(&scores, keep);
        let error = |removed: &[usize]| {
            let features: Vec<usize> = removed
                .iter()
                .flat_map(|&u| u * block..(u + 1) * block)
                .collect();
            refit_error(&g, n, &w, &features)
        };
        let mut best = (f64::INFINITY, Vec::new());
        for mask in 0u32..(1 << units) {
            if mask.count_ones() as usize != units - keep {
                continue;
            }
            let set: Vec<usize> = (0..units).filter(|u| mask & (1 << u) != 0).collect();
            let e = error(&set);
            if e < best.0 {
                best = (e, set);
            }
        }
        assert_eq!(
            chosen, best.1,
            "keep {keep}: greedy {chosen:?}, best {best:?}"
        );
        // Kept units rank above every removed one.
        let top_removed = chosen.iter().map(|&u| scores[u]).fold(f64::MIN, f64::max);
        assert!((0..units)
            .filter(|u| !chosen.contains(u))
            .all(|u| scores[u] > top_removed));
    }
}

#[test]
fn blocked_inverse_times_the_matrix_is_the_identity() {
    // Over several INVERSE_BLOCK column blocks, with a ragged last block.
    let (n, rows) = (2 * INVERSE_BLOCK + 37, 2 * INVERSE_BLOCK + 100);
    let x = correlated(31, rows, n);
    let mut g = gram_of(&x, rows, n);
    (0..n).for_each(|i| g[i * n + i] += 1e-3);
    let s = inverse(g.clone(), n).unwrap();
    let mut worst = 0f64;
    for i in 0..n {
        for j in 0..n {
            let v: f64 = (0..n).map(|k| g[i * n + k] * s[k * n + j]).sum();
            worst = worst.max((v - f64::from(u8::from(i == j))).abs());
            assert_eq!(s[i * n + j], s[j * n + i]);
        }
    }
    assert!(worst < INVERSE_MAX_ERR, "max |A A⁻¹ − I| = {worst:e}");
}
