"""Tone channelizer: the MKID readout's front end in one streaming object (PFB + per-tone DDC).

ADC blocks in, ``(n_out, n_tones)`` complex64 IQ out, block-size independent and gap-safe
(``reset(first_sample)``): :class:`~cryodaq.dsp.pfb.PFBChannelizer` splits the band into
bins, :class:`~cryodaq.dsp.ddc.ToneDDC` brings each tone to DC, low-passes and decimates.
Output sample ``k`` refers to ADC sample :meth:`ToneChannelizer.sample_index` ``(k)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.backend import Backend
from cryodaq.dsp.ddc import ToneDDC
from cryodaq.dsp.pfb import PFBChannelizer

__all__ = ["ToneChannelizer"]


class ToneChannelizer:
    """PFB + per-tone DDC in one streaming object: ADC blocks in, (n_out, n_tones) IQ out."""

    def __init__(
        self,
        tone_if_hz: Any,
        fs: float,
        n_channels: int,
        n_taps: int = 8,
        decimation: int = 1,
        oversampling: int = 1,
        backend: Backend | None = None,
        window: Any = "hann",
        lowpass_taps: int | None = None,
        lowpass_cutoff: float = 0.8,
    ) -> None:
        self.pfb = PFBChannelizer(n_channels, n_taps, oversampling, window, True, backend)
        self.ddc = ToneDDC(
            tone_if_hz, fs, self.pfb, decimation, lowpass_taps, lowpass_cutoff, backend=self.pfb.backend
        )
        self.backend = self.pfb.backend
        self.fs = float(fs)

    @property
    def bins(self) -> np.ndarray:
        return self.ddc.bins

    @property
    def offsets_hz(self) -> np.ndarray:
        return self.ddc.offsets_hz

    @property
    def output_rate(self) -> float:
        return self.ddc.output_rate

    @property
    def n_tones(self) -> int:
        return self.ddc.n_tones

    def sample_index(self, k: Any) -> Any:
        """Input ADC sample index (float64) that output sample ``k`` (since reset) refers to."""
        return self.ddc.sample_index(k)

    def reset(self, first_sample: int = 0) -> None:
        """Forget all history; the next ADC sample has index ``first_sample`` (e.g. after a gap)."""
        self.pfb.reset(first_sample)
        self.ddc.reset(0)

    def process(self, adc_block: Any) -> Any:
        """Channelize and down-convert the next ADC samples; returns (n_out, n_tones) complex64."""
        return self.ddc.process(self.pfb.process(adc_block))
