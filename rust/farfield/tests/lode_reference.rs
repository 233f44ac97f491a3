//! LODE values and gradients against independent references (docs/science.md §2):
//!
//! * periodic exact path (k-space sum; on cells with axes along x, y, z the dense gradients go
//!   through the mirror-reduced sums of `lode/mirror.rs`) and mesh path against featomic 0.6.7,
//!   values and the contraction of the position gradients, stored in `data/lode_reference.txt`
//!   by `data/generate_lode_reference.py`;
//! * open path against the real-space quadrature of §2.5 stored in the same file (featomic has
//!   no open systems), and against closed forms for the Coulomb density with one Gaussian
//!   radial function: the exact l = 0 projection (two Gaussians: erf(d/√2s)/d) and the
//!   multipole expansion of every l for distant neighbours;
//! * periodic closed forms: the same single-Gaussian l = 0 projection as a k-space sum written
//!   here, and the Madelung constants of NaCl and CsCl;
//! * position and strain gradients and the backward pass (exact and mesh) against finite
//!   differences;
//! * the mirror-reduced gradients against the plain summation of the rotated system (whose
//!   cell is no longer diagonal), rotated back with the harmonics' rotation matrices;
//! * supercells and equivalent cell bases give the same features and (image-summed) gradients.

// index loops read closer to the formulas
#![allow(clippy::needless_range_loop)]

mod common;

use common::{max_abs, max_diff, real_ylm, rotate_cell, rotate_features, rotation, Mat3, Vec3};
use farfield::lode::{self, BasisKind, LodeExpansion, LodeOutput, LodeParameters, Method};
use farfield::System;
use std::collections::HashMap;
use std::f64::consts::PI;

// ------------------------------------------------------------------ the reference file

struct Case {
    name: String,
    fields: HashMap<String, Vec<String>>,
}

impl Case {
    fn floats(&self, key: &str) -> Vec<f64> {
        self.fields[key]
            .iter()
            .map(|x| x.parse().unwrap())
            .collect()
    }
    fn float(&self, key: &str) -> f64 {
        self.floats(key)[0]
    }
    fn ints(&self, key: &str) -> Vec<i32> {
        self.fields[key]
            .iter()
            .map(|x| x.parse().unwrap())
            .collect()
    }
    fn periodic(&self) -> bool {
        self.fields["path"][0] == "periodic"
    }
    fn params(&self) -> LodeParameters {
        let mut parameters = LodeParameters::new(
            self.float("exponent"),
            self.float("smearing"),
            self.ints("max_angular")[0] as usize,
            self.ints("max_radial")[0] as usize,
            self.float("radius"),
        );
        parameters.basis = match self.fields["basis"][0].as_str() {
            "gto" => BasisKind::Gto,
            "monomial" => BasisKind::Monomial,
            other => panic!("basis {other}"),
        };
        parameters.center_atom_weight = self.float("center_atom_weight");
        parameters
    }
    fn cell(&self) -> Option<Mat3> {
        if self.fields["cell"][0] == "none" {
            return None;
        }
        let c = self.floats("cell");
        Some([0, 1, 2].map(|a| [0, 1, 2].map(|b| c[3 * a + b])))
    }
    fn system(&self) -> System {
        let p = self.floats("positions");
        let positions = p.chunks(3).map(|r| [r[0], r[1], r[2]]).collect();
        System::new(positions, self.ints("numbers"), self.cell()).unwrap()
    }
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/lode_reference.txt");
    let mut out = Vec::new();
    let mut current: Option<Case> = None;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let key = words.next().unwrap();
        let rest: Vec<String> = words.map(str::to_string).collect();
        match key {
            "case" => {
                current = Some(Case {
                    name: rest[0].clone(),
                    fields: HashMap::new(),
                })
            }
            "end" => out.push(current.take().unwrap()),
            _ => {
                current.as_mut().unwrap().fields.insert(key.into(), rest);
            }
        }
    }
    assert_eq!(out.len(), 7, "the reference file holds 7 cases");
    out
}

/// The weights of the stored gradient contraction: g[x] = sin(0.37 x + 0.1).
fn weights(n: usize) -> Vec<f64> {
    (0..n).map(|x| (0.37 * x as f64 + 0.1).sin()).collect()
}

fn request(positions: bool, strain: bool) -> lode::GradientRequest {
    lode::GradientRequest {
        positions,
        strain,
        cell: false,
    }
}

fn species_of(system: &System) -> Vec<i32> {
    let mut s = system.numbers().to_vec();
    s.sort_unstable();
    s.dedup();
    s
}

