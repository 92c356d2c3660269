use super::*;

/// Deterministic values in [−0.5, 0.5).
fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    }
}

/// Gaussian elimination with partial pivoting on a dense copy (the reference).
fn direct_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            let pivot = a[c].clone();
            for (x, p) in a[r].iter_mut().zip(&pivot).skip(c) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i][k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    x
}

#[test]
fn ridge_solve_matches_a_direct_solve() {
    // Three features, the third = first + second: dropping it is exactly representable.
    let rows: Vec<[f64; 3]> = (0..50)
        .map(|i| {
            let a = ((i * 37) % 11) as f64 - 5.0;
            let b = ((i * 17) % 7) as f64 - 3.0;
            [a, b, a + b]
        })
        .collect();
    let mut gram = vec![0.0; 9];
    for r in &rows {
        for i in 0..3 {
            for j in 0..3 {
                gram[i * 3 + j] += r[i] * r[j];
            }
        }
    }
    let target = vec![0.5, -1.0, 2.0];
    let w = solve_ridge(&gram, 3, &[0, 1], &[], &[target]).unwrap().0;
    // X t = a·(0.5 + 2) + b·(−1 + 2)
    assert!((w[0][0] - 2.5).abs() < 1e-3, "{:?}", w);
    assert!((w[0][1] - 1.0).abs() < 1e-3, "{:?}", w);
}

#[test]
fn ridge_solve_matches_dense_normal_equations() {
    // 7 features (the last a bias column of ones), 40 pseudo-random rows; keep 4 + bias.
    let n = 7;
    let mut next = lcg(12345);
    let mut gram = vec![0.0; n * n];
    for _ in 0..40 {
        let row: Vec<f64> = (0..n)
            .map(|i| if i == n - 1 { 1.0 } else { next() })
            .collect();
        for i in 0..n {
            for j in 0..n {
                gram[i * n + j] += row[i] * row[j];
            }
        }
    }
    let kept = [0, 2, 3, 5, 6];
    let target: Vec<f64> = (0..n).map(|_| next()).collect();
    let (got, ridge) = solve_ridge(&gram, n, &kept, &[6], std::slice::from_ref(&target)).unwrap();
    assert_eq!(
        ridge.relative, RIDGE,
        "a well-posed system takes the smallest ridge"
    );
    let penalised = [0, 2, 3, 5];
    let lambda =
        RIDGE * penalised.iter().map(|&i| gram[i * n + i]).sum::<f64>() / penalised.len() as f64;
    let a: Vec<Vec<f64>> = kept
        .iter()
        .map(|&i| {
            kept.iter()
                .map(|&j| gram[i * n + j] + if i == j && i != 6 { lambda } else { 0.0 })
                .collect()
        })
        .collect();
    let b: Vec<f64> = kept
        .iter()
        .map(|&i| (0..n).map(|j| gram[i * n + j] * target[j]).sum())
        .collect();
    let want = direct_solve(a, b);
    for (g, w) in got[0].iter().zip(&want) {
        assert!((g - w).abs() < 1e-9, "{:?} vs {want:?}", got[0]);
    }
}

/// A well-conditioned SPD matrix of side `n` (random Gram plus a diagonal shift).
fn spd(n: usize, seed: u64) -> Vec<f64> {
    let mut next = lcg(seed);
    let rows: Vec<Vec<f64>> = (0..n + 8)
        .map(|_| (0..n).map(|_| next()).collect())
        .collect();
    let mut a = vec![0.0; n * n];
    for r in &rows {
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] += r[i] * r[j];
            }
        }
    }
    for i in 0..n {
        a[i * n + i] += 1.0;
    }
    a
}

#[test]
fn blocked_cholesky_solve_matches_gaussian_elimination_across_blocks() {
    // Larger than the Cholesky block and the tile, so every blocked path runs; three
    // right-hand sides at once.
    let n = 2 * NB + TILE / 2 + 7;
    let a = spd(n, 7);
    let mut next = lcg(99);
    let m = 3;
    let b: Vec<f64> = (0..n * m).map(|_| next()).collect();
    let mut l = a.clone();
    assert!(cholesky(&mut l, n));
    let mut x = b.clone();
    cholesky_solve(&l, n, &mut x, m);
    for c in 0..m {
        let dense: Vec<Vec<f64>> = (0..n).map(|i| a[i * n..(i + 1) * n].to_vec()).collect();
        let rhs: Vec<f64> = (0..n).map(|i| b[i * m + c]).collect();
        let want = direct_solve(dense, rhs);
        for i in 0..n {
            assert!(
                (x[i * m + c] - want[i]).abs() < 1e-8 * (1.0 + want[i].abs()),
                "column {c} row {i}: {} vs {}",
                x[i * m + c],
                want[i]
            );
        }
    }
}

