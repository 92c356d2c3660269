//! Dense least squares for layer-wise reconstruction: the Gram matrix `XᵀX` of streamed rows
//! (f32 products of a block of rows accumulated into f64, tile by tile, tiles in parallel),
//! a blocked Cholesky factorisation and blocked triangular solves with many right-hand sides.
//! Every large product goes through `matrixmultiply`'s cache-blocked SIMD kernels (through
//! ndarray's safe `general_mat_mul` on strided views); parallelism comes from rayon over tiles and rows.
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

/// Ridge strength relative to the mean diagonal of the kept Gram block.
pub const RIDGE: f64 = 1e-5;
/// The largest relative ridge `damped` grows to (tenfold steps from `RIDGE`), GPTQ's and
/// SparseGPT's damping being 1e-2.
pub const MAX_RIDGE: f64 = 1e-1;
/// Rows gathered before one Gram update: the f32 products of one block are summed in f32
/// (at most this many terms), then added to the f64 matrix.
pub const ROW_BLOCK: usize = 256;
/// Side of a square Gram tile (one parallel task).
const TILE: usize = 256;
/// Column block of the Cholesky factorisation and of the triangular solves.
const NB: usize = 128;

/// A read-only strided matrix: element `(i, j)` at `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> View<'a, T> {
    fn new(data: &'a [T], offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        View {
            data,
            offset,
            rows,
            cols,
            rs,
            cs,
        }
    }
    /// True when every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `c[.. m×n, row stride rsc] = alpha·A·B + beta·c` for f32 (`A` m×k, `B` k×n); with `k = 0`
/// it leaves `c` as it is (callers pass `beta = 1` whenever `k` can be 0).
fn sgemm(alpha: f32, a: View<f32>, b: View<f32>, beta: f32, c: &mut [f32], rsc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && a.in_bounds() && b.in_bounds(),
        "sgemm operands"
    );
    assert!(m == 0 || n == 0 || (rsc >= n && (m - 1) * rsc + n <= c.len()));
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let a = ArrayView2::from_shape((m, k).strides((a.rs, a.cs)), &a.data[a.offset..])
        .expect("sgemm: A in bounds");
    let b = ArrayView2::from_shape((k, n).strides((b.rs, b.cs)), &b.data[b.offset..])
        .expect("sgemm: B in bounds");
    let mut c = ArrayViewMut2::from_shape((m, n).strides((rsc, 1)), c).expect("sgemm: C in bounds");
    // ndarray hands these strided views to matrixmultiply's sgemm (no unsafe here).
    general_mat_mul(alpha, &a, &b, beta, &mut c);
}

/// `c[.. m×n, row stride rsc] = alpha·A·B + beta·c` for f64 (`A` m×k, `B` k×n); `k = 0` as
/// in `sgemm`.
fn dgemm(alpha: f64, a: View<f64>, b: View<f64>, beta: f64, c: &mut [f64], rsc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && a.in_bounds() && b.in_bounds(),
        "dgemm operands"
    );
    assert!(m == 0 || n == 0 || (rsc >= n && (m - 1) * rsc + n <= c.len()));
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let a = ArrayView2::from_shape((m, k).strides((a.rs, a.cs)), &a.data[a.offset..])
        .expect("dgemm: A in bounds");
    let b = ArrayView2::from_shape((k, n).strides((b.rs, b.cs)), &b.data[b.offset..])
        .expect("dgemm: B in bounds");
    let mut c = ArrayViewMut2::from_shape((m, n).strides((rsc, 1)), c).expect("dgemm: C in bounds");
    // ndarray hands these strided views to matrixmultiply's dgemm (no unsafe here).
    general_mat_mul(alpha, &a, &b, beta, &mut c);
}

