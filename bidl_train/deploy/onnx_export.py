"""torch's two ONNX exporters, and which one writes each graph.

torch recommends the ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``, which needs the ``onnxscript``
package); the TorchScript-based one (``dynamo=False``) is deprecated.
:func:`export_graph` writes every graph with the recommended exporter and
falls back to the TorchScript-based one only where the recommended one
cannot express the graph: ``onnxscript`` is missing, ``torch.export`` or the
ONNX translation fails, or what it wrote is not a valid opset-:data:`OPSET`
model. It returns which exporter wrote the graph and, after a fallback, why,
for the deploy report.

Both exporters print internals no user can act on (torch-internal
deprecations, "torchvision is not installed", the opset 18 -> 17 conversion
the requested opset implies, the TorchScript exporter's own deprecation
notice): they are silenced during the export only. The report says when the
deprecated exporter was used.

``BIDL_TRAIN_ONNX_EXPORTER=torchscript`` asks for the TorchScript-based
exporter outright (recorded as the reason): it writes a graph in well under
a second where the recommended one takes seconds to tens of seconds, which
matters for many exports (the test suite sets it, except in the tests of
the exporters themselves).
"""
import importlib.util
import logging
import os
import warnings
from contextlib import contextmanager

import torch

__all__ = ['OPSET', 'export_graph', 'exporter_summary', 'exporter_note',
           'EXPORTER_ENV']

#: environment variable choosing the exporter: ``auto`` (default) or
#: ``torchscript``
EXPORTER_ENV = 'BIDL_TRAIN_ONNX_EXPORTER'

#: the opset of every written graph; runtimes that consume the artefacts
#: depend on it, so the recommended exporter (whose own operators are opset
#: 18) converts down to it, and a graph it cannot convert falls back
OPSET = 17

DYNAMO = 'dynamo'
TORCHSCRIPT = 'torchscript'

#: the loggers through which the exporters report their internals
_EXPORTER_LOGGERS = ('torch.onnx', 'torch.export', 'torch._dynamo',
                     'onnxscript', 'onnx_ir')


class CannotExpress(Exception):
    """The recommended exporter cannot write this graph (the reason)."""


@contextmanager
def _quiet():
    """Silence warnings and exporter log lines below ERROR, then restore
    the loggers' levels."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for log in loggers:
            log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for log, level in zip(loggers, levels):
                log.setLevel(level)


def _root_cause(error):
    """``Type: first line`` of the innermost exception behind ``error``:
    torch's exporter wraps the real failure in a long generic message."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip()]
    text = lines[0] if lines else '(no message)'
    if len(text) > 300:
        text = text[:297] + '...'
    return f'{type(error).__name__}: {text}'


def _check_written(path):
    """The written file must be a valid model of opset :data:`OPSET`."""
    import onnx
    model = onnx.load(path)
    opset = next((o.version for o in model.opset_import
                  if o.domain in ('', 'ai.onnx')), None)
    if opset != OPSET:
        raise CannotExpress(f'it wrote ONNX opset {opset}, not {OPSET} (its '
                            f'conversion down to opset {OPSET} failed)')
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise CannotExpress('the ONNX checker refused what it wrote: '
                            + _root_cause(error)) from None


#: the opset the recommended exporter's operators are written in (its
#: translation table, torchlib); :func:`_to_opset` converts down from it
_WRITTEN_OPSET = 18

#: value types of index arithmetic (shapes, axes, sizes): the only values
#: :func:`_to_opset` folds into constants
_INDEX_TYPES = ('INT64', 'INT32')


def _index_arithmetic(node):
    """For the constant folder: fold ``node`` (None: by its own rules) only
    where every input is a constant integer index value (the unoptimised
    graph has no types on computed values, so it is judged by its inputs),
    never where a float tensor or an int8 weight goes in."""
    import onnx_ir as ir
    index = {getattr(ir.DataType, name) for name in _INDEX_TYPES}
    inputs = [value for value in node.inputs if value is not None]
    if all(value.const_value is not None and value.const_value.dtype in index
           for value in inputs):
        return None
    return False


def _to_opset(model):
    """Convert the exported ``model`` (an ``onnx_ir`` model, opset
    :data:`_WRITTEN_OPSET`) down to :data:`OPSET`, in place.

    Opset 18 takes the axes of ``ReduceMean`` (and the other reductions)
    as an input; opset 17 as an attribute, so the converter needs them as a
    constant. Unoptimised, the exporter computes them (a ``Reshape`` of
    constants), and the conversion fails: the integer index arithmetic is
    folded first. Float values are not folded: folding would turn int8
    weights back into float initialisers (``Cast * scale`` precomputed),
    which is why the exporter's own optimiser stays off.
    """
    from onnxscript import optimizer, version_converter
    optimizer.fold_constants(model, should_fold=_index_arithmetic)
    version_converter.convert_version(model, OPSET, fallback=True)
    _drop_noop_with_empty_axes(model)


