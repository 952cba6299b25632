"""Natural line shapes of the common X-ray calibration lines, and single Gaussian lines.

A fluorescence line is a sum of Lorentzian components (centre ``E_i``, FWHM ``W_i``,
integrated intensity ``I_i``); a detector with a Gaussian response of FWHM ``fwhm`` sees
each component as a Voigt profile, so the measured density (per eV, unit integral) is

    pdf(E; fwhm) = Σ_i I_i / ΣI · Voigt(E − E_i; σ = fwhm / 2.3548, γ = W_i / 2)

(``scipy.special.voigt_profile``). The line's reference energy is the maximum of its
natural shape (``peak_energy``, no Gaussian); a fit reports where that maximum lies.

The tables are those of the published measurements below, in the form NIST mass/mass2 use
(``mass2/calibration/fluorescence_lines.py``), so fits can be compared with theirs:

- Mn, Fe, Cu Kα and Kβ: G. Hölzer, M. Fritsch, M. Deutsch, J. Härtwig, E. Förster, "Kα1,2 and
  Kβ1,3 x-ray emission lines of the 3d transition metals", Phys. Rev. A 56, 4554 (1997),
  doi:10.1103/PhysRevA.56.4554 — Table II (Kα) and III (Kβ) peak heights. Mn Kα and Fe Kα carry
  the corrections made at LANL in 2004 (mass's "NISTfits.ipf" tag): Mn Kα has a sixth Kα1
  component (5902.712 eV) that is not in Table II, and Fe Kα has the Kα22/Kα23 widths swapped
  from Table II (4.339, 2.57 eV; mass: "ERROR IN HOLZER PAPER", the table disagrees with the
  paper's Fig. 1c).
- Al and Mg Kα: Y. Ménesguen, M.-C. Lépy, Y. Ito, et al., "Structure of single KL0-, double
  KL1-, and triple KL2- ionization in Mg, Al, and Si targets induced by photons, and their
  absorption spectra", Radiat. Phys. Chem. 194, 110048 (2022),
  doi:10.1016/j.radphyschem.2022.110048 — integrated intensities, including the KL1/KL2
  satellites.

Monochromatic lines without a published shape (the optical lines of an MKID demo) are single
Gaussians: :meth:`SpectralLine.gaussian`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special

__all__ = ["FWHM_PER_SIGMA", "LINES", "SpectralLine", "get_line", "line_names"]

FWHM_PER_SIGMA = math.sqrt(8.0 * math.log(2.0))  # 2.35482

_HOELZER = ("G. Hoelzer, M. Fritsch, M. Deutsch, J. Haertwig, E. Foerster, Phys. Rev. A 56, 4554 (1997), "
            "doi:10.1103/PhysRevA.56.4554")
_HOELZER_LANL = _HOELZER + ", as corrected at LANL in 2004 (NIST mass: 'Hoelzer 1997, NISTfits.ipf')"
_MENESGUEN = ("Y. Menesguen, M.-C. Lepy, Y. Ito, M. Yamashita, S. Fukushima, T. Tochio, et al., "
              "Radiat. Phys. Chem. 194, 110048 (2022), doi:10.1016/j.radphyschem.2022.110048")


@dataclass(frozen=True)
class SpectralLine:
    """A line shape: Lorentzian components (eV) with integrated intensities, and where it comes from.

    ``gaussian_sigma`` (eV) is an intrinsic Gaussian width of the line itself (0 for the
    tabulated X-ray lines; a monochromatic line has none either, the detector supplies it).
    """

    name: str
    energies: tuple[float, ...]
    lorentzian_fwhm: tuple[float, ...]
    intensities: tuple[float, ...]  # integrated intensity of each component (any scale)
    reference: str
    position_uncertainty_ev: float = float("nan")
    nominal_energy: float = float("nan")
    peak_energy: float = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.energies)
        if n == 0 or len(self.lorentzian_fwhm) != n or len(self.intensities) != n:
            raise ValueError(f"line {self.name!r}: energies, widths and intensities must have one value per component")
        if any(w < 0 for w in self.lorentzian_fwhm) or any(i <= 0 for i in self.intensities):
            raise ValueError(f"line {self.name!r}: widths must be >= 0 and intensities > 0")
        object.__setattr__(self, "peak_energy", self._natural_peak())

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_peak_heights(cls, name: str, energies: list[float], lorentzian_fwhm: list[float], heights: list[float],
                          reference: str, **kw: Any) -> SpectralLine:
        """Components given as Lorentzian peak heights ``A_i``: integrated intensity ``A_i · π W_i / 2``."""
        ints = tuple(a * 0.5 * math.pi * w for a, w in zip(heights, lorentzian_fwhm))
        return cls(name, tuple(energies), tuple(lorentzian_fwhm), ints, reference, **kw)

    @classmethod
    def gaussian(cls, name: str, energy_ev: float) -> SpectralLine:
        """A monochromatic line: the measured shape is the detector's Gaussian alone."""
        if not energy_ev > 0:
            raise ValueError(f"line {name!r}: energy must be > 0 eV, got {energy_ev}")
        return cls(name, (float(energy_ev),), (0.0,), (1.0,), "monochromatic (no natural width)",
                   position_uncertainty_ev=0.0, nominal_energy=float(energy_ev))

    # ------------------------------------------------------------------ shape
    @property
    def is_gaussian(self) -> bool:
        """True for a single component without natural width (the detector response alone)."""
        return len(self.energies) == 1 and self.lorentzian_fwhm[0] == 0.0

    @property
    def weights(self) -> np.ndarray:
        w = np.asarray(self.intensities, dtype=float)
        return w / w.sum()

    def pdf(self, energy: Any, fwhm: float = 0.0) -> np.ndarray:
        """Probability density per eV at ``energy`` for a Gaussian detector response of FWHM ``fwhm`` (eV)."""
        e = np.asarray(energy, dtype=float)
        sigma = max(float(fwhm), 0.0) / FWHM_PER_SIGMA
        out = np.zeros(e.shape)
        for e0, w, a in zip(self.energies, self.lorentzian_fwhm, self.weights):
            if w == 0.0 and sigma == 0.0:
                raise ValueError(f"line {self.name!r}: a monochromatic line needs a detector FWHM > 0")
            out += a * scipy.special.voigt_profile(e - e0, sigma, 0.5 * w)
        return out

    def narrowest_width(self, fwhm: float = 0.0) -> float:
        """FWHM-like scale of the sharpest feature (eV): sets how finely a model must be sampled."""
        w = min(self.lorentzian_fwhm)
        return math.hypot(w, float(fwhm)) if w or fwhm else 0.0

    def _natural_peak(self) -> float:
        """Energy of the natural shape's maximum (the detector FWHM → 0); the mean for a Gaussian line."""
        if self.is_gaussian:
            return float(self.energies[0])
        e = np.asarray(self.energies)
        lo, hi = float(e.min() - 5 * max(self.lorentzian_fwhm)), float(e.max() + 5 * max(self.lorentzian_fwhm))
        grid = np.linspace(lo, hi, 20001)
        start = float(grid[np.argmax(self.pdf(grid))])
        step = grid[1] - grid[0]
        res = scipy.optimize.minimize_scalar(lambda x: -float(self.pdf(x)), bounds=(start - step, start + step),
                                             method="bounded", options={"xatol": 1e-7})
        return float(res.x)

    # ------------------------------------------------------------------ drawing
    def sample(self, size: int, fwhm: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """Random energies (eV): a component by intensity, a Lorentzian (Cauchy) draw, plus detector Gaussian.

        The draws are made in the order mass2's ``SpectralLine.rvs`` makes them (uniform, Cauchy,
        normal), so one seed gives the same energies in both.
        """
        rng = rng or np.random.default_rng()
        sigma = max(float(fwhm), 0.0) / FWHM_PER_SIGMA
        cum = np.cumsum(self.intensities)
        comp = cum.searchsorted(rng.uniform(0, cum[-1], size=size))
        widths, centres = np.asarray(self.lorentzian_fwhm), np.asarray(self.energies)
        out = rng.standard_cauchy(size=size) * widths[comp] * 0.5
        if sigma > 0:
            out += rng.standard_normal(size=size) * sigma
        out += centres[comp]
        bad = out <= 0  # a Cauchy tail below zero energy: draw again
        if np.any(bad):
            out[bad] = self.sample(int(bad.sum()), fwhm, rng)
        return out


# Kα/Kβ tables (energies and widths in eV; heights relative, Hölzer et al. 1997 Tables II/III).
LINES: dict[str, SpectralLine] = {
    "MnKAlpha": SpectralLine.from_peak_heights(
        "MnKAlpha", [5898.853, 5897.867, 5894.829, 5896.532, 5899.417, 5902.712, 5887.743, 5886.495],
        [1.715, 2.043, 4.499, 2.663, 0.969, 1.553, 2.361, 4.216], [790, 264, 68, 96, 71, 10, 372, 100],
        _HOELZER_LANL, position_uncertainty_ev=0.010, nominal_energy=5898.802),
    "MnKBeta": SpectralLine.from_peak_heights(
        "MnKBeta", [6490.89, 6486.31, 6477.73, 6490.06, 6488.83], [1.83, 9.40, 13.22, 1.81, 2.81],
        [608, 109, 77, 397, 176], _HOELZER, position_uncertainty_ev=0.010, nominal_energy=6490.18),
    "FeKAlpha": SpectralLine.from_peak_heights(
        "FeKAlpha", [6404.148, 6403.295, 6400.653, 6402.077, 6391.190, 6389.106, 6390.275],
        [1.613, 1.965, 4.833, 2.803, 2.487, 4.339, 2.57], [697, 376, 88, 136, 339, 60, 102],
        _HOELZER_LANL, position_uncertainty_ev=0.010, nominal_energy=6404.01),
    "FeKBeta": SpectralLine.from_peak_heights(
        "FeKBeta", [7046.90, 7057.21, 7058.36, 7054.75], [14.17, 3.12, 1.97, 6.38], [107, 448, 615, 141],
        _HOELZER, position_uncertainty_ev=0.030, nominal_energy=7058.18),
    "CuKAlpha": SpectralLine.from_peak_heights(
        "CuKAlpha", [8047.8372, 8045.3672, 8027.9935, 8026.5041], [2.285, 3.358, 2.667, 3.571], [957, 90, 334, 111],
        _HOELZER, position_uncertainty_ev=0.010, nominal_energy=8047.83),
    "CuKBeta": SpectralLine.from_peak_heights(
        "CuKBeta", [8905.532, 8903.109, 8908.462, 8897.387, 8911.393], [3.52, 3.52, 3.55, 8.08, 5.31],
        [757, 388, 171, 68, 55], _HOELZER, position_uncertainty_ev=0.030, nominal_energy=8905.42),
    # Ménesguen et al. 2022: integrated intensities (Kα1, Kα2, Kα', KL1 and KL2 satellites)
    "AlKAlpha": SpectralLine(
        "AlKAlpha", (1486.709, 1486.305, 1486.314, 1492.305, 1496.227, 1496.635, 1498.397, 1506.719, 1510.212),
        (0.392, 0.392, 1.12, 1.16, 0.647, 0.685, 0.932, 1.49, 1.07),
        (100, 49.4, 16.1, 1.21, 7.54, 3.7, 5.77, 0.70, 0.51), _MENESGUEN,
        position_uncertainty_ev=0.005, nominal_energy=1486.690),
    "MgKAlpha": SpectralLine(
        "MgKAlpha", (1253.666, 1253.401, 1253.422, 1258.457, 1261.887, 1262.156, 1263.758, 1271.034, 1272.601,
                     1274.187),
        (0.380, 0.374, 0.859, 1.006, 0.485, 0.585, 0.797, 1.213, 0.88, 0.852),
        (100, 49.75, 19.7, 1.99, 8, 6, 8.32, 1.23, 0.23, 0.71), _MENESGUEN,
        position_uncertainty_ev=0.016, nominal_energy=1253.635),
}


def line_names() -> list[str]:
    """Names of the tabulated lines."""
    return sorted(LINES)


def get_line(name: str | float) -> SpectralLine:
    """A tabulated line by name (e.g. ``"MnKAlpha"``), or a Gaussian line at an energy in eV (a number)."""
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        return SpectralLine.gaussian(f"{float(name):g}eV", float(name))
    if name in LINES:
        return LINES[name]
    raise KeyError(f"unknown line {name!r}: expected one of {line_names()} or an energy in eV")