/// Accumulates `XᵀX` (f64) from rows of features handed out one at a time and, with
/// targets, the cross products `XᵀY` (`n × m`).
pub struct Gram {
    pub n: usize,
    /// Upper triangle (row-major `n×n`) until `finish` mirrors it.
    matrix: Vec<f64>,
    block: Vec<f32>,
    pending: usize,
    pub rows: u64,
    /// Target columns (0 without targets), the pending target rows and `XᵀY`.
    m: usize,
    targets: Vec<f32>,
    cross: Vec<f64>,
}

impl Gram {
    pub fn new(n: usize) -> Self {
        Gram {
            n,
            matrix: vec![0.0; n * n],
            block: vec![0.0; ROW_BLOCK * n],
            pending: 0,
            rows: 0,
            m: 0,
            targets: Vec::new(),
            cross: Vec::new(),
        }
    }

    /// A Gram matrix that also accumulates `XᵀY` against `m` target columns.
    pub fn with_targets(n: usize, m: usize) -> Self {
        Gram {
            m,
            targets: vec![0.0; ROW_BLOCK * m],
            cross: vec![0.0; n * m],
            ..Gram::new(n)
        }
    }

    /// The next row to fill and its target row (both zeroed).
    pub fn row_and_target(&mut self) -> (&mut [f32], &mut [f32]) {
        let (p, n, m) = (self.next_index(), self.n, self.m);
        let row = &mut self.block[p * n..(p + 1) * n];
        row.fill(0.0);
        let target = &mut self.targets[p * m..(p + 1) * m];
        target.fill(0.0);
        (row, target)
    }

    /// `XᵀY` so far (`n × m`, row-major); empty without targets.
    pub fn take_cross(&mut self) -> Vec<f64> {
        self.flush();
        std::mem::take(&mut self.cross)
    }

    /// The next row to fill (zeroed).
    pub fn row(&mut self) -> &mut [f32] {
        let (p, n) = (self.next_index(), self.n);
        let row = &mut self.block[p * n..(p + 1) * n];
        row.fill(0.0);
        row
    }

    /// The block position of the next row (flushing a full block first).
    fn next_index(&mut self) -> usize {
        if self.pending == ROW_BLOCK {
            self.flush();
        }
        self.pending += 1;
        self.rows += 1;
        self.pending - 1
    }

    /// Adds the pending rows' products to the upper triangle, one tile row per task.
    fn flush(&mut self) {
        let (n, r) = (self.n, self.pending);
        if r == 0 || n == 0 {
            return;
        }
        let block = &self.block[..r * n];
        let m = self.m;
        if m > 0 {
            let targets = &self.targets[..r * m];
            self.cross
                .par_chunks_mut(TILE * m)
                .enumerate()
                .for_each(|(ti, rows)| {
                    let i0 = ti * TILE;
                    let h = rows.len() / m;
                    let mut scratch = vec![0f32; h * m];
                    let a = View::new(block, i0, h, r, 1, n);
                    let b = View::new(targets, 0, r, m, m, 1);
                    sgemm(1.0, a, b, 0.0, &mut scratch, m);
                    for (t, &s) in rows.iter_mut().zip(&scratch) {
                        *t += s as f64;
                    }
                });
        }
        self.matrix
            .par_chunks_mut(TILE * n)
            .enumerate()
            .for_each(|(ti, rows)| {
                let i0 = ti * TILE;
                let h = rows.len() / n;
                let mut scratch = vec![0f32; h * TILE];
                for j0 in (i0..n).step_by(TILE) {
                    let w = TILE.min(n - j0);
                    // Bᵀ[i0.., :] · B[:, j0..]: element (i, row) of the transposed view at
                    // block[row·n + i0 + i].
                    let a = View::new(block, i0, h, r, 1, n);
                    let b = View::new(block, j0, r, w, n, 1);
                    sgemm(1.0, a, b, 0.0, &mut scratch, w);
                    for i in 0..h {
                        let target = &mut rows[i * n + j0..i * n + j0 + w];
                        for (t, &s) in target.iter_mut().zip(&scratch[i * w..(i + 1) * w]) {
                            *t += s as f64;
                        }
                    }
                }
            });
        self.pending = 0;
    }

