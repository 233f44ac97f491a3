//! The one place where a summation method and its parameters are chosen.
//!
//! [`choose`] takes what the caller asked for (a method or "auto", an accuracy, any fixed
//! parameters) and returns the method with every parameter set, its predicted cost and
//! predicted error. Nothing is evaluated: the parameters come from the error estimates of
//! [`super`] and [`super::pme`], the method from their predicted costs.
//!
//! # "auto"
//!
//! Open systems use the direct sum or the free-space mesh ([`crate::freespace`], reported as
//! "pme"), whichever is predicted cheaper (the direct sum's predicted cost against the
//! tuned mesh's cost); fixed smearing, cutoff, mesh spacing or order select the mesh.
//! `method="pme"` on an open system is the free-space mesh. Periodic systems below [`super::pme::AUTO_MIN_ATOMS`]
//! atoms use Ewald; a fixed `k_cutoff` selects Ewald and a fixed mesh or order PME. Otherwise
//! both are tuned without the fixed values and the one with the smaller predicted cost
//! (constants of [`super::pme`], calibrated on measured wall times; see the crossover there)
//! is tuned again with them (a single tuning when nothing is fixed).

use super::freespace::{FreeSpaceChoice, FreeSpaceOverrides};
use super::pme::{ewald_cost, mesh_error, pme_cost, pme_parameters, real_error, tune_pme_with};
use super::pme::{PmeOverrides, PmeStats, AUTO_MIN_ATOMS, PME_CALL_COST};
use super::{check_accuracy, ewald_error, tune_ewald, EwaldOverrides, SystemStats};
use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::ewald::{Ewald, EwaldParameters};
use crate::freespace::{FreeSpace, FreeSpaceParameters};
use crate::kernel::Kernel;
use crate::longrange::LongRangeSum;
use crate::pme::{Mesh, Pme, PmeParameters};
use crate::system::System;

/// The method a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Direct sum or free-space mesh for open systems; Ewald or PME for periodic ones;
    /// whichever is predicted faster.
    Auto,
    /// Ewald sum (periodic systems).
    Ewald,
    /// Smooth PME (periodic systems), the free-space mesh (open systems).
    Pme,
    /// Direct sum over all pairs (open systems).
    Direct,
}

impl Request {
    /// Parses "auto", "ewald", "pme" or "direct" (an error names `method` otherwise).
    pub fn parse(method: &str) -> Result<Request> {
        match method {
            "auto" => Ok(Request::Auto),
            "ewald" => Ok(Request::Ewald),
            "pme" => Ok(Request::Pme),
            "direct" => Ok(Request::Direct),
            other => Err(Error::parameter(
                "method",
                format!("expected 'auto', 'ewald', 'pme' or 'direct', got '{other}'"),
            )),
        }
    }
}

/// Parameters the caller fixed. Every field defaults to `None`: chosen by the tuner.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Overrides {
    /// Gaussian smearing σ (length) of the range split (Ewald and PME). Default `None`.
    pub smearing: Option<f64>,
    /// Real-space cutoff (length; Ewald and PME). Default `None`.
    pub cutoff: Option<f64>,
    /// Reciprocal-space cutoff (inverse length; Ewald only). Default `None`.
    pub k_cutoff: Option<f64>,
    /// Mesh (PME only). Default `None`.
    pub mesh: Option<Mesh>,
    /// B-spline order (PME only). Default `None`.
    pub order: Option<usize>,
}

impl Overrides {
    fn ewald(&self) -> EwaldOverrides {
        EwaldOverrides {
            smearing: self.smearing,
            cutoff: self.cutoff,
            k_cutoff: self.k_cutoff,
        }
    }

    fn pme(&self) -> PmeOverrides {
        PmeOverrides {
            smearing: self.smearing,
            cutoff: self.cutoff,
            mesh: self.mesh,
            order: self.order,
        }
    }

    /// The free-space overrides (open systems: the mesh is a spacing).
    fn freespace(&self) -> Result<FreeSpaceOverrides> {
        let spacing =
            match self.mesh {
                Some(Mesh::Points(_)) => return Err(Error::parameter(
                    "mesh",
                    "mesh points are for periodic cells; the mesh of an open system follows its \
                     atoms: give mesh_spacing instead",
                )),
                Some(Mesh::Spacing(h)) => Some(h),
                None => None,
            };
        if self.k_cutoff.is_some() {
            return Err(Error::parameter(
                "k_cutoff",
                "is an Ewald parameter; open systems have no Ewald sum (the mesh takes \
                 mesh_spacing and order)",
            ));
        }
        Ok(FreeSpaceOverrides {
            smearing: self.smearing,
            cutoff: self.cutoff,
            spacing,
            order: self.order,
        })
    }