#[test]
fn cholesky_refuses_an_indefinite_matrix() {
    let n = NB + 3;
    let mut a = spd(n, 3);
    a[(n - 1) * n + n - 1] = -1.0e6;
    assert!(!cholesky(&mut a, n));
}

#[test]
fn solve_normal_matches_the_ridge_correction_form() {
    // With C = G t (targets are the model's own inputs) the normal equations over all
    // features give back the weights `solve_ridge` finds with nothing removed.
    let n = 9;
    let mut next = lcg(5);
    let mut gram = vec![0.0; n * n];
    for _ in 0..60 {
        let row: Vec<f64> = (0..n).map(|_| next()).collect();
        for i in 0..n {
            for j in 0..n {
                gram[i * n + j] += row[i] * row[j];
            }
        }
    }
    let t: Vec<f64> = (0..n).map(|_| next()).collect();
    let cross: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| gram[i * n + j] * t[j]).sum())
        .collect();
    let all: Vec<usize> = (0..n).collect();
    let want = solve_ridge(&gram, n, &all, &[], std::slice::from_ref(&t))
        .unwrap()
        .0;
    let got = solve_normal(&gram, n, &[], &cross, 1).unwrap().0;
    for (g, w) in got.iter().zip(&want[0]) {
        assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
    }
}

#[test]
fn gram_matches_the_dense_product_across_tiles_and_blocks() {
    // More features than one tile and more rows than one block.
    let n = TILE + 37;
    let rows = ROW_BLOCK + 45;
    let mut next = lcg(11);
    let data: Vec<Vec<f32>> = (0..rows)
        .map(|_| (0..n).map(|_| next() as f32).collect())
        .collect();
    let mut g = Gram::new(n);
    for r in &data {
        g.row().copy_from_slice(r);
    }
    assert_eq!(g.rows, rows as u64);
    let m = g.finish();
    for i in (0..n).step_by(13) {
        for j in (0..n).step_by(7) {
            let want: f64 = data.iter().map(|r| r[i] as f64 * r[j] as f64).sum();
            // f32 products summed in f32 over at most ROW_BLOCK rows.
            assert!(
                (m[i * n + j] - want).abs() < 1e-4,
                "({i},{j}): {} vs {want}",
                m[i * n + j]
            );
        }
    }
}

#[test]
fn fewer_rows_than_features_with_a_common_mean_still_solve_with_more_ridge() {
    // What an MLP down projection reads with few calibration samples: positive activations
    // (a large common mean) and fewer rows than features. The f32-accumulated Gram matrix is
    // singular up to rounding that the smallest ridge does not cover; the solve must grow
    // the ridge, not give up (ViT-B/16 at 64 samples: 2,048 rows for 2,765 features).
    let (n, rows) = (600, 300);
    let mut next = lcg(5);
    let data: Vec<Vec<f32>> = (0..rows)
        .map(|_| (0..n).map(|_| (10.0 + 0.05 * next()) as f32).collect())
        .collect();
    let mut g = Gram::new(n);
    for r in &data {
        g.row().copy_from_slice(r);
    }
    let gram = g.finish();
    let kept: Vec<usize> = (0..n).filter(|i| i % 50 != 0).collect();
    let k = kept.len();
    let mut smallest: Vec<f64> = kept
        .iter()
        .flat_map(|&i| kept.iter().map(move |&j| (i, j)))
        .map(|(i, j)| gram[i * n + j])
        .collect();
    let mean = (0..k).map(|r| smallest[r * k + r]).sum::<f64>() / k as f64;
    for r in 0..k {
        smallest[r * k + r] += RIDGE * mean;
    }
    assert!(
        !cholesky(&mut smallest, k),
        "premise: the smallest ridge does not make the kept block positive definite"
    );
    let target: Vec<f64> = (0..n).map(|_| next()).collect();
    let (got, ridge) = solve_ridge(&gram, n, &kept, &[], std::slice::from_ref(&target))
        .expect("a larger ridge makes it positive definite");
    assert!(
        ridge.relative > RIDGE && ridge.relative <= MAX_RIDGE,
        "{ridge:?}"
    );
    // The fit still reproduces the dense outputs on the rows: relative residual below 1e-4.
    let (mut residual, mut energy) = (0.0, 0.0);
    for r in &data {
        let want: f64 = (0..n).map(|f| r[f] as f64 * target[f]).sum();
        let have: f64 = kept
            .iter()
            .zip(&got[0])
            .map(|(&f, w)| r[f] as f64 * w)
            .sum();
        residual += (want - have).powi(2);
        energy += want * want;
    }
    assert!(residual < 1e-4 * energy, "residual {residual} of {energy}");
}