/// dL/dr_j = Σ_x g[x] ∂values[x]/∂r_j from the dense pair and self gradients.
fn contract_dense(out: &LodeOutput, types: &[usize], g: &[f64]) -> Vec<f64> {
    let n = out.n_atoms;
    let na = out.species.len();
    let f = out.values.len() / (n * na);
    let pair = out.pair_gradients.as_ref().unwrap();
    let own = out.self_gradients.as_ref().unwrap();
    let mut dl = vec![0.0; 3 * n];
    for j in 0..n {
        for al in 0..3 {
            let mut s = 0.0;
            for i in 0..n {
                if i == j {
                    for a in 0..na {
                        for x in 0..f {
                            s += g[(j * na + a) * f + x] * own[((j * 3 + al) * na + a) * f + x];
                        }
                    }
                } else {
                    let a = types[j];
                    for x in 0..f {
                        s += g[(i * na + a) * f + x] * pair[((i * n + j) * 3 + al) * f + x];
                    }
                }
            }
            dl[3 * j + al] = s;
        }
    }
    dl
}

fn types_of(system: &System, species: &[i32]) -> Vec<usize> {
    system
        .numbers()
        .iter()
        .map(|z| species.iter().position(|s| s == z).unwrap())
        .collect()
}

/// featomic's own closed forms for even p carry ~1e-10 absolute noise (science.md §2.4);
/// the monomial reference goes through featomic's spline of the radial integrals.
fn featomic_tolerance(case: &Case) -> f64 {
    if case.fields["basis"][0] == "monomial" {
        1e-8
    } else if case.float("exponent") % 2.0 == 0.0 {
        3e-10
    } else {
        2e-11
    }
}

#[test]
fn periodic_exact_path_matches_featomic() {
    for case in cases().iter().filter(|c| c.periodic()) {
        let system = case.system();
        let species = species_of(&system);
        assert_eq!(species, case.ints("species"));
        let calc = LodeExpansion::new(case.params()).unwrap();
        let want_grad = case.fields.contains_key("dl_dr");
        let out = calc
            .compute(&system, &species, request(want_grad, false))
            .unwrap();
        let reference = case.floats("values");
        let tol = featomic_tolerance(case);
        let scale = max_abs(&reference).max(1.0);
        let err = max_diff(&out.values, &reference);
        assert!(err < tol * scale, "{}: values differ by {err:e}", case.name);
        if want_grad {
            let expected = case.floats("dl_dr");
            let g = weights(out.values.len());
            let dense = contract_dense(&out, &types_of(&system, &species), &g);
            let gscale = max_abs(&expected).max(1.0);
            let err = max_diff(&dense, &expected);
            assert!(
                err < 4.0 * tol * gscale,
                "{}: dense gradients differ by {err:e}",
                case.name
            );
            let back = calc.backward(&system, &species, &g).unwrap();
            let flat: Vec<f64> = back.positions.iter().flatten().copied().collect();
            let err = max_diff(&flat, &expected);
            assert!(
                err < 4.0 * tol * gscale,
                "{}: backward differs by {err:e}",
                case.name
            );
        }
    }
}

/// The mesh path reaches the requested accuracy relative to the largest coefficient, measured
/// against featomic; and is an approximation (not a copy of the exact path).
#[test]
fn periodic_mesh_path_matches_featomic_at_requested_accuracy() {
    for case in cases()
        .iter()
        .filter(|c| c.periodic() && c.fields["basis"][0] == "gto")
    {
        let system = case.system();
        let species = species_of(&system);
        let calc = LodeExpansion::new(case.params()).unwrap();
        let reference = case.floats("values");
        let scale = max_abs(&reference);
        for accuracy in [1e-3, 1e-5, 1e-7] {
            let (out, used_mesh) = calc
                .compute_with(
                    &system,
                    &species,
                    request(false, false),
                    Method::Mesh(accuracy),
                )
                .unwrap();
            assert!(used_mesh);
            let err = max_diff(&out.values, &reference) / scale;
            assert!(
                err < accuracy,
                "{} at accuracy {accuracy:e}: relative error {err:e}",
                case.name
            );
            assert!(
                err > 1e-14,
                "{}: the mesh path returned exact values",
                case.name
            );
        }
    }
}

#[test]
fn open_path_matches_real_space_quadrature() {
    for case in cases().iter().filter(|c| !c.periodic()) {
        let system = case.system();
        let species = species_of(&system);
        let calc = LodeExpansion::new(case.params()).unwrap();
        let out = calc
            .compute(&system, &species, request(false, false))
            .unwrap();
        let reference = case.floats("values");
        let err = max_diff(&out.values, &reference);
        assert!(
            err < 1e-11 * max_abs(&reference),
            "{}: values differ by {err:e}",
            case.name
        );
    }
}

// ------------------------------------------------------------------ closed forms