def _drop_noop_with_empty_axes(model):
    """Remove the opset-18 attribute ``noop_with_empty_axes`` that ONNX's
    converter leaves on the reductions which gained it in opset 18 (all but
    ``ReduceSum``), making an opset-17 node the checker refuses. Its value 0
    (the default) is what opset 17 does; 1 is not expressible there."""
    import onnx_ir as ir
    if model.opset_imports.get('') != OPSET:
        return  # not converted: _check_written says so
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if (node.op_type.startswith('Reduce') and node.op_type != 'ReduceSum'
                and 'noop_with_empty_axes' in node.attributes):
            if node.attributes['noop_with_empty_axes'].as_int() != 0:
                raise CannotExpress(f'{node.op_type} with '
                                    'noop_with_empty_axes=1 has no opset-'
                                    f'{OPSET} form')
            node.attributes.pop('noop_with_empty_axes')


def _export_dynamo(module, args, path, input_names, output_names,
                   dynamic_shapes):
    """Write ``path`` with ``torch.onnx.export(dynamo=True)``, or raise
    :class:`CannotExpress` saying why it could not."""
    if importlib.util.find_spec('onnxscript') is None:
        raise CannotExpress('the onnxscript package is not installed (pip '
                            'install onnxscript, or bidl-train[deploy])')
    try:
        with _quiet():
            program = torch.onnx.export(
                module, args, None, dynamo=True,
                opset_version=_WRITTEN_OPSET, input_names=input_names,
                output_names=output_names, dynamic_shapes=dynamic_shapes,
                verbose=False,
                # the optimiser's constant folding would turn int8 weights
                # back into float initialisers (Cast * scale precomputed)
                optimize=False)
            _to_opset(program.model)
            # one self-contained file, as the TorchScript exporter wrote
            program.save(path, external_data=False)
    except Exception as error:  # noqa: B902
        # torch wraps what torch.export or the translation refuses in
        # OnnxExporterError, but a construct it does not foresee can fail
        # with any error inside it: either way the graph is not written,
        # and the fallback (whose reason names the error) still is
        raise CannotExpress(_root_cause(error)) from None
    _check_written(path)


def _export_torchscript(module, args, path, input_names, output_names,
                        dynamic_axes):
    """Write ``path`` with the deprecated TorchScript-based exporter."""
    with _quiet():
        torch.onnx.export(module, args, path, dynamo=False,
                          opset_version=OPSET, input_names=input_names,
                          output_names=output_names,
                          dynamic_axes=dynamic_axes,
                          do_constant_folding=False)


def _requested_exporter():
    from bidl_train.errors import ConfigError
    value = os.environ.get(EXPORTER_ENV, 'auto').strip().lower() or 'auto'
    if value not in ('auto', TORCHSCRIPT):
        raise ConfigError(f'{EXPORTER_ENV}={value!r}: use auto (the '
                          'recommended exporter, falling back where it '
                          'cannot write a graph) or torchscript')
    return value


def export_graph(path, input_names, output_names, dynamo, torchscript):
    """Write one graph to ``path``; return how (for the report).

    Args:
        dynamo: ``(module, args, dynamic_shapes)`` for the recommended
            exporter (``dynamic_shapes``: per argument, ``{axis: name}`` or
            None; the names become the ONNX dimension names).
        torchscript: a function returning ``(module, args, dynamic_axes)``
            for the TorchScript-based exporter, called only on a fallback
            (its module may be costly to build: a scripted loop).

    Returns:
        dict: ``used`` (``'dynamo'`` or ``'torchscript'``) and, after a
        fallback, ``fallback_reason``.
    """
    module, args, dynamic_shapes = dynamo
    try:
        if _requested_exporter() == TORCHSCRIPT:
            raise CannotExpress(f'{EXPORTER_ENV}=torchscript asked for the '
                                'TorchScript-based exporter')
        _export_dynamo(module, args, path, input_names, output_names,
                       dynamic_shapes)
        return dict(used=DYNAMO)
    except CannotExpress as reason:
        with _quiet():  # scripting a loop: torch.jit's own deprecations
            module, args, dynamic_axes = torchscript()
        _export_torchscript(module, args, path, input_names, output_names,
                            dynamic_axes)
        return dict(used=TORCHSCRIPT, fallback_reason=str(reason))


def exporter_summary(graphs):
    """The report's ``exporter`` entry from ``{file: export_graph()}``:
    ``used`` is ``'dynamo'`` or ``'torchscript'`` where every graph used
    it, else ``'mixed'``; ``graphs`` says per file, and
    ``fallback_reason`` joins the reasons (``file: reason``)."""
    used = {info['used'] for info in graphs.values()}
    summary = dict(used=used.pop() if len(used) == 1 else 'mixed',
                   opset=OPSET, graphs=graphs)
    reasons = [f"{name}: {info['fallback_reason']}"
               for name, info in graphs.items() if 'fallback_reason' in info]
    if reasons:
        summary['fallback_reason'] = '; '.join(reasons)
        summary['deprecated'] = (
            'the TorchScript-based ONNX exporter (torch.onnx.export(..., '
            'dynamo=False)) is deprecated in torch ' + torch.__version__ +
            ' and may be removed from a later torch')
    return summary


def exporter_note(summary):
    """One line for the report's notes (shown on the console)."""
    if summary['used'] == DYNAMO:
        return (f"ONNX opset {summary['opset']}, exported with "
                'torch.onnx.export(dynamo=True) (torch.export)')
    per_file = ', '.join(f"{name}: {info['used']}"
                         for name, info in summary['graphs'].items())
    return (f"ONNX opset {summary['opset']}, exporters {per_file}; fell "
            f"back to the deprecated TorchScript-based exporter because "
            f"{summary['fallback_reason']}")