    /// The full symmetric matrix.
    pub fn finish(mut self) -> Vec<f64> {
        self.flush();
        let n = self.n;
        for i in 0..n {
            for j in 0..i {
                self.matrix[i * n + j] = self.matrix[j * n + i];
            }
        }
        self.matrix
    }
}

/// In-place blocked Cholesky `A = L Lᵀ` of a symmetric positive definite `n×n` matrix (its
/// lower triangle is read and overwritten by `L`; rows contiguous); false when it is not
/// positive definite.
pub fn cholesky(a: &mut [f64], n: usize) -> bool {
    let mut k0 = 0;
    while k0 < n {
        let k1 = (k0 + NB).min(n);
        let nb = k1 - k0;
        // The diagonal block, unblocked (earlier blocks are already subtracted).
        for j in k0..k1 {
            let row_j = &mut a[j * n..(j + 1) * n];
            let d = row_j[j] - dot(&row_j[k0..j], &row_j[k0..j]);
            if d.is_nan() || d <= 0.0 {
                return false;
            }
            let d = d.sqrt();
            row_j[j] = d;
            for i in j + 1..k1 {
                let (top, bottom) = a.split_at_mut(i * n);
                let row_j = &top[j * n + k0..j * n + j];
                let row_i = &mut bottom[..n];
                row_i[j] = (row_i[j] - dot(&row_i[k0..j], row_j)) / d;
            }
        }
        if k1 == n {
            break;
        }
        // The panel below: L[i, k0..k1] = A[i, k0..k1] · L_kk⁻ᵀ, row by row in parallel.
        let (top, bottom) = a.split_at_mut(k1 * n);
        let diag = &top[k0 * n..];
        bottom.par_chunks_mut(n).for_each(|row| {
            for j in k0..k1 {
                let lj = &diag[(j - k0) * n..];
                row[j] = (row[j] - dot(&row[k0..j], &lj[k0..j])) / lj[j];
            }
        });
        // The trailing lower triangle minus panel · panelᵀ, one tile of rows per task, from a
        // contiguous copy of the panel.
        let m = n - k1;
        let mut panel = vec![0.0; m * nb];
        for (i, p) in panel.chunks_mut(nb).enumerate() {
            p.copy_from_slice(&bottom[i * n + k0..i * n + k1]);
        }
        bottom
            .par_chunks_mut(TILE * n)
            .enumerate()
            .for_each(|(ti, rows)| {
                let r0 = ti * TILE;
                let h = rows.len() / n;
                let a = View::new(&panel, r0 * nb, h, nb, nb, 1);
                let b = View::new(&panel, 0, nb, r0 + h, 1, nb);
                dgemm(-1.0, a, b, 1.0, &mut rows[k1..], n);
            });
        k0 = k1;
    }
    true
}