    fn any(&self) -> bool {
        self.smearing.is_some()
            || self.cutoff.is_some()
            || self.k_cutoff.is_some()
            || self.mesh.is_some()
            || self.order.is_some()
    }
}

/// A summation method with all its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Method {
    /// Ewald sum.
    Ewald(EwaldParameters),
    /// Smooth PME (mesh given as points).
    Pme(PmeParameters),
    /// Direct sum over all pairs.
    Direct,
    /// Free-space particle mesh (open systems; named "pme").
    FreeSpace(FreeSpaceParameters),
}

/// What [`choose`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Choice {
    /// The method and its parameters.
    pub method: Method,
    /// Predicted cost (units of one PME real-space pair per atom, PME's fixed per-call cost
    /// included; the direct sum 0.9 N², see [`super::freespace`]).
    pub predicted_cost: f64,
    /// Predicted relative RMS force error (0 for the direct sum; for fixed parameters the
    /// estimate of what they give).
    pub predicted_error: f64,
}

fn ewald_choice(kernel: Kernel, system: &System, p: EwaldParameters) -> Result<Choice> {
    let (er, ek) = ewald_error(kernel, SystemStats::of(system)?, p)?;
    Ok(Choice {
        method: Method::Ewald(p),
        predicted_cost: ewald_cost(PmeStats::of(system)?, p.cutoff, p.k_cutoff),
        predicted_error: er.hypot(ek),
    })
}

fn pme_choice(kernel: Kernel, system: &System, p: PmeParameters) -> Result<Choice> {
    let stats = PmeStats::of(system)?;
    let cell = system
        .cell()
        .ok_or_else(|| Error::Unsupported("PME needs a periodic cell".into()))?;
    let n = p.grid(cell)?;
    let er = real_error(kernel, stats, p.smearing, p.cutoff)?;
    let em = mesh_error(kernel, stats, p.smearing, n, p.order)?;
    Ok(Choice {
        method: Method::Pme(PmeParameters {
            mesh: Mesh::Points(n),
            ..p
        }),
        predicted_cost: pme_cost(stats, p.cutoff, n, p.order) + PME_CALL_COST,
        predicted_error: er.hypot(em),
    })
}

fn refuse_for_open(name: &str, value: bool, what: &str) -> Result<()> {
    if value {
        return Err(Error::parameter(
            name,
            format!(
                "is {what}, but the direct sum over all pairs of an open system takes no \
                 smearing, cutoff, k_cutoff, mesh or order; leave it out, or use method='pme' \
                 or 'auto' (the free-space mesh)"
            ),
        ));
    }
    Ok(())
}

fn freespace_choice(c: FreeSpaceChoice) -> Choice {
    Choice {
        method: Method::FreeSpace(c.parameters),
        predicted_cost: c.cost,
        predicted_error: c.predicted_error.0.hypot(c.predicted_error.1),
    }
}