/// One normalised Gaussian radial function of width r0, Coulomb density of width σ.
fn single_gaussian(
    sigma: f64,
    r0: f64,
    lmax: usize,
    weight: f64,
    k_cutoff: Option<f64>,
) -> LodeExpansion {
    let mut parameters = LodeParameters::new(1.0, sigma, lmax, 0, r0);
    parameters.k_cutoff = k_cutoff;
    parameters.center_atom_weight = weight;
    LodeExpansion::new(parameters).unwrap()
}

/// The Gaussian basis function R(r) Y_00 is a Gaussian of width r0 and integral
/// A = (4π r0²)^{3/4}: its l = 0 projection of the potential of a Gaussian charge of width σ
/// is A erf(d/(√2 s))/d with s² = σ² + r0² (A √(2/π)/s at d = 0, the centre term).
#[test]
fn open_coulomb_l0_is_the_overlap_of_two_gaussians() {
    let (sigma, r0, w) = (0.45, 0.7, 0.3);
    let calc = single_gaussian(sigma, r0, 0, w, None);
    let positions = vec![
        [0.0, 0.0, 0.0],
        [0.9, 0.3, -0.2],
        [-0.4, 1.6, 0.8],
        [2.1, -0.7, 1.3],
    ];
    let numbers = vec![8, 1, 1, 8];
    let system = System::new(positions.clone(), numbers.clone(), None).unwrap();
    let species = [1, 8];
    let out = calc
        .compute(&system, &species, request(false, false))
        .unwrap();
    let a = (4.0 * PI * r0 * r0).powf(0.75);
    let s = (sigma * sigma + r0 * r0).sqrt();
    for i in 0..4 {
        for (ai, &sp) in species.iter().enumerate() {
            let mut want = 0.0;
            for j in 0..4 {
                if numbers[j] != sp {
                    continue;
                }
                if i == j {
                    want += w * a * (2.0 / PI).sqrt() / s;
                } else {
                    let d: f64 = (0..3)
                        .map(|x| (positions[j][x] - positions[i][x]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    want += a * libm::erf(d / (2.0f64.sqrt() * s)) / d;
                }
            }
            let got = out.values[i * 2 + ai];
            assert!(
                (got - want).abs() < 1e-12 * want.abs(),
                "atom {i} species {sp}: {got} vs {want}"
            );
        }
    }
}

/// For neighbours far beyond both widths, the potential inside the basis function is that of a
/// point charge, 1/|x − d| = Σ_l 4π/(2l+1) r^l/d^{l+1} Σ_m Y_lm(x̂) Y_lm(d̂), so
/// c_lm = 4π/(2l+1) Y_lm(d̂)/d^{l+1} N ∫ r^{l+2} e^{-r²/(2r0²)} dr, for every l ≤ 3.
#[test]
fn open_coulomb_multipoles_of_distant_neighbours() {
    let (sigma, r0) = (0.3, 0.3);
    let calc = single_gaussian(sigma, r0, 3, 0.0, None);
    let positions: Vec<Vec3> = vec![[0.0, 0.0, 0.0], [3.6, 1.2, -0.9], [-1.1, 2.9, 2.6]];
    let numbers = vec![1, 8, 8];
    let system = System::new(positions.clone(), numbers.clone(), None).unwrap();
    let species = [1, 8];
    let out = calc
        .compute(&system, &species, request(false, false))
        .unwrap();
    let norm = (2.0 / (r0.powi(3) * PI.sqrt() / 2.0)).sqrt();
    let gamma_half = [PI.sqrt() / 2.0, 1.0, 0.75 * PI.sqrt(), 2.0]; // Γ((l+3)/2)
    let f = 16;
    let mut worst = 0.0f64;
    for i in 0..3 {
        for (ai, &sp) in species.iter().enumerate() {
            let mut want = vec![0.0; f];
            for j in (0..3).filter(|&j| j != i && numbers[j] == sp) {
                let d: Vec3 = [0, 1, 2].map(|x| positions[j][x] - positions[i][x]);
                let dn = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                for l in 0..=3 {
                    let radial =
                        norm * 0.5 * (2.0 * r0 * r0).powf((l as f64 + 3.0) / 2.0) * gamma_half[l];
                    let y = real_ylm(l, &d);
                    for m in 0..2 * l + 1 {
                        want[l * l + m] +=
                            4.0 * PI / (2 * l + 1) as f64 * y[m] / dn.powi(l as i32 + 1) * radial;
                    }
                }
            }
            let got = &out.values[(i * 2 + ai) * f..(i * 2 + ai + 1) * f];
            for x in 0..f {
                worst = worst.max((got[x] - want[x]).abs());
            }
        }
    }
    // the open path's wave-number quadrature: ~1e-12 of the largest coefficient
    let scale = max_abs(&out.values);
    assert!(
        worst < 1e-11 * scale,
        "largest difference {worst:e} (scale {scale})"
    );
}

/// Periodic, l = 0, one Gaussian radial function: c = A (4π/V) Σ_{0<|k|<k_c} e^{-k²s²/2}/k²
/// Σ_{j∈a} cos(k·(r_i − r_j)) − (1 − w) δ_{a,t(i)} A √(2/π)/s (neutralising background per
/// channel), summed here over the full k-space box.
#[test]
fn periodic_coulomb_l0_is_a_gaussian_lattice_sum() {
    let (sigma, r0, w) = (0.4, 0.5, 0.25);
    let cell: Mat3 = [[4.9, 0.0, 0.0], [1.1, 4.4, 0.0], [-0.7, 0.8, 5.2]];
    let frac: [Vec3; 3] = [[0.1, 0.2, 0.3], [0.55, 0.45, 0.2], [0.8, 0.9, 0.65]];
    let positions: Vec<Vec3> = frac
        .iter()
        .map(|f| [0, 1, 2].map(|b| (0..3).map(|a| f[a] * cell[a][b]).sum()))
        .collect();
    let numbers = vec![1, 8, 1];
    let system = System::new(positions.clone(), numbers.clone(), Some(cell)).unwrap();
    let species = [1, 8];
    let calc = single_gaussian(sigma, r0, 0, w, None);
    let kc = calc.k_cutoff();
    let out = calc
        .compute(&system, &species, request(false, false))
        .unwrap();
    let a = (4.0 * PI * r0 * r0).powf(0.75);
    let s = (sigma * sigma + r0 * r0).sqrt();
    let volume = common::det(&cell).abs();
    // reciprocal vectors: rows of 2π H^{-T}
    let inv = common::inverse(&cell);
    let recip: Mat3 = [0, 1, 2].map(|a| [0, 1, 2].map(|b| 2.0 * PI * inv[b][a]));
    let nmax = 12;
    for i in 0..3 {
        for (ai, &sp) in species.iter().enumerate() {
            let mut sum = 0.0;
            for n0 in -nmax..=nmax {
                for n1 in -nmax..=nmax {
                    for n2 in -nmax..=nmax {
                        if (n0, n1, n2) == (0, 0, 0) {
                            continue;
                        }
                        let k: Vec3 = [0, 1, 2].map(|b| {
                            n0 as f64 * recip[0][b]
                                + n1 as f64 * recip[1][b]
                                + n2 as f64 * recip[2][b]
                        });
                        let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                        if k2.sqrt() >= kc {
                            continue;
                        }
                        let phase: f64 = (0..3)
                            .filter(|&j| numbers[j] == sp)
                            .map(|j| {
                                (0..3)
                                    .map(|x| k[x] * (positions[i][x] - positions[j][x]))
                                    .sum::<f64>()
                                    .cos()
                            })
                            .sum();
                        sum += (-k2 * s * s / 2.0).exp() / k2 * phase;
                    }
                }
            }
            let mut want = a * 4.0 * PI / volume * sum;
            if numbers[i] == sp {
                want -= (1.0 - w) * a * (2.0 / PI).sqrt() / s;
            }
            let got = out.values[i * 2 + ai];
            assert!(
                (got - want).abs() < 1e-11 * (1.0 + want.abs()),
                "atom {i} species {sp}: {got} vs {want}"
            );
        }
    }
    // the k-box holds the cutoff sphere: |n_a| = |k·a_a|/2π ≤ k_c |a_a|/2π
    let longest = (0..3)
        .map(|a| (0..3).map(|b| cell[a][b].powi(2)).sum::<f64>().sqrt())
        .fold(0.0, f64::max);
    assert!(nmax as f64 > kc * longest / (2.0 * PI));
}

/// With w = 0 and both widths small against the nearest-neighbour distance, the difference of
/// the two species channels at a cation is A times the Madelung potential (science.md §1.7,
/// §2.4): NaCl (d = 1) 1.747564594633, CsCl (a = 1) 2.035361509.
#[test]
fn periodic_madelung_constants() {
    let (sigma, r0) = (0.08, 0.06);
    let calc = single_gaussian(sigma, r0, 0, 0.0, Some(80.0));
    let a = (4.0 * PI * r0 * r0).powf(0.75);
    let nacl = System::new(
        vec![[0.0; 3], [1.0, 0.0, 0.0]],
        vec![11, 17],
        Some([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
    )
    .unwrap();
    let cscl = System::new(
        vec![[0.5, 0.5, 0.5], [0.0; 3]],
        vec![55, 17],
        Some([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    )
    .unwrap();
    for (system, species, reference) in [
        (&nacl, [11, 17], 1.747564594633),
        (&cscl, [17, 55], 2.035361509),
    ] {
        let out = calc
            .compute(system, &species, request(false, false))
            .unwrap();
        // atom 0 is the cation; channel order follows `species`
        let (own, other) = if species[0] == system.numbers()[0] {
            (out.values[0], out.values[1])
        } else {
            (out.values[1], out.values[0])
        };
        let madelung = -(own - other) / a;
        assert!(
            (madelung - reference).abs() < 2e-9 * reference,
            "{species:?}: {madelung} vs {reference}"
        );
    }
}

// ------------------------------------------------------------------ finite differences

fn triclinic_system(numbers: &[i32]) -> System {
    let cell: Mat3 = [[4.6, 0.0, 0.0], [0.8, 4.3, 0.0], [-0.5, 0.6, 4.9]];
    let frac: [Vec3; 4] = [
        [0.1, 0.2, 0.3],
        [0.55, 0.45, 0.2],
        [0.8, 0.9, 0.65],
        [0.35, 0.7, 0.85],
    ];
    let positions = frac[..numbers.len()]
        .iter()
        .map(|f| [0, 1, 2].map(|b| (0..3).map(|a| f[a] * cell[a][b]).sum()))
        .collect();
    System::new(positions, numbers.to_vec(), Some(cell)).unwrap()
}

fn open_molecule() -> System {
    System::new(
        vec![
            [0.0, 0.1, -0.2],
            [0.95, 0.2, 0.1],
            [-0.3, 1.0, 0.4],
            [0.4, -0.6, 1.1],
        ],
        vec![8, 1, 1, 6],
        None,
    )
    .unwrap()
}

fn orthorhombic_system() -> System {
    let cell: Mat3 = [[4.4, 0.0, 0.0], [0.0, 5.1, 0.0], [0.0, 0.0, 3.9]];
    let frac: [Vec3; 4] = [
        [0.1, 0.2, 0.3],
        [0.55, 0.45, 0.2],
        [0.8, 0.9, 0.65],
        [0.35, 0.7, 0.85],
    ];
    let positions = frac
        .iter()
        .map(|f| [0, 1, 2].map(|b| f[b] * cell[b][b]))
        .collect();
    System::new(positions, vec![1, 8, 1, 8], Some(cell)).unwrap()
}

fn moved(system: &System, j: usize, al: usize, h: f64) -> System {
    let mut p = system.positions().to_vec();
    p[j][al] += h;
    System::new(
        p,
        system.numbers().to_vec(),
        system.cell().map(|c| *c.matrix()),
    )
    .unwrap()
}

/// r → (1 + ε) r for positions and cell rows, ε_{αβ} = h.
fn strained(system: &System, al: usize, be: usize, h: f64) -> System {
    let deform = |v: &Vec3| {
        let mut out = *v;
        out[al] += h * v[be];
        out
    };
    let p = system.positions().iter().map(deform).collect();
    let cell = system.cell().map(|c| c.matrix().map(|row| deform(&row)));
    System::new(p, system.numbers().to_vec(), cell).unwrap()
}

fn values(calc: &LodeExpansion, system: &System, species: &[i32]) -> Vec<f64> {
    calc.compute(system, species, request(false, false))
        .unwrap()
        .values
}

/// Dense position gradients (pair and self) and strain gradients against central differences.
fn check_dense_gradients(calc: &LodeExpansion, system: &System, label: &str) {
    let species = species_of(system);
    let types = types_of(system, &species);
    let out = calc.compute(system, &species, request(true, true)).unwrap();
    let (n, na) = (system.len(), species.len());
    let f = calc.n_features();
    let pair = out.pair_gradients.as_ref().unwrap();
    let own = out.self_gradients.as_ref().unwrap();
    let strain = out.strain_gradients.as_ref().unwrap();
    let scale = max_abs(&out.values);
    let h = 1e-5;
    let tol = 1e-8 * scale;
    for j in 0..n {
        for al in 0..3 {
            let vp = values(calc, &moved(system, j, al, h), &species);
            let vm = values(calc, &moved(system, j, al, -h), &species);
            for i in 0..n {
                for a in 0..na {
                    for x in 0..f {
                        let idx = (i * na + a) * f + x;
                        let fd = (vp[idx] - vm[idx]) / (2.0 * h);
                        let got = if i == j {
                            own[((i * 3 + al) * na + a) * f + x]
                        } else if a == types[j] {
                            pair[((i * n + j) * 3 + al) * f + x]
                        } else {
                            0.0
                        };
                        assert!(
                            (fd - got).abs() < tol,
                            "{label}: d c[{i}][{a}][{x}] / d r[{j}][{al}] = {got} vs {fd}"
                        );
                    }
                }
            }
        }
    }
    for al in 0..3 {
        for be in 0..3 {
            let vp = values(calc, &strained(system, al, be, h), &species);
            let vm = values(calc, &strained(system, al, be, -h), &species);
            for i in 0..n {
                for y in 0..na * f {
                    let fd = (vp[i * na * f + y] - vm[i * na * f + y]) / (2.0 * h);
                    let got = strain[(i * 9 + al * 3 + be) * na * f + y];
                    assert!(
                        (fd - got).abs() < tol,
                        "{label}: d c[{i}][{y}] / d eps[{al}][{be}] = {got} vs {fd}"
                    );
                }
            }
        }
    }
}

fn calculator(exponent: f64, basis: BasisKind, weight: f64) -> LodeExpansion {
    calculator_with(exponent, basis, weight, (0.55, 2.0, 3))
}

/// The open path integrates over wave numbers up to ~9/σ with a spacing ~π/(extent + basis
/// radius), at a fixed cost of tens to hundreds of ms per call: wider σ, smaller radius.
fn open_calculator(exponent: f64, basis: BasisKind, weight: f64) -> LodeExpansion {
    calculator_with(exponent, basis, weight, (1.0, 1.0, 2))
}

fn calculator_with(
    exponent: f64,
    basis: BasisKind,
    weight: f64,
    (smearing, radius, max_angular): (f64, f64, usize),
) -> LodeExpansion {
    let mut parameters = LodeParameters::new(exponent, smearing, max_angular, 1, radius);
    parameters.basis = basis;
    parameters.center_atom_weight = weight;
    LodeExpansion::new(parameters).unwrap()
}

#[test]
fn periodic_gradients_match_finite_differences() {
    let tri = triclinic_system(&[1, 8, 1]);
    check_dense_gradients(&calculator(1.0, BasisKind::Gto, 0.5), &tri, "triclinic p=1");
    check_dense_gradients(
        &calculator(2.5, BasisKind::Monomial, 1.0),
        &tri,
        "triclinic p=2.5",
    );
    // axes along x, y, z: the mirror-reduced summation of the dense gradients
    let ortho = orthorhombic_system();
    check_dense_gradients(
        &calculator(6.0, BasisKind::Gto, 1.0),
        &ortho,
        "orthorhombic p=6",
    );
}

#[test]
fn open_gradients_match_finite_differences() {
    let mol = open_molecule();
    check_dense_gradients(&open_calculator(1.0, BasisKind::Gto, 0.5), &mol, "open p=1");
    check_dense_gradients(
        &open_calculator(2.5, BasisKind::Monomial, 1.0),
        &mol,
        "open p=2.5",
    );
    check_dense_gradients(
        &open_calculator(0.0, BasisKind::Monomial, 1.0),
        &mol,
        "open p=0",
    );
}

/// dL/dr and dL/dε of the backward pass against central differences of L = <g, values>, for
/// the exact periodic and open paths and for the mesh path (whose backward pass is the exact
/// derivative of its own values).
#[test]
fn backward_matches_finite_differences() {
    let tri = triclinic_system(&[1, 8, 1, 6]);
    let mol = open_molecule();
    let cases: [(&System, Method, &str); 3] = [
        (&tri, Method::Exact, "periodic exact"),
        (&mol, Method::Exact, "open"),
        (&tri, Method::Mesh(1e-4), "periodic mesh"),
    ];
    for (system, method, label) in cases {
        let calc = if system.cell().is_some() {
            calculator(1.5, BasisKind::Gto, 0.7)
        } else {
            open_calculator(1.5, BasisKind::Gto, 0.7)
        };
        let species = species_of(system);
        let value = |s: &System| -> Vec<f64> {
            calc.compute_with(s, &species, request(false, false), method)
                .unwrap()
                .0
                .values
        };
        let base = value(system);
        let g = weights(base.len());
        let loss = |s: &System| -> f64 { value(s).iter().zip(&g).map(|(v, w)| v * w).sum() };
        let (back, _) = calc.backward_with(system, &species, &g, method).unwrap();
        let h = 1e-5;
        let scale = back
            .positions
            .iter()
            .flatten()
            .fold(0.0f64, |m, x| m.max(x.abs()));
        for j in 0..system.len() {
            for al in 0..3 {
                let fd =
                    (loss(&moved(system, j, al, h)) - loss(&moved(system, j, al, -h))) / (2.0 * h);
                let got = back.positions[j][al];
                assert!(
                    (fd - got).abs() < 1e-7 * scale,
                    "{label}: dL/dr[{j}][{al}] {got} vs {fd}"
                );
            }
        }
        for al in 0..3 {
            for be in 0..3 {
                let fd = (loss(&strained(system, al, be, h)) - loss(&strained(system, al, be, -h)))
                    / (2.0 * h);
                let got = back.strain[al][be];
                assert!(
                    (fd - got).abs() < 1e-7 * scale,
                    "{label}: dL/deps[{al}][{be}] {got} vs {fd}"
                );
            }
        }
    }
}

// ------------------------------------------------------------------ mirror path, rotations

/// c'(R r) = D c(r); ∂c'/∂r'_j = D (∂c/∂r_j) Rᵀ; ∂c'/∂ε' = D R (∂c/∂ε) Rᵀ.
/// On a cell with axes along x, y, z the dense gradients are the mirror-reduced sums; the
/// rotated cell is not diagonal, so they come from the plain summation there.
#[test]
fn mirror_path_matches_plain_path_of_the_rotated_system() {
    let r = rotation([0.83, 0.21, -0.37, 0.36]);
    for (system, lmax, nr, exponent) in [
        (orthorhombic_system(), 3, 2, 1.0),
        (
            System::new(
                orthorhombic_system().positions().to_vec(),
                vec![1, 8, 1, 8],
                Some([[4.5, 0.0, 0.0], [0.0, 4.5, 0.0], [0.0, 0.0, 4.5]]),
            )
            .unwrap(),
            2,
            3,
            6.0,
        ),
    ] {
        let calc =
            LodeExpansion::new(LodeParameters::new(exponent, 0.5, lmax, nr - 1, 2.2)).unwrap();
        let species = species_of(&system);
        let rotated = System::new(
            system
                .positions()
                .iter()
                .map(|p| common::apply(&r, p))
                .collect(),
            system.numbers().to_vec(),
            Some(rotate_cell(system.cell().unwrap().matrix(), &r)),
        )
        .unwrap();
        let a = calc
            .compute(&system, &species, request(true, true))
            .unwrap();
        let b = calc
            .compute(&rotated, &species, request(true, true))
            .unwrap();
        let scale = max_abs(&a.values);
        let want = rotate_features(&a.values, lmax, nr, &r);
        assert!(max_diff(&b.values, &want) < 1e-11 * scale);
        let f = calc.n_features();
        // gradients: blocks of 3 × F along [..][α][..features]
        let rotate_vector_blocks = |g: &[f64], width: usize| -> Vec<f64> {
            let mut out = vec![0.0; g.len()];
            for (src, dst) in g.chunks(3 * width).zip(out.chunks_mut(3 * width)) {
                let rot: Vec<Vec<f64>> = (0..3)
                    .map(|al| rotate_features(&src[al * width..(al + 1) * width], lmax, nr, &r))
                    .collect();
                for al in 0..3 {
                    for x in 0..width {
                        dst[al * width + x] = (0..3).map(|be| r[al][be] * rot[be][x]).sum();
                    }
                }
            }
            out
        };
        let gscale = max_abs(a.pair_gradients.as_ref().unwrap());
        let want = rotate_vector_blocks(a.pair_gradients.as_ref().unwrap(), f);
        let err = max_diff(b.pair_gradients.as_ref().unwrap(), &want);
        assert!(err < 1e-10 * gscale, "pair gradients: {err:e}");
        let want = rotate_vector_blocks(a.self_gradients.as_ref().unwrap(), species.len() * f);
        let err = max_diff(b.self_gradients.as_ref().unwrap(), &want);
        assert!(err < 1e-10 * gscale, "self gradients: {err:e}");
        // strain: [i][α][β][a·F]
        let width = species.len() * f;
        let sa = a.strain_gradients.as_ref().unwrap();
        let sb = b.strain_gradients.as_ref().unwrap();
        for i in 0..system.len() {
            let rot: Vec<Vec<f64>> = (0..9)
                .map(|ab| {
                    rotate_features(
                        &sa[(i * 9 + ab) * width..(i * 9 + ab + 1) * width],
                        lmax,
                        nr,
                        &r,
                    )
                })
                .collect();
            for al in 0..3 {
                for be in 0..3 {
                    for x in 0..width {
                        let mut want = 0.0;
                        for g in 0..3 {
                            for d in 0..3 {
                                want += r[al][g] * r[be][d] * rot[g * 3 + d][x];
                            }
                        }
                        let got = sb[(i * 9 + al * 3 + be) * width + x];
                        assert!(
                            (got - want).abs() < 1e-10 * gscale.max(scale),
                            "strain {i} {al} {be} {x}"
                        );
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ cell choice

/// A 2×1×1 supercell and an equivalent basis (a + b, b, c − a) give the primitive cell's
/// features exactly (same k-vectors; the others carry zero structure factor), and its dense
/// gradients once summed over the images of each neighbour; the mesh path agrees to its
/// accuracy.
#[test]
fn supercell_and_equivalent_basis_give_the_same_features() {
    let prim = triclinic_system(&[1, 8, 1, 8]);
    let cell = *prim.cell().unwrap().matrix();
    let n = prim.len();
    let add = |x: &Vec3, y: &Vec3| [0, 1, 2].map(|k| x[k] + y[k]);
    let sub = |x: &Vec3, y: &Vec3| [0, 1, 2].map(|k| x[k] - y[k]);
    let mut positions = prim.positions().to_vec();
    positions.extend(prim.positions().iter().map(|p| add(p, &cell[0])));
    let numbers: Vec<i32> = prim
        .numbers()
        .iter()
        .chain(prim.numbers())
        .copied()
        .collect();
    let supercell = System::new(
        positions,
        numbers,
        Some([
            [2.0 * cell[0][0], 2.0 * cell[0][1], 2.0 * cell[0][2]],
            cell[1],
            cell[2],
        ]),
    )
    .unwrap();
    // an equivalent basis, with one atom moved by a lattice vector
    let mut shifted = prim.positions().to_vec();
    shifted[2] = sub(&shifted[2], &cell[1]);
    let rebased = System::new(
        shifted,
        prim.numbers().to_vec(),
        Some([add(&cell[0], &cell[1]), cell[1], sub(&cell[2], &cell[0])]),
    )
    .unwrap();
    let calc = calculator(1.0, BasisKind::Gto, 0.6);
    let species = species_of(&prim);
    let f = calc.n_features();
    let na = species.len();
    let p = calc.compute(&prim, &species, request(true, true)).unwrap();
    let s = calc
        .compute(&supercell, &species, request(true, true))
        .unwrap();
    let r = calc
        .compute(&rebased, &species, request(true, true))
        .unwrap();
    let scale = max_abs(&p.values);
    assert!(max_diff(&r.values, &p.values) < 1e-12 * scale);
    assert!(max_diff(&s.values[..n * na * f], &p.values) < 1e-12 * scale);
    assert!(max_diff(&s.values[n * na * f..], &p.values) < 1e-12 * scale);
    let gscale = max_abs(p.pair_gradients.as_ref().unwrap());
    for (name, a, b) in [
        ("pair", &r.pair_gradients, &p.pair_gradients),
        ("self", &r.self_gradients, &p.self_gradients),
        ("strain", &r.strain_gradients, &p.strain_gradients),
    ] {
        let err = max_diff(a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(
            err < 1e-11 * gscale.max(scale),
            "equivalent basis, {name}: {err:e}"
        );
    }
    // the supercell's dense gradients, summed over the two images of each neighbour
    let sp = s.pair_gradients.as_ref().unwrap();
    let ss = s.self_gradients.as_ref().unwrap();
    let pp = p.pair_gradients.as_ref().unwrap();
    let ps = p.self_gradients.as_ref().unwrap();
    let types = types_of(&prim, &species);
    for i in 0..n {
        for al in 0..3 {
            for j in 0..n {
                for x in 0..f {
                    let super_pair = |a: usize, b: usize| sp[((a * 2 * n + b) * 3 + al) * f + x];
                    if i == j {
                        // own position: the self gradient plus the pair term with its image
                        let t = types[i];
                        let got = ss[((i * 3 + al) * na + t) * f + x] + super_pair(i, i + n);
                        let want = ps[((i * 3 + al) * na + t) * f + x];
                        assert!((got - want).abs() < 1e-11 * gscale, "self {i} {al} {x}");
                    } else {
                        let got = super_pair(i, j) + super_pair(i, j + n);
                        let want = pp[((i * n + j) * 3 + al) * f + x];
                        assert!((got - want).abs() < 1e-11 * gscale, "pair {i} {j} {al} {x}");
                    }
                }
            }
        }
    }
    let strain_p = p.strain_gradients.as_ref().unwrap();
    let strain_s = s.strain_gradients.as_ref().unwrap();
    assert!(max_diff(&strain_s[..strain_p.len()], strain_p) < 1e-11 * gscale.max(scale));
    // the mesh path: another grid, the same features to its accuracy
    for accuracy in [1e-4, 1e-6] {
        let mesh = |system: &System| {
            calc.compute_with(
                system,
                &species,
                request(false, false),
                Method::Mesh(accuracy),
            )
            .unwrap()
            .0
            .values
        };
        let err = max_diff(&mesh(&supercell)[..n * na * f], &p.values) / scale;
        assert!(err < accuracy, "mesh supercell at {accuracy:e}: {err:e}");
        let err = max_diff(&mesh(&rebased), &p.values) / scale;
        assert!(
            err < accuracy,
            "mesh equivalent basis at {accuracy:e}: {err:e}"
        );
    }
}