/// Solves `L Lᵀ X = B` in place for `B` (`n×m`, row-major), `L` from `cholesky`.
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    // Forward: L Y = B, a block of rows at a time.
    let mut i0 = 0;
    while i0 < n {
        let i1 = (i0 + NB).min(n);
        let (done, rest) = b.split_at_mut(i0 * m);
        let current = &mut rest[..(i1 - i0) * m];
        dgemm(
            -1.0,
            View::new(l, i0 * n, i1 - i0, i0, n, 1),
            View::new(done, 0, i0, m, m, 1),
            1.0,
            current,
            m,
        );
        for i in i0..i1 {
            let (above, row) = current.split_at_mut((i - i0) * m);
            let row = &mut row[..m];
            for p in i0..i {
                let lip = l[i * n + p];
                let yp = &above[(p - i0) * m..(p - i0 + 1) * m];
                for (x, &y) in row.iter_mut().zip(yp) {
                    *x -= lip * y;
                }
            }
            let d = l[i * n + i];
            row.iter_mut().for_each(|x| *x /= d);
        }
        i0 = i1;
    }
    // Backward: Lᵀ X = Y, from the last block of rows.
    let mut i1 = n;
    while i1 > 0 {
        let i0 = i1.saturating_sub(NB);
        let (head, solved) = b.split_at_mut(i1 * m);
        let current = &mut head[i0 * m..];
        // (L[i1.., i0..i1])ᵀ: element (i, p) at l[(i1 + p)·n + i0 + i].
        dgemm(
            -1.0,
            View::new(l, i1 * n + i0, i1 - i0, n - i1, 1, n),
            View::new(solved, 0, n - i1, m, m, 1),
            1.0,
            current,
            m,
        );
        for i in (i0..i1).rev() {
            let (row, below) = current.split_at_mut((i - i0 + 1) * m);
            let row = &mut row[(i - i0) * m..];
            for p in i + 1..i1 {
                let lpi = l[p * n + i];
                let xp = &below[(p - i - 1) * m..(p - i) * m];
                for (x, &y) in row.iter_mut().zip(xp) {
                    *x -= lpi * y;
                }
            }
            let d = l[i * n + i];
            row.iter_mut().for_each(|x| *x /= d);
        }
        i1 = i0;
    }
}

/// Dot product with four partial sums (lets the compiler use SIMD lanes).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// Adds `λ` to the `penalised` diagonal of the symmetric `n×n` matrix `fresh()` makes and
/// hands the result to `factor`, with `λ = RIDGE · mean penalised diagonal` first and tenfold
/// more while `factor` finds it not positive definite, up to `MAX_RIDGE`: a Gram matrix of
/// fewer rows than features is singular, and its f32-accumulated rounding (relative to its
/// largest eigenvalue, which features with a common mean make large) can exceed the smallest
/// ridge. `fresh` is called once per attempt (a factorisation overwrites its matrix), so only
/// one copy is alive at a time. Returns what `factor` made and the ridge it took; `None` when
/// even the largest failed.
pub fn damped<T>(
    fresh: impl Fn() -> Vec<f64>,
    n: usize,
    penalised: &[usize],
    factor: impl Fn(Vec<f64>) -> Option<T>,
) -> Option<(T, Ridge)> {
    let mut h = fresh();
    let trace: f64 = penalised.iter().map(|&r| h[r * n + r]).sum();
    let mean = trace / penalised.len().max(1) as f64;
    let mean = if mean > 0.0 && mean.is_finite() {
        mean
    } else {
        1.0
    };
    let mut relative = RIDGE;
    loop {
        let lambda = relative * mean;
        for &r in penalised {
            h[r * n + r] += lambda;
        }
        if let Some(made) = factor(h) {
            return Some((made, Ridge { relative, lambda }));
        }
        relative *= 10.0;
        if relative > MAX_RIDGE * (1.0 + 1e-9) {
            return None;
        }
        h = fresh();
    }
}

/// The ridge a solve took: `lambda` added to the penalised diagonal, `relative` to its mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ridge {
    pub relative: f64,
    pub lambda: f64,
}

/// The kept block `G_KK` of a Gram matrix plus `λ` on the penalised diagonal, factorised
/// (`λ` from `damped`). Returns (factor, per-row ridge, the ridge), `None` when the system
/// is not positive definite at any ridge `damped` tries.
fn factor_kept(
    gram: &[f64],
    n: usize,
    kept: &[usize],
    unpenalised: &[usize],
) -> Option<(Vec<f64>, Vec<f64>, Ridge)> {
    let k = kept.len();
    let kept_block = || {
        let mut a = vec![0.0; k * k];
        for (r, &i) in kept.iter().enumerate() {
            for (c, &j) in kept.iter().enumerate() {
                a[r * k + c] = gram[i * n + j];
            }
        }
        a
    };
    let penalised: Vec<usize> = (0..k)
        .filter(|&r| !unpenalised.contains(&kept[r]))
        .collect();
    let (l, used) = damped(kept_block, k, &penalised, |mut h| {
        cholesky(&mut h, k).then_some(h)
    })?;
    let mut ridge = vec![0.0; k];
    for &r in &penalised {
        ridge[r] = used.lambda;
    }
    Some((l, ridge, used))
}