/// Chooses the method and its parameters for `system` at `accuracy` (relative RMS force
/// error, see [`super`]) with `overrides` kept: see the module documentation. Errors name the
/// argument at fault (a fixed value that cannot reach the accuracy names the nearest that
/// would).
pub fn choose(
    kernel: Kernel,
    system: &System,
    accuracy: f64,
    request: Request,
    overrides: Overrides,
) -> Result<Choice> {
    check_accuracy(accuracy)?;
    let periodic = system.is_periodic();
    if !periodic && request == Request::Direct {
        refuse_for_open(
            "smearing",
            overrides.smearing.is_some(),
            "an Ewald parameter",
        )?;
        refuse_for_open("cutoff", overrides.cutoff.is_some(), "an Ewald parameter")?;
        refuse_for_open(
            "k_cutoff",
            overrides.k_cutoff.is_some(),
            "an Ewald parameter",
        )?;
        refuse_for_open("mesh", overrides.mesh.is_some(), "a PME parameter")?;
        refuse_for_open("order", overrides.order.is_some(), "a PME parameter")?;
    }
    let pme_only = overrides.mesh.is_some() || overrides.order.is_some();
    match request {
        Request::Direct => {
            if periodic {
                return Err(Error::parameter(
                    "method",
                    "'direct' is for open systems; use 'ewald', 'pme' or 'auto' for periodic ones",
                ));
            }
            Ok(Choice {
                method: Method::Direct,
                predicted_cost: super::freespace::direct_cost(system.len()),
                predicted_error: 0.0,
            })
        }
        Request::Auto if !periodic => {
            if overrides.any() {
                return choose(kernel, system, accuracy, Request::Pme, overrides);
            }
            let direct = choose(kernel, system, accuracy, Request::Direct, overrides)?;
            // the direct sum below the mesh's fixed cost: no need to tune the mesh
            if direct.predicted_cost < super::freespace::CALL_COST {
                return Ok(direct);
            }
            match super::freespace::tune(kernel, system, accuracy, FreeSpaceOverrides::default()) {
                Ok(c) if c.cost < direct.predicted_cost => Ok(freespace_choice(c)),
                _ => Ok(direct),
            }
        }
        Request::Ewald => {
            if !periodic {
                return Err(Error::parameter(
                    "method",
                    "'ewald' needs a periodic system (a cell); use 'direct' or 'auto' for open \
                     systems",
                ));
            }
            if let Some(name) = overrides
                .mesh
                .map(|_| "mesh")
                .or(overrides.order.map(|_| "order"))
            {
                return Err(Error::parameter(
                    name,
                    "is a PME parameter; the Ewald sum takes k_cutoff instead (or use \
                     method='pme')",
                ));
            }
            let p = tune_ewald(kernel, system, accuracy, overrides.ewald())?;
            ewald_choice(kernel, system, p)
        }
        Request::Pme => {
            if !periodic {
                let fixed = overrides.freespace()?;
                return Ok(freespace_choice(super::freespace::tune(
                    kernel, system, accuracy, fixed,
                )?));
            }
            if overrides.k_cutoff.is_some() {
                return Err(Error::parameter(
                    "k_cutoff",
                    "is an Ewald parameter; PME takes mesh settings instead",
                ));
            }
            let p = pme_parameters(kernel, system, accuracy, overrides.pme())?;
            pme_choice(kernel, system, p)
        }
        Request::Auto => {
            if overrides.k_cutoff.is_some() || system.len() < AUTO_MIN_ATOMS {
                if pme_only {
                    return choose(kernel, system, accuracy, Request::Pme, overrides);
                }
                return choose(kernel, system, accuracy, Request::Ewald, overrides);
            }
            if pme_only {
                return choose(kernel, system, accuracy, Request::Pme, overrides);
            }
            let pme = tune_pme_with(kernel, system, accuracy, PmeOverrides::default());
            let ewald = tune_ewald(kernel, system, accuracy, EwaldOverrides::default())
                .and_then(|p| ewald_choice(kernel, system, p));
            let prefer_pme = match (&pme, &ewald) {
                (Ok(p), Ok(e)) => p.cost + PME_CALL_COST < e.predicted_cost,
                (Ok(_), Err(_)) => true,
                _ => false,
            };
            if overrides.any() {
                let request = if prefer_pme {
                    Request::Pme
                } else {
                    Request::Ewald
                };
                return choose(kernel, system, accuracy, request, overrides);
            }
            if prefer_pme {
                let p = pme?;
                Ok(Choice {
                    method: Method::Pme(p.parameters),
                    predicted_cost: p.cost + PME_CALL_COST,
                    predicted_error: p.predicted_error.0.hypot(p.predicted_error.1),
                })
            } else {
                ewald
            }
        }
    }
}

