"""Hardware-aware training against IR drop (``quant.train_wires``).

At every epoch's start the network as it stands is mapped onto the chip and the simulator's IR-drop model gives
each weight's error on that chip's wires (:func:`nvmxbar.core.wire_error.weight_errors`, ideal devices). The epoch
trains on the quantized weights plus those errors: the forward sees what the tile computes, the gradient reaches the
weights straight through (the errors are constants of the epoch). aihwkit's hardware-aware training likewise runs
its forward through the modelled non-idealities (Rasch et al., Nature Communications 14, 5282, 2023); here the wire
model is the exact linear one of the simulator, refreshed once per epoch, as its errors move slowly with the weights.

Validation and the exported model see no wires: model.pt is the network the ideal crossbar computes, and
evaluate_noise's ``wire_scale`` settings measure what the wires cost it. A resumed training recomputes the errors
from the checkpointed weights at its epoch's start, as the uninterrupted one did: it stays bitwise the same.
"""

from __future__ import annotations

import logging

import lightning as L
import torch

from ..core.tile_wires import check_load
from ..core.wire_error import weight_errors
from ..settings import TrainWires

log = logging.getLogger(__name__)


class WireAware(L.Callback):
    """Sets ``net.wire_errors`` (:class:`nvmxbar.core.networks.Net`) at every training epoch's start, clears them
    at the end of training, and logs ``train_wire_error_lsb``: the root-mean-square weight error in weight steps."""

    def __init__(self, wires: TrainWires, bits: int) -> None:
        check_load(wires.chip.device.g_max_us * 1e-6, wires.chip, wires.scale)  # before any epoch, not at the first
        self.wires, self.bits = wires, int(bits)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        errors = weight_errors(net, self.bits, self.wires.map_settings(), self.wires.scale)
        dev = pl_module.device
        net.wire_errors = [(dw.to(dev), None if db is None else db.to(dev)) for dw, db in errors]
        q = [net.quant[i] for i in range(len(errors))]
        steps = [dw.flatten() * (qi.w_levels / float(qi.weight_fullscale.detach())) for (dw, _), qi in zip(errors, q)]
        rms = float(torch.cat(steps).square().mean().sqrt())
        pl_module.log("train_wire_error_lsb", rms, on_step=False, on_epoch=True)
        log.debug("epoch %d: wire error %.4f weight steps (rms)", trainer.current_epoch + 1, rms)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.net.wire_errors = None
