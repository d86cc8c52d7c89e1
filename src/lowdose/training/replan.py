"""Re-plan a ``--budget`` run from the measured rate of its own training loop.

The plan made before training (:mod:`lowdose.training.budget`) sizes ``max_steps`` from a
throughput probe; the loop then runs at another rate (runs trained 50-101 % of their budget).
:class:`BudgetReplan` measures the loop itself and, at each epoch end (right after the
validation, before the checkpoints), asks :func:`lowdose.training.schedule.replan_steps` how many
steps still fit before the budget ends, and re-plans when that differs from the plan by more
than :data:`TOLERANCE`: a new segment of the step plan (epoch length, epochs, ``max_steps``), the
cosine continued from where it is (no jump in the rate), the loop's epoch count, and
``config.yaml`` rewritten so that a resume or a rerun repeats the run. It checks again at every
later epoch end, so a load that comes or goes is followed.

What it measures (``time.perf_counter``, :func:`_now`):

* the **rate**: optimiser steps per second inside epochs (from the second batch of each epoch to
  its last; validation and checkpoints excluded), over the latest epochs that make up at least
  :data:`MEASURE_S` seconds; the first re-plan waits for ``min(MEASURE_S, 10 % of the budget)``
  seconds and :data:`MIN_MEASURED_STEPS` steps;
* the **epoch overhead**: the time between the last step of an epoch and the first of the next
  (validation, checkpoint writes, the new epoch's loader), less one step; before one was seen,
  this epoch's validation plus the plan's checkpoint estimate;
* the **teardown**: after the last epoch, the final checkpoints and the validity range
  (:func:`teardown_validations` validation passes) before ``train`` returns.

The deadline is ``started_s + budget_s`` (``started_s``: when ``train`` was called), so the probe
and the start-up count too. A resumed run does not re-plan: it finishes the steps its
``config.yaml`` holds.

Between epoch ends a load can arrive and slow the loop several-fold (measured: 9 -> 0.4 steps/s
on 2 cores when other work started), and a plan made at the last epoch end then overruns the
budget by the rest of that epoch (4-minute runs ended 13-25 % late). So after every step the
re-plan also checks the deadline: when one more step and the teardown would end past it, training
stops there (``trainer.should_stop``), the cosine unfinished; ``BudgetOutcome.stopped_at_deadline``
and one log line say so, and ``config.yaml`` gains ``stop_step`` beside the cosine's ``max_steps``:
a rerun from it takes the same steps on the same schedule and stops at the same step.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import lightning as L

from lowdose.data.dataset import read_info
from lowdose.physics.dose_thinning import RENOISABLE_MODELS
from lowdose.training.budget import BudgetPlan
from lowdose.training.config import TrainConfig, with_derived_epochs
from lowdose.training.schedule import Segment, epoch_steps, replan_steps, with_segment
from lowdose.training.validity import DEFAULT_DOSE_FRACTIONS

log = logging.getLogger("lowdose.training.run")

MEASURE_S = 20.0  # seconds of loop time the rate is measured over (the latest epochs)
MIN_MEASURED_STEPS = 10
TOLERANCE = 0.02  # re-plan when the new total differs from the plan's by more than this
MIN_EPOCHS_LEFT = 2  # a re-plan keeps at least this many epochs (so a later check can follow)


def teardown_validations(noise_model: str) -> int:
    """Validation passes the validity range takes after training, plus one for the rest.

    Every dose level of :data:`DEFAULT_DOSE_FRACTIONS` where the noise can be re-noised (at
    most: the sweep stops where the model stops helping), else the acquired dose alone.
    """
    return (len(DEFAULT_DOSE_FRACTIONS) if noise_model in RENOISABLE_MODELS else 1) + 1


def _now() -> float:
    return time.perf_counter()


@dataclasses.dataclass(frozen=True)
class BudgetOutcome:
    """What a budget run did against its plan (``manifest.json``'s ``budget_outcome``).

    ``planned_steps``: the probe's plan; ``replanned_steps``: ``max_steps`` after each re-plan
    (empty: never re-planned); ``final_steps``: the plan's last ``max_steps`` (``config.yaml``'s
    ``max_steps``); ``achieved_steps``: the optimiser steps taken; ``probe_steps_per_s`` and
    ``loop_steps_per_s`` (the last measured rate of the loop; None when never measured);
    ``train_s``: the wall time of the training loop; ``wall_s``: from ``train``'s call to its
    end; ``budget_fraction = wall_s / budget_s``. Times in seconds. A resumed run counts its own
    part only (``resumed``). ``stopped_at_deadline``: the loop slowed between epoch ends and
    training stopped before its planned steps to end within the budget.
    """

    budget_s: float
    planned_steps: int
    replanned_steps: list[int]
    final_steps: int
    achieved_steps: int
    probe_steps_per_s: float
    loop_steps_per_s: float | None
    train_s: float
    wall_s: float
    budget_fraction: float
    resumed: bool
    stopped_at_deadline: bool = False


class BudgetReplan(L.Callback):
    """Measure the loop and re-plan its steps at epoch ends (see the module docstring).

    Parameters
    ----------
    config
        The run's resolved config (``max_steps`` from the plan).
    plan
        The probe's plan (its checkpoint estimate, validations).
    started_s
        :func:`_now` when ``train`` was called; the budget ends ``plan.budget_s`` later.
    save_config
        Writes a re-planned config (``config.yaml``) before the epoch's checkpoints.
    """

    def __init__(
        self,
        config: TrainConfig,
        plan: BudgetPlan,
        started_s: float,
        save_config: Callable[[TrainConfig], None],
    ) -> None:
        self.config, self.plan, self.save_config = config, plan, save_config
        self.deadline_s = started_s + plan.budget_s
        noise_model = read_info(config.data.path).attrs.noise_model
        self.teardown_validations = teardown_validations(noise_model)
        self.segments: list[Segment] = list(config.schedule.step_plan or epoch_segment(config))
        self.replanned: list[int] = []
        self.epochs: list[tuple[int, float]] = []  # (steps, seconds) inside each epoch
        self.boundary_s: float | None = None
        self.val_s = 0.0
        self.rate: float | None = None
        self.stopped_at_step: int | None = None  # where the deadline stopped training, if it did
        self._first: tuple[int, float] | None = None  # (step, time) of this epoch's 1st batch
        self._last: tuple[int, float] | None = None
        self._val_start = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now, step = _now(), trainer.global_step
        if self._first is None:
            if self._last is not None and self.rate:  # the gap since the last epoch's end
                self.boundary_s = max(0.0, now - self._last[1] - 1 / self.rate)
            self._first = (step, now)
        step_s = (now - self._last[1]) if self._last is not None else 0.0
        self._last = (step, now)
        planned = self.segments[-1][2]
        late = now + step_s + self._teardown_s() >= self.deadline_s
        if self.stopped_at_step is None and step < planned and late:
            trainer.should_stop = True  # one more step and the teardown would end past it
            self.stopped_at_step = step
            # config.yaml keeps the cosine's plan and where it stopped: a rerun repeats both
            self.config = self.config.with_values(stop_step=step)
            self.save_config(self.config)
            log.info(
                "budget: training stops at step %d of %d: the loop slowed to %.2f s per step, "
                "and one more step and the final checkpoints would end past the budget",
                step,
                planned,
                step_s,
            )

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = _now()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self._first is None or self._last is None:
            return  # (the last epoch end needs no plan: a run annealed to its end stays there)
        now = _now()
        self.val_s = now - self._val_start
        steps, seconds = self._last[0] - self._first[0], self._last[1] - self._first[1]
        self._first = None
        if steps > 0 and seconds > 0:
            self.epochs.append((steps, seconds))
        self.rate = self._measured_rate()
        if self.rate is None:
            return
        decision = replan_steps(
            step=trainer.global_step,
            steps_per_s=self.rate,
            time_left_s=self.deadline_s - now - self._teardown_s(),
            epoch_overhead_s=self._overhead_s(),
            validations_left=max(
                MIN_EPOCHS_LEFT, self.config.schedule.validations - len(self.epochs)
            ),
        )
        current = self.segments[-1][2]
        small = abs(decision.max_steps - current) <= TOLERANCE * current
        if trainer.global_step >= current or small:
            return
        segment = (trainer.global_step, decision.steps_per_epoch, decision.max_steps)
        self._apply(trainer, pl_module, with_segment(self.segments, segment))
        log.info(
            "re-planned at step %d from the loop's %.2f steps/s: %d steps in all (was %d)",
            trainer.global_step,
            self.rate,
            decision.max_steps,
            current,
        )

    def _measured_rate(self) -> float | None:
        """Steps/s over the latest epochs that make up MEASURE_S seconds (None: too few yet)."""
        steps = seconds = 0.0
        for epoch_steps_, epoch_s in reversed(self.epochs):
            steps, seconds = steps + epoch_steps_, seconds + epoch_s
            if seconds >= MEASURE_S:
                break
        enough_s = min(MEASURE_S, 0.1 * self.plan.budget_s)
        if steps < MIN_MEASURED_STEPS or seconds < enough_s:
            return None
        return steps / seconds

    def _overhead_s(self) -> float:
        """Seconds per further epoch beyond its steps (measured, else estimated)."""
        estimate = self.val_s + self.plan.checkpoint_s / (self.plan.validations + 1)
        return estimate if self.boundary_s is None else max(self.boundary_s, estimate)

    def _teardown_s(self) -> float:
        return self.teardown_validations * self.val_s + self._overhead_s()

    def _apply(self, trainer, pl_module, segments: list[Segment]) -> None:
        """Make ``segments`` the plan of the module, the loop, the data and config.yaml."""
        self.segments = segments
        self.replanned.append(segments[-1][2])
        config = self.config.with_values(max_steps=segments[-1][2], step_plan=segments)
        self.config = with_derived_epochs(config)
        pl_module.config = self.config
        trainer.fit_loop.max_epochs = len(epoch_steps(segments))
        trainer.datamodule.config = self.config
        trainer.reload_dataloaders_every_n_epochs = 1  # epochs change length from now on
        self.save_config(self.config)


def epoch_segment(config: TrainConfig) -> list[Segment]:
    """The one segment of a run never re-planned: epochs as ``with_derived_epochs`` made them."""
    max_steps = config.schedule.max_steps
    return [(0, max_steps // config.schedule.epochs, max_steps)]


def budget_outcome(
    plan: BudgetPlan,
    config: TrainConfig,
    *,
    achieved_steps: int,
    train_s: float,
    wall_s: float,
    replan: BudgetReplan | None,
    resumed: bool,
) -> BudgetOutcome:
    """The :class:`BudgetOutcome` of a finished (or stopped) budget run."""
    replanned = [segment[2] for segment in (config.schedule.step_plan or [])[1:]]
    return BudgetOutcome(
        budget_s=plan.budget_s,
        planned_steps=plan.max_steps,
        replanned_steps=replanned,
        final_steps=config.schedule.max_steps,
        achieved_steps=achieved_steps,
        probe_steps_per_s=plan.steps_per_s[plan.width],
        loop_steps_per_s=None if replan is None else replan.rate,
        train_s=round(train_s, 3),
        wall_s=round(wall_s, 3),
        budget_fraction=round(wall_s / plan.budget_s, 4),
        resumed=resumed,
        stopped_at_deadline=replan is not None and replan.stopped_at_step is not None,
    )
