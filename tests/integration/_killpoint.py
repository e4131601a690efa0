"""A training that stops at a chosen point, says so on a pipe and waits there to be killed (SIGKILL by the test
that started it), and what a test needs to watch a rerun resume. Run in a child process as
``python -c "from integration._killpoint import main; main()" '<json>'`` (tests/ and src/ on PYTHONPATH), the
pipe's write end inherited (its descriptor in the JSON)."""

import json
import os
import sys
import threading
from pathlib import Path

import lightning as L

from integration import _helpers as h

TRAIN_NOISE = 0.02  # the quantizer's training noise on: one more consumer of torch's global generator
WIRE_SCALE = 4.0  # x the chip's wires in the hardware-aware trainings: errors of a good part of a weight step
WAIT_S = 600  # a child whose parent never kills it exits (3) after this long instead of waiting forever

# Where the child stops (Lightning's 0-based epochs); the checkpoint a rerun resumes from is last.ckpt's epoch.
KILL_POINTS = {
    "mid_epoch": {"epoch": 2, "batch": 3},  # after batch 3 of the third epoch: last.ckpt holds epoch 1
    "after_checkpoint": {"epoch": 2, "batch": None},  # epoch 1's checkpoints written, epoch 2 not started
    "writing_checkpoint": {"epoch": 2, "batch": "save"},  # inside the write of epoch 2's first checkpoint
}


def run(har_dir: Path, out: Path, variant: str, bits: int | None, callbacks=(), wires: bool = False, **kw):
    """:func:`integration._helpers.run` with quant.train_noise = TRAIN_NOISE and ``callbacks`` in the fit (after the
    stage's own); ``wires``: hardware-aware training against IR drop (quant.train_wires = WIRE_SCALE)."""
    from nvmxbar.settings import TrainWires
    from nvmxbar.stages import train
    from nvmxbar.training.fit import fit

    def with_ours(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[*callbacks, *ours], **kwargs)

    ours = list(callbacks)
    saved, train.fit = train.fit, with_ours
    noise = h.CFG["quant"]["train_noise"]
    h.CFG["quant"]["train_noise"] = TRAIN_NOISE
    if wires:
        kw["train_wires"] = TrainWires(WIRE_SCALE, h.CHIP, h.CFG["map_crossbar"]["bias"])
    try:
        return h.run(har_dir, out, variant=variant, bits=bits, **kw)
    finally:
        train.fit, h.CFG["quant"]["train_noise"] = saved, noise


def halt(ready: int, where: dict) -> None:
    """Tell the parent where the training stands (one line on the pipe ``ready``), then wait to be killed."""
    os.write(ready, (json.dumps(where) + "\n").encode())  # under PIPE_BUF: one write, read whole
    threading.Event().wait(WAIT_S)
    os._exit(3)


class _HaltWhilePickled:
    """An object whose pickling halts: put in a checkpoint, it stops the process half-way through writing it."""

    def __init__(self, ready: int, where: dict):
        self.ready, self.where = ready, where

    def __reduce__(self):
        halt(self.ready, self.where)


class KillPoint(L.Callback):
    """Halts the training at ``epoch`` (0-based): after its batch ``batch``, at its start (``batch`` None: the
    previous epoch's checkpoints are on disk), or while its first checkpoint is being written (``"save"``)."""

    def __init__(self, ready: int, epoch: int, batch: int | str | None):
        self.ready, self.epoch, self.batch = ready, epoch, batch

    def _where(self, trainer) -> dict:
        return {"epoch": trainer.current_epoch, "global_step": trainer.global_step}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            halt(self.ready, {**self._where(trainer), "batch": batch_idx})

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and self.batch is None:
            halt(self.ready, self._where(trainer))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.current_epoch == self.epoch and self.batch == "save":
            checkpoint["zz_halt"] = _HaltWhilePickled(self.ready, self._where(trainer))  # pickled after the rest


class Starts(L.Callback):
    """Records where a fit starts (epoch and global step at on_train_start) and which epochs it trains."""

    def __init__(self):
        self.start: tuple[int, int] | None = None
        self.epochs: list[int] = []

    def on_train_start(self, trainer, pl_module):
        self.start = (trainer.current_epoch, trainer.global_step)

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs.append(trainer.current_epoch)


def main() -> None:
    """The child: ``sys.argv[1]`` is JSON with har_dir, out, ready_fd, variant, bits, point, recipe, experiment."""
    a = json.loads(sys.argv[1])
    kill = KillPoint(a["ready_fd"], **KILL_POINTS[a["point"]])
    run(
        Path(a["har_dir"]),
        Path(a["out"]),
        a["variant"],
        a["bits"],
        callbacks=[kill],
        recipe=a["recipe"],
        experiment=a["experiment"],
        wires=a.get("wires", False),
    )
    sys.exit(4)  # it trained to the end: the kill point was never reached