impl Method {
    /// "ewald", "pme" (PME, or the free-space mesh of an open system) or "direct".
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ewald(_) => "ewald",
            Method::Pme(_) | Method::FreeSpace(_) => "pme",
            Method::Direct => "direct",
        }
    }

    /// The sum of `kernel` with these parameters, ready to compute:
    ///
    /// ```
    /// use farfield::longrange::Request;
    /// use farfield::tuning::choose::{choose, Overrides, Request as MethodRequest};
    /// use farfield::{Kernel, System};
    ///
    /// let system = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, 1], None)?;
    /// let kernel = Kernel::coulomb();
    /// let choice = choose(kernel, &system, 1e-6, MethodRequest::Auto, Overrides::default())?;
    /// let out = choice.method.build(kernel)?.compute(&system, &[1.0, -1.0], Request::all())?;
    /// assert!((out.energy + 1.0).abs() < 1e-12); // two opposite unit charges at distance 1
    /// # Ok::<(), farfield::Error>(())
    /// ```
    pub fn build(&self, kernel: Kernel) -> Result<Box<dyn LongRangeSum>> {
        Ok(match *self {
            Method::Ewald(p) => Box::new(Ewald::new(kernel, p)?),
            Method::Pme(p) => Box::new(Pme::new(kernel, p)?),
            Method::Direct => Box::new(Direct::new(kernel)),
            Method::FreeSpace(p) => Box::new(FreeSpace::new(kernel, p)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_box(n: usize) -> System {
        let length = (n as f64 / 0.1).cbrt();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * length
        };
        let positions = (0..n).map(|_| [next(), next(), next()]).collect();
        let cell = [[length, 0.0, 0.0], [0.0, length, 0.0], [0.0, 0.0, length]];
        System::new(positions, vec![1; n], Some(cell)).unwrap()
    }

    #[test]
    fn auto_follows_size_and_overrides() {
        let kernel = Kernel::coulomb();
        let small = random_box(50);
        let c = choose(kernel, &small, 1e-6, Request::Auto, Overrides::default()).unwrap();
        assert!(matches!(c.method, Method::Ewald(_)), "{c:?}");
        // the error estimate of the choice is within the target (half the accuracy)
        assert!(c.predicted_error <= 0.5e-6 * (1.0 + 1e-6), "{c:?}");
        let large = random_box(1000);
        let c = choose(kernel, &large, 1e-6, Request::Auto, Overrides::default()).unwrap();
        assert!(matches!(c.method, Method::Pme(_)), "{c:?}");
        assert!(c.predicted_error <= 0.5e-6 * (1.0 + 1e-4), "{c:?}");
        // the cheaper of the two, as the cost model prices them
        let e = choose(kernel, &large, 1e-6, Request::Ewald, Overrides::default()).unwrap();
        assert!(c.predicted_cost < e.predicted_cost);
        let fixed = Overrides {
            k_cutoff: Some(3.0),
            ..Default::default()
        };
        let c = choose(kernel, &large, 1e-6, Request::Auto, fixed).unwrap();
        assert!(
            matches!(c.method, Method::Ewald(p) if p.k_cutoff == 3.0),
            "{c:?}"
        );
        let fixed = Overrides {
            order: Some(5),
            ..Default::default()
        };
        let c = choose(kernel, &small, 1e-6, Request::Auto, fixed).unwrap();
        assert!(matches!(c.method, Method::Pme(p) if p.order == 5), "{c:?}");
    }

    #[test]
    fn refusals_name_the_argument() {
        let kernel = Kernel::coulomb();
        let periodic = random_box(20);
        let open = System::new(vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![1, 1], None).unwrap();
        let name = |r: Result<Choice>| match r.unwrap_err() {
            Error::InvalidParameter { name, .. } => name,
            e => panic!("{e}"),
        };
        let k = Overrides {
            k_cutoff: Some(3.0),
            ..Default::default()
        };
        let mesh = Overrides {
            mesh: Some(Mesh::Points([8, 8, 8])),
            ..Default::default()
        };
        assert_eq!(
            name(choose(kernel, &periodic, 1e-6, Request::Pme, k)),
            "k_cutoff"
        );
        assert_eq!(
            name(choose(kernel, &periodic, 1e-6, Request::Ewald, mesh)),
            "mesh"
        );
        assert_eq!(
            name(choose(kernel, &open, 1e-6, Request::Auto, mesh)),
            "mesh"
        );
        assert_eq!(
            name(choose(
                kernel,
                &periodic,
                1e-6,
                Request::Direct,
                Overrides::default()
            )),
            "method"
        );
        assert_eq!(
            name(Request::parse("fmm").map(|_| unreachable!())),
            "method"
        );
        let c = choose(kernel, &open, 1e-6, Request::Auto, Overrides::default()).unwrap();
        assert_eq!(c.method, Method::Direct);
    }
}
