//! Gauss–Legendre quadrature nodes and weights: one rule on an interval, or a composite rule
//! of equal panels (the radial tables of LODE, projections, tests).

/// Nodes and weights of the `n`-point Gauss–Legendre rule on [−1, 1], exact for polynomials
/// of degree ≤ 2n−1.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, 0.0);
            for j in 0..n {
                let p2 = p1;
                p1 = p0;
                p0 = ((2 * j + 1) as f64 * z * p1 - j as f64 * p2) / (j + 1) as f64;
            }
            dp = n as f64 * (z * p0 - p1) / (z * z - 1.0);
            let dz = p0 / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
        w[n - 1 - i] = w[i];
    }
    (x, w)
}

/// Nodes and weights of the `n`-point Gauss–Legendre rule mapped to [a, b].
#[cfg(test)]
pub fn gauss_legendre_interval(n: usize, a: f64, b: f64) -> (Vec<f64>, Vec<f64>) {
    let (x, w) = gauss_legendre(n);
    let h = 0.5 * (b - a);
    (
        x.iter().map(|&t| a + h * (t + 1.0)).collect(),
        w.iter().map(|&v| v * h).collect(),
    )
}

/// Composite `order`-point Gauss–Legendre rule on [a, b]: equal panels of width at most `h`
/// (at least one, at most 100 000), nodes in increasing order.
pub fn composite_gauss_legendre(a: f64, b: f64, h: f64, order: usize) -> (Vec<f64>, Vec<f64>) {
    let (x, w) = gauss_legendre(order);
    let panels = (((b - a) / h).ceil() as usize).clamp(1, 100_000);
    let width = (b - a) / panels as f64;
    let mut nodes = Vec::with_capacity(panels * order);
    let mut weights = Vec::with_capacity(panels * order);
    for p in 0..panels {
        let lo = a + p as f64 * width;
        for k in 0..order {
            nodes.push(lo + 0.5 * width * (x[k] + 1.0));
            weights.push(0.5 * width * w[k]);
        }
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    #[test]
    fn integrates_polynomials() {
        let (x, w) = super::gauss_legendre(10);
        let s: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(18)).sum();
        assert!((s - 2.0 / 19.0).abs() < 1e-14);
        let (x, w) = super::gauss_legendre_interval(7, 0.0, 2.0);
        let s: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(5)).sum();
        assert!((s - 64.0 / 6.0).abs() < 1e-12);
        // 7 panels of 5 points: exact for degree 9 on each panel; e^x to near round-off
        let (x, w) = super::composite_gauss_legendre(-1.0, 2.5, 0.5, 5);
        assert_eq!(x.len(), 35);
        let s: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(9)).sum();
        assert!((s - (2.5f64.powi(10) - 1.0) / 10.0).abs() < 1e-10);
        let s: f64 = x.iter().zip(&w).map(|(x, w)| w * x.exp()).sum();
        assert!((s - (2.5f64.exp() - (-1.0f64).exp())).abs() < 1e-12);
    }
}
