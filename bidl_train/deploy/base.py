"""The protocol every deployment target follows.

A target is a class registered in :data:`bidl_train.registry.DEPLOY_TARGETS`
with

* ``name`` and ``description`` (shown by ``bidl-deploy --list``);
* ``precisions``: the precisions it can write;
* ``check(lowered)``: raise :class:`UnsupportedFeature` naming the layer and
  the feature for anything the format cannot express exactly. Called before
  anything is written, so a refused model leaves no artefact behind;
* ``export(step_net, example, out_dir) -> Export``: write the artefacts of
  an already prepared (lowered, precision-converted) :class:`StepNet`;
* ``load(export) -> Runtime``: open the written files in the target's own
  runtime, for verification.

A :class:`Runtime` runs the deployed artefact on numpy arrays: ``step`` gives
every output of the state-aware graph (``y``, new states, spikes, in
``Export.output_names`` order) and ``unrolled`` the T-step graph's logits
(``None`` where the target has no unrolled form). Where the export has a
``teacher`` input (:attr:`Export.teacher`), both take it as the keyword
``teacher`` (int64 labels ``[B]``, ``-1``: no label); it is given to no
other runtime.
"""
from dataclasses import dataclass, field

from bidl_train.errors import ConfigError

__all__ = ['UnsupportedFeature', 'Export', 'Runtime', 'DeployTarget']

PRECISIONS = ('fp32', 'fp16', 'int8')


class UnsupportedFeature(ConfigError):
    """The model uses something the chosen target cannot express exactly."""

    def __init__(self, target, layer, feature, hint=''):
        message = (f'target {target!r} cannot express layer {layer}: '
                   f'{feature}')
        if hint:
            message += f'; {hint}'
        super().__init__(message)
        self.target, self.layer, self.feature = target, layer, feature


@dataclass
class Export:
    """What a target wrote."""
    files: dict  # role -> path ('step', 'unrolled', 'initial_state', ...)
    input_names: list
    output_names: list
    state_names: list
    spike_names: list
    notes: list = field(default_factory=list)
    #: False where the runtime's states are not the model's own (NIR keeps
    #: membranes scaled by 1 - alpha): they are fed back but not compared
    compare_states: bool = True
    #: states with no batch axis, one value for the whole batch (a
    #: persistent plastic layer's local weight): not repeated per sample
    shared_states: list = field(default_factory=list)
    #: the ``teacher`` input's description (name, dtype, shape, meaning,
    #: layers) where a layer learns from labels at inference, else None
    teacher: dict = None
    #: target-specific entries for the deploy report (the ONNX target's
    #: ``exporter``: which torch exporter wrote each graph, and why)
    report: dict = field(default_factory=dict)


class Runtime:
    """Runs deployed artefacts; subclasses implement both methods."""

    def step(self, x_t, states, teacher=None):
        """``x_t``, ``states`` (and the labels ``teacher`` of an export
        with a teacher input): numpy arrays -> list of numpy outputs."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement step()')

    def unrolled(self, x_seq, teacher=None):
        return None


class DeployTarget:
    """Base class: a target with no restrictions beyond the lowering."""

    name = ''
    description = ''
    precisions = PRECISIONS

    def check(self, lowered):
        """Raise :class:`UnsupportedFeature` for what cannot be exported."""

    def check_precision(self, precision):
        if precision not in self.precisions:
            raise ConfigError(
                f'target {self.name!r} supports precision '
                f'{"/".join(self.precisions)}, not {precision!r}')

    def export(self, step_net, example, out_dir):
        raise NotImplementedError(f'target {self.name!r} must implement export()')

    def load(self, export):
        raise NotImplementedError(f'target {self.name!r} must implement load()')