/// Ridge least squares from a Gram matrix: for each column `t` of `targets` (`n × m`, the
/// original weights over every feature), the weights over `kept` features minimising
/// `||X t − X_K w||² + λ||w||²`; `unpenalised` features (the bias column) get no ridge.
/// Also returns the ridge it took (`damped`); `None` when the system is not positive definite.
pub fn solve_ridge(
    gram: &[f64],
    n: usize,
    kept: &[usize],
    unpenalised: &[usize],
    targets: &[Vec<f64>],
) -> Option<(Vec<Vec<f64>>, Ridge)> {
    let (k, m) = (kept.len(), targets.len());
    let (l, ridge, used) = factor_kept(gram, n, kept, unpenalised)?;
    // A x = G_K· t = A t_K + G_KR t_R − Λ t_K, so x = t_K + A⁻¹ (G_KR t_R − Λ t_K): the
    // right-hand side only reads the removed features' columns.
    let mut is_kept = vec![false; n];
    for &i in kept {
        is_kept[i] = true;
    }
    let removed: Vec<usize> = (0..n).filter(|&i| !is_kept[i]).collect();
    let r = removed.len();
    let mut cross = vec![0.0; k * r];
    for (row, &i) in cross.chunks_mut(r.max(1)).zip(kept) {
        for (x, &j) in row.iter_mut().zip(&removed) {
            *x = gram[i * n + j];
        }
    }
    let mut t_removed = vec![0.0; r * m];
    for (o, t) in targets.iter().enumerate() {
        for (p, &j) in removed.iter().enumerate() {
            t_removed[p * m + o] = t[j];
        }
    }
    let mut b = vec![0.0; k * m];
    for (row, (&i, &lambda)) in b.chunks_mut(m.max(1)).zip(kept.iter().zip(&ridge)) {
        for (x, t) in row.iter_mut().zip(targets) {
            *x = -lambda * t[i];
        }
    }
    dgemm(
        1.0,
        View::new(&cross, 0, k, r, r, 1),
        View::new(&t_removed, 0, r, m, m, 1),
        1.0,
        &mut b,
        m,
    );
    cholesky_solve(&l, k, &mut b, m);
    let out: Vec<Vec<f64>> = targets
        .iter()
        .enumerate()
        .map(|(o, t)| (0..k).map(|p| b[p * m + o] + t[kept[p]]).collect())
        .collect();
    out.iter()
        .all(|x| x.iter().all(|v| v.is_finite()))
        .then_some((out, used))
}

/// Ridge least squares from normal equations: `(G + Λ) W = C` for `W` (`n × m`), `G` the
/// `n×n` Gram matrix of the inputs, `C = XᵀY` (`n × m`, row-major) against the targets `Y`,
/// `Λ` the ridge on every feature but `unpenalised` (`damped`, returned with `W`). `None`
/// when not positive definite.
pub fn solve_normal(
    gram: &[f64],
    n: usize,
    unpenalised: &[usize],
    cross: &[f64],
    m: usize,
) -> Option<(Vec<f64>, Ridge)> {
    let all: Vec<usize> = (0..n).collect();
    let (l, _, used) = factor_kept(gram, n, &all, unpenalised)?;
    let mut b = cross.to_vec();
    cholesky_solve(&l, n, &mut b, m);
    b.iter().all(|v| v.is_finite()).then_some((b, used))
}

#[cfg(test)]
#[path = "lsq_tests.rs"]
mod tests;
