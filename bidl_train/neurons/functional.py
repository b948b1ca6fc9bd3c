"""Fused multi-step LIF: the whole recurrence over T in one autograd node.

The plain multi-step form builds an autograd graph of ~10 nodes per time step
and keeps every intermediate of every step alive for backward. This kernel
runs the forward recurrence without autograd, saves only the integrated
potentials ``u_t`` (one tensor the size of the input), and computes the
backward recurrence (BPTT through reset and leak) by hand. Spikes, resets and
surrogate derivatives are recomputed from ``u_t`` in backward, exactly.

Forward, per step (see :mod:`bidl_train.neurons.lif`):

    u_t = x_t + v_{t-1}              (v_{-1} = 0)
    s_t = H(u_t - theta)
    r_t = s_t v0 + (1 - s_t) u_t     (hard)   or   u_t - s_t theta   (soft)
    v_t = alpha r_t + beta

Output ``y_t``: ``s_t`` (out_mode ``'spike'``) or one of
``[u_t, u_t - theta, r_t, v_t]`` (out_mode 0..3, LIAF before its activation).

Backward. Let ``gY_t`` be the incoming gradient of ``y_t``, ``sg_t =
sigma'(u_t - theta)`` the surrogate derivative, and (``detach_reset`` zeroes
``dr/ds``)

    hard: dr/du = 1 - s_t,  dr/ds = v0 - u_t,   dr/dv0 = s_t
    soft: dr/du = 1,        dr/ds = -theta,     dr/dtheta = -s_t

Going backwards from ``t = T-1`` with ``gU_T = 0``:

    gV_t = gU_{t+1} + [gY_t if y = v]        (gradient of v_t)
    gR_t = alpha gV_t + [gY_t if y = r]
    gS_t = [gY_t if y = s] + gR_t dr/ds
    gU_t = gR_t dr/du + gS_t sg_t + [gY_t if y = u or u - theta]
    gX_t = gU_t                               (u_t = x_t + v_{t-1})

and the parameter gradients sum over t (then over broadcast dims):

    g_alpha += gV_t r_t,   g_beta += gV_t,   g_v0 += gR_t dr/dv0 (hard),
    g_theta += -gS_t sg_t  + gR_t dr/dtheta (soft)  - [gY_t if y = u - theta]

Three implementations of the same equations:

* :class:`LIFMultiStep`: pure PyTorch; runs wherever torch does (CPU or
  CUDA) and needs no compiler;
* :class:`LIFMultiStepCpp`: the compiled CPU kernel of
  :mod:`bidl_train.neurons.lif_cpp` (one pass over memory forward and one
  backward; it saves only the input and recomputes ``u`` in backward), used
  automatically for CPU float32/float64 inputs with a built-in surrogate
  when it builds; ``BIDL_TRAIN_CPP_KERNEL=0`` turns it off;
* ``LIFMultiStepTriton``: the same memory plan as Triton GPU kernels
  (:mod:`bidl_train.neurons.lif_triton`), used automatically for CUDA
  inputs (float16/bfloat16/float32/float64) with a built-in surrogate when
  ``triton`` imports and passes a one-time self-test on the device;
  ``BIDL_TRAIN_TRITON_KERNEL=0`` turns it off. Triton is imported only
  then, so a missing or broken Triton never stops ``bidl_train`` from
  importing: the pure-PyTorch kernel runs instead.

With BatchNorm on the membrane (``norm_state``),
:func:`lif_multistep_bn` runs the same recurrence on ``z_t = BN(u_t)``
(per-step batch statistics over batch and spatial dims per channel in
training mode, the running ones in eval mode; the running statistics
updated every step as ``nn.BatchNorm`` does) and back-propagates through
the batch statistics and the BN weight and bias:

* :class:`LIFMultiStepBNCpp` (the compiled CPU kernel; each thread runs its
  channels through all ``T`` steps, so no barrier per step) saves the input
  and the per-step, per-channel mean and invstd, and recomputes the
  potentials in backward;
* :class:`LIFMultiStepBN` (pure PyTorch, every device) runs ATen's own
  BatchNorm ops per step (its outputs and running statistics are the
  loop's bit for bit) and saves the pre-norm potentials and the statistics;
* ``LIFMultiStepBNTriton`` (:mod:`bidl_train.neurons.lif_triton`) is the
  C++ kernel's plan on the GPU: one Triton program per channel runs it
  through all ``T`` steps, saving the same tensors.

``kernel='torch'`` forces the pure-PyTorch kernel; ``'cpp'`` and
``'triton'`` force theirs and raise a ConfigError saying why when it cannot
run (``'triton'`` runs CPU tensors only under Triton's interpreter,
``TRITON_INTERPRET=1``, which the tests use).
"""
import functools
import os
import warnings

import torch

from bidl_train.errors import ConfigError
from .lif_cpp import load_cpp_kernel, surrogate_code

__all__ = ['lif_multistep', 'lif_multistep_bn', 'LIFMultiStep',
           'LIFMultiStepCpp', 'LIFMultiStepBN', 'LIFMultiStepBNCpp',
           'MembraneBN',
           'announce_kernel', 'select_kernel', 'load_triton_kernel',
           'triton_enabled', 'TRITON_ENV_VAR']

_OUT_MODES = ('spike', 0, 1, 2, 3)
_KERNELS = ('auto', 'cpp', 'torch', 'triton')
#: Environment variable: ``0``/``false``/``off`` disables the Triton kernel.
TRITON_ENV_VAR = 'BIDL_TRAIN_TRITON_KERNEL'
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _reduce_to(grad, param):
    """Sum a full-size gradient down to ``param``'s broadcast shape."""
    if param.dim() == 0:
        return grad.sum().to(param.dtype)
    return grad.sum_to_size(param.shape).to(param.dtype)


class LIFMultiStep(torch.autograd.Function):
    """Autograd function of the fused kernel; use :func:`lif_multistep`.

    Implementation notes: spikes are formed as floats with ``torch.gt(...,
    out=float_tensor)`` and resets as multiply-adds (``r = u + s (v0 - u)``,
    ``r = u - s theta``) because boolean-mask ops (``where``,
    ``masked_fill``) are several times slower than arithmetic on CPU. Every
    per-step intermediate lives in a buffer allocated once per call and is
    written with ``out=`` or in place, so the loop over ``T`` allocates
    nothing (fresh allocations of large tensors cost page faults on every
    step); the parameter gradients accumulate in place.
    """

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, derivative, reset,
                detach_reset, out_mode):
        hard = reset == 'hard'
        dtype = x_seq.dtype
        a, b, th, rv = (p.to(dtype) for p in (alpha, beta, theta, v0))
        u_seq = torch.empty_like(x_seq)
        spikes = torch.empty_like(x_seq) if out_mode == 'spike' else None
        s, r, v, tmp = (torch.empty_like(x_seq[0]) for _ in range(4))
        for t in range(x_seq.shape[0]):
            _charge(x_seq, t, v, out=u_seq[t])
            _fire_reset_leak(u_seq[t], a, b, th, rv, hard, tmp, out=(
                spikes[t] if spikes is not None else s, r, v))

        if out_mode == 'spike':
            y = spikes
        elif out_mode == 0:
            y = u_seq.clone()
        elif out_mode == 1:
            y = u_seq - th
        else:
            y = _reset_seq(u_seq, th, rv, hard)
            if out_mode == 3:
                y = torch.addcmul(b, a, y)

        ctx.save_for_backward(u_seq, alpha, beta, theta, v0)
        ctx.derivative = derivative
        ctx.hard = hard
        ctx.detach_reset = detach_reset
        ctx.out_mode = out_mode
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u_seq, alpha, beta, theta, v0 = ctx.saved_tensors
        need_x, need_a, need_b, need_th, need_v0 = ctx.needs_input_grad[:5]
        hard, out_mode = ctx.hard, ctx.out_mode
        keep_ds = not ctx.detach_reset
        dtype = u_seq.dtype
        a, th, rv = alpha.to(dtype), theta.to(dtype), v0.to(dtype)

        def buffer():
            return torch.empty_like(u_seq[0])

        grad_x = torch.empty_like(u_seq) if need_x else None
        s, diff, tmp, r = buffer(), buffer(), buffer(), buffer()
        gv_buf, gr_buf, gs_buf, gssg_buf = (buffer() for _ in range(4))
        gu_bufs = None if need_x else (buffer(), buffer())
        acc = {}

        def accumulate(name, op):
            """``acc[name] (+)= ...``: ``op(None)`` makes the first value,
            ``op(buffer)`` adds to it in place."""
            acc[name] = op(acc.get(name))

        g_next = None  # dL/du_{t+1}
        for t in range(u_seq.shape[0] - 1, -1, -1):
            u, gy = u_seq[t], grad_y[t]
            torch.gt(u, th, out=s)
            torch.sub(u, th, out=diff)
            sg = ctx.derivative(diff)
            if hard:
                torch.sub(rv, u, out=tmp)  # dr/ds; r = u + s * tmp

            # gradient of v_t: from step t+1 and, if y = v, from the output
            g_v = g_next
            if out_mode == 3:
                g_v = gy if g_next is None else \
                    torch.add(g_next, gy, out=gv_buf)
            # gradient of r_t
            g_r = None
            if g_v is not None:
                g_r = torch.mul(g_v, a, out=gr_buf)
                if out_mode == 2:
                    g_r.add_(gy)
            elif out_mode == 2:
                g_r = gy
            # gradient of s_t: the output and, unless detached, the reset
            g_s = gy if out_mode == 'spike' else None
            if g_r is not None and keep_ds:
                if g_s is None:
                    g_s = torch.mul(g_r, tmp, out=gs_buf) if hard else \
                        torch.mul(g_r, th, out=gs_buf).neg_()
                else:
                    g_s = torch.addcmul(g_s, g_r, tmp, out=gs_buf) if hard \
                        else torch.addcmul(g_s, g_r, th, value=-1,
                                           out=gs_buf)
            g_ssg = None if g_s is None else torch.mul(g_s, sg, out=gssg_buf)
            # gradient of u_t = through r (dr/du = 1 - s or 1), through s,
            # and directly when y = u or u - theta
            g_u = grad_x[t] if need_x else gu_bufs[t % 2]
            if g_r is not None:
                if hard:
                    torch.addcmul(g_r, g_r, s, value=-1, out=g_u)
                else:
                    g_u.copy_(g_r)
            else:
                g_u.zero_()
            if g_ssg is not None:
                g_u.add_(g_ssg)
            if out_mode in (0, 1):
                g_u.add_(gy)

            # parameter gradients, summed over t in place
            if g_v is not None:
                if need_a:
                    if hard:
                        torch.addcmul(u, s, tmp, out=r)
                    else:
                        torch.addcmul(u, s, th, value=-1, out=r)
                    accumulate('a', lambda acc_a: g_v * r if acc_a is None
                               else acc_a.addcmul_(g_v, r))
                if need_b:
                    accumulate('b', lambda acc_b: g_v.clone() if acc_b is None
                               else acc_b.add_(g_v))
            if need_th:
                terms = []
                if g_ssg is not None:
                    terms.append((g_ssg, None))
                if not hard and g_r is not None:
                    terms.append((g_r, s))
                if out_mode == 1:
                    terms.append((gy, None))
                for term, factor in terms:
                    accumulate('th', lambda acc_th: _subtract(acc_th, term,
                                                              factor, u))
            if need_v0 and hard and g_r is not None:
                accumulate('v0', lambda acc_v0: g_r * s if acc_v0 is None
                           else acc_v0.addcmul_(g_r, s))
            g_next = g_u

        def finish(name, param, needed):
            if not needed:
                return None
            if name not in acc:
                return torch.zeros_like(param)
            return _reduce_to(acc[name], param)

        return (grad_x, finish('a', alpha, need_a), finish('b', beta, need_b),
                finish('th', theta, need_th), finish('v0', v0, need_v0),
                None, None, None, None)


def _charge(x_seq, t, v, out):
    """``u_t = x_t + v_{t-1}`` (``v_{-1} = 0``) into ``out``."""
    if t == 0:
        out.copy_(x_seq[0])
    else:
        torch.add(x_seq[t], v, out=out)


def _fire_reset_leak(u, a, b, theta, v0, hard, tmp, out):
    """One step's spikes, reset and leak from the membrane ``u`` (``z``
    under membrane BatchNorm) into ``out = (s, r, v)``, ``tmp`` a scratch
    buffer: with out= because a fresh large tensor every step costs page
    faults, and resets as multiply-adds (``r = u + s (v0 - u)``, ``r = u -
    s theta``) because masked selects are slower on CPU (see
    :class:`LIFMultiStep`)."""
    s, r, v = out
    torch.gt(u, theta, out=s)
    if hard:
        torch.sub(v0, u, out=tmp)
        torch.addcmul(u, s, tmp, out=r)
    else:
        torch.addcmul(u, s, theta, value=-1, out=r)
    torch.addcmul(b, a, r, out=v)


def _subtract(total, term, factor, like):
    """``total - term [* factor]``, in place when ``total`` exists."""
    if total is None:
        total = torch.zeros_like(like)
    if factor is None:
        return total.sub_(term)
    return total.addcmul_(term, factor, value=-1)


def _reset_seq(u_seq, theta, v0, hard):
    """``r_t`` for every step at once, from the saved potentials."""
    fired = (u_seq > theta).to(u_seq.dtype)
    if hard:
        return torch.addcmul(u_seq, fired, v0 - u_seq)
    return torch.addcmul(u_seq, fired, theta, value=-1)


def compiled_grads(grads, grad_y, params, need):
    """The autograd outputs of a compiled kernel's backward.

    ``grads``: the input gradient, then one per-neuron gradient per
    parameter (alpha, beta, theta, v0); each is summed down to its
    parameter's shape and cast back to its dtype and device, as autograd
    expects. ``params``: ``(shape, dtype, device)`` per parameter;
    ``need``: ``ctx.needs_input_grad`` of x and the four parameters.
    """
    shape = grad_y.shape[1:]
    out = [grads[0].view(grad_y.shape) if need[0] else None]
    for g, (pshape, pdtype, pdevice), needed in zip(grads[1:], params,
                                                     need[1:]):
        if not needed:
            out.append(None)
            continue
        g = g.view(shape)
        g = g.sum() if len(pshape) == 0 else g.sum_to_size(pshape)
        out.append(g.to(device=pdevice, dtype=pdtype))
    return tuple(out)


class LIFMultiStepCpp(torch.autograd.Function):
    """The same node on the compiled CPU kernel; use :func:`lif_multistep`.

    Parameters are flattened to one value per neuron of ``x_seq[0]`` (or kept
    as one scalar). Only the input is saved: the backward recomputes ``u``
    from it (see :mod:`bidl_train.neurons.lif_cpp`). The kernel returns
    per-neuron parameter gradients summed over time; they are summed down to
    each parameter's shape here.
    """

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, derivative, reset,
                detach_reset, out_mode, module, code):
        steps = x_seq.shape[0]
        dtype = x_seq.dtype
        flat = [_per_neuron(p, x_seq.shape[1:], dtype)
                for p in (alpha, beta, theta, v0)]
        hard = reset == 'hard'
        mode = -1 if out_mode == 'spike' else out_mode
        x_flat = x_seq.detach().contiguous().view(
            steps, x_seq.shape[1:].numel())  # not -1: T may be 0
        y = module.lif_forward(x_flat, *flat, hard, mode)
        if any(ctx.needs_input_grad[:5]):
            ctx.save_for_backward(x_flat, *flat)
            ctx.params = [(p.shape, p.dtype, p.device)
                          for p in (alpha, beta, theta, v0)]
        ctx.module, ctx.code, ctx.hard, ctx.mode = module, code, hard, mode
        ctx.keep_ds = not detach_reset
        return y.view(x_seq.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x_flat, a, b, th, rv = ctx.saved_tensors
        need = ctx.needs_input_grad[:5]
        grads = ctx.module.lif_backward(
            x_flat, grad_y.contiguous().view(x_flat.shape).to(x_flat.dtype),
            a, b, th, rv, ctx.hard, ctx.keep_ds, ctx.mode, ctx.code[0],
            ctx.code[1], any(need[1:]))
        return compiled_grads(grads, grad_y, ctx.params, need) + (None, ) * 6


def _per_neuron(param, shape, dtype):
    """A scalar stays one value; anything else becomes one per neuron."""
    param = param.detach().to(dtype)
    if param.numel() == 1:
        return param.reshape(1).contiguous()
    return param.expand(shape).contiguous().view(-1)


def triton_enabled():
    """False when ``BIDL_TRAIN_TRITON_KERNEL`` switches the kernel off."""
    value = os.environ.get(TRITON_ENV_VAR, '1').strip().lower()
    return value not in ('0', 'false', 'off', 'no')


@functools.lru_cache(maxsize=None)
def load_triton_kernel():
    """``(lif_triton module, None)``, or ``(None, why it is missing)``.

    Imported on first need only, once per process: Triton is optional, its
    import takes a moment, and on some machines it fails in ways other than
    ImportError (a driver it cannot query, a broken install). Any failure
    means "no Triton"; only an unexpected kind is worth a warning.
    """
    try:
        from . import lif_triton
    except ImportError as err:
        return None, f'triton is not installed or does not import ({err})'
    except Exception as err:  # noqa: BLE001 - anything means "no Triton"
        warnings.warn(
            f'bidl_train: importing triton failed ({type(err).__name__}: '
            f'{err}); using the pure-PyTorch LIF kernel on GPUs instead. '
            f'Set {TRITON_ENV_VAR}=0 to skip the attempt.', RuntimeWarning)
        return None, f'importing triton failed ({type(err).__name__})'
    return lif_triton, None


def _prefers_triton(x_seq):
    """Whether ``kernel='auto'`` considers Triton: for CUDA tensors only
    (the interpreter on CPU is far slower than the C++ or PyTorch kernel).
    A function of its own so that tests can pretend to be on a GPU."""
    return x_seq.device.type == 'cuda'


def _triton_choice(x_seq, derivative):
    """``((LIFMultiStepTriton, (code, )), [])`` or ``(None, reasons)``."""
    reasons = []
    if not triton_enabled():
        reasons.append(f'it is disabled by {TRITON_ENV_VAR}=0')
    if x_seq.dtype not in _TRITON_DTYPES:
        reasons.append(f'dtype {x_seq.dtype} is not a float16/bfloat16/'
                       'float32/float64 one')
    code = surrogate_code(derivative)
    if code is None:
        reasons.append('the surrogate is not one of the built-in ones')
    if reasons:
        return None, reasons
    module, missing = load_triton_kernel()
    if module is None:
        return None, [missing]
    device = x_seq.device.type
    if not (device == 'cuda' or (device == 'cpu' and module.interpreting())):
        return None, [f'the input is on {device}: Triton kernels run on CUDA'
                      ' tensors (or on CPU tensors under Triton\'s '
                      'interpreter, TRITON_INTERPRET=1)']
    return (module.LIFMultiStepTriton, (code, )), []


@functools.lru_cache(maxsize=None)
def _triton_self_test(device, interpret):
    """Run the Triton kernel once on ``device`` (forward and backward of a
    few neurons) against the pure-PyTorch one; False, with one warning, if
    it fails to compile or launch (an unsupported GPU, a missing
    toolchain) or disagrees. Checked once per device (and interpreter
    setting) before ``kernel='auto'`` relies on it."""
    from .surrogate import RectangleSurrogate
    derivative = RectangleSurrogate().derivative
    x = torch.tensor([[0.7, 0.2, 0.4], [0.1, 0.6, 0.3]], device=device)
    params = [torch.tensor(v, device=device) for v in (0.5, 0.0, 0.5, 0.0)]
    results = []
    try:
        with torch.enable_grad():
            for kernel in ('triton', 'torch'):
                leaves = [t.clone().requires_grad_() for t in [x] + params]
                y = lif_multistep(*leaves, derivative, kernel=kernel,
                                  layer=None)
                grads = torch.autograd.grad(y.sum(), leaves)
                results.append([y.detach(), *grads])
        agree = all(torch.allclose(a, b, atol=1e-5)
                    for a, b in zip(*results))
        problem = None if agree else 'its results differ from PyTorch\'s'
    except Exception as err:  # noqa: BLE001 - any failure: fall back
        problem = f'{type(err).__name__}: {err}'
    if problem is None:
        return True
    warnings.warn(
        f'bidl_train: the Triton LIF kernel does not work on {device} '
        f'({problem}); using the pure-PyTorch kernel instead. Set '
        f'{TRITON_ENV_VAR}=0 to skip the attempt.', RuntimeWarning)
    return False


def _interpreting():
    """Whether Triton's interpreter is on (only asked once Triton loaded)."""
    module, _ = load_triton_kernel()
    return module is not None and module.interpreting()


def _cpp_choice(x_seq, derivative):
    """``((LIFMultiStepCpp, (module, code)), [])`` or ``(None, reasons)``."""
    reasons = []
    if x_seq.device.type != 'cpu':
        reasons.append(f'the input is on {x_seq.device.type}')
    if x_seq.dtype not in (torch.float32, torch.float64):
        reasons.append(f'dtype {x_seq.dtype} is not float32/float64')
    code = surrogate_code(derivative)
    if code is None:
        reasons.append('the surrogate is not one of the built-in ones')
    module = None if reasons else load_cpp_kernel()
    if module is None and not reasons:
        reasons.append('the C++ kernel is disabled or did not build')
    if reasons:
        return None, reasons
    return (LIFMultiStepCpp, (module, code)), []


#: ``(layer, kernel, why)`` lines already logged by :func:`announce_kernel`.
_ANNOUNCED = set()


def announce_kernel(layer, kernel, why):
    """Log ``'<layer>: runs the <kernel> (<why>)'`` once per process and
    distinct line: layers run every batch, the log needs it once (and again
    only if the choice changes, e.g. training noise off in eval)."""
    line = (layer, kernel, why)
    if line in _ANNOUNCED:
        return
    _ANNOUNCED.add(line)
    from mmengine.logging import print_log
    print_log(f'{layer}: runs the {kernel} ({why})', logger='current')


def _chosen_name(chosen, membrane_bn=False):
    """The readable name of what :func:`select_kernel` returned."""
    bn = ' with membrane BatchNorm' if membrane_bn else ''
    if chosen is None:
        return f'pure-PyTorch fused LIF kernel{bn}'
    if chosen[0] is LIFMultiStepCpp:
        return f'compiled C++ fused LIF kernel{bn}'
    return f'Triton fused LIF kernel{bn}'


def select_kernel(x_seq, derivative, kernel='auto', layer=None,
                  membrane_bn=False):
    """The autograd function running :func:`lif_multistep` and its extra
    arguments, ``(function, args)``; None for the pure-PyTorch kernel.

    ``kernel``: ``'auto'`` (Triton for CUDA tensors, the compiled C++ kernel
    for CPU tensors, each when it covers the options and works; otherwise
    pure PyTorch), ``'cpp'`` or ``'triton'`` (that kernel, or a ConfigError
    naming why it cannot run) or ``'torch'``. With ``layer`` (a name for
    the log), the choice and its reason are logged once
    (:func:`announce_kernel`). ``membrane_bn``: for
    :func:`lif_multistep_bn` (only the log line differs: every kernel has
    a membrane-BatchNorm form, see :func:`_membrane_bn_form`).
    """
    if kernel not in _KERNELS:
        raise ConfigError(
            f'lif_multistep: kernel must be one of {_KERNELS}, got {kernel!r}')
    if kernel == 'torch':
        if layer is not None:
            announce_kernel(layer, _chosen_name(None, membrane_bn),
                            "kernel='torch'")
        return None
    if kernel == 'triton' or (kernel == 'auto' and _prefers_triton(x_seq)):
        choice, reasons = _triton_choice(x_seq, derivative)
        if choice is not None and kernel == 'auto' and not _triton_self_test(
                str(x_seq.device), _interpreting()):
            choice = None
    else:
        choice, reasons = _cpp_choice(x_seq, derivative)
    if choice is None and kernel != 'auto':
        raise ConfigError(f'lif_multistep: kernel={kernel!r} cannot run: ' +
                          '; '.join(reasons))
    if layer is not None:
        why = (f'kernel={kernel!r}' if choice is not None else
               'the compiled kernel cannot run: ' + '; '.join(reasons))
        if choice is not None and kernel == 'auto':
            why = (f"kernel='auto', {x_seq.device.type} "
                   f"{str(x_seq.dtype).replace('torch.', '')} input")
        announce_kernel(layer, _chosen_name(choice, membrane_bn), why)
    return choice


def _check_options(function, out_mode, reset):
    """A ConfigError naming ``function`` for an unknown out mode or reset."""
    if out_mode not in _OUT_MODES:
        raise ConfigError(f'{function}: out_mode must be one of '
                          f'{_OUT_MODES}, got {out_mode!r}')
    if reset not in ('hard', 'soft'):
        raise ConfigError(
            f"{function}: reset must be 'hard' or 'soft', got {reset!r}")


def lif_multistep(x_seq, alpha, beta, theta, v0, derivative, reset='hard',
                  detach_reset=False, out_mode='spike', kernel='auto',
                  layer='lif_multistep'):
    """Run the LIF recurrence over ``x_seq`` (``[T, B, ...]``) in one node.

    ``alpha, beta, theta, v0``: tensors broadcastable to ``x_seq[0]``
    (scalars, ``(C, 1, 1)`` or per neuron); each gets a gradient when it
    requires one. ``derivative``: the surrogate derivative as a function of
    ``u - theta`` (e.g. ``RectangleSurrogate().derivative``). ``kernel``:
    ``'auto'``, ``'cpp'``, ``'triton'`` or ``'torch'`` (see
    :func:`select_kernel`). ``layer``: the name the log line saying which
    kernel runs, and why, gives (once per process).
    """
    _check_options('lif_multistep', out_mode, reset)
    chosen = select_kernel(x_seq, derivative, kernel, layer)
    if chosen is not None:
        function, extra = chosen
        return function.apply(x_seq, alpha, beta, theta, v0, derivative,
                              reset, bool(detach_reset), out_mode, *extra)
    return LIFMultiStep.apply(x_seq, alpha, beta, theta, v0, derivative,
                              reset, bool(detach_reset), out_mode)


# ---------------------------------------------------------------------------
# LIF with BatchNorm on the membrane (``norm_state``)
# ---------------------------------------------------------------------------
class MembraneBN:
    """What an ``nn.BatchNorm*`` module does to the membrane at every step,
    read off the module: ``z = (u - mean) * invstd * weight + bias`` per
    channel (dim 1 of one step), with the step's batch statistics (biased
    variance, over batch and spatial dims) in training mode or when the
    module keeps no running statistics, else with its running ones; in
    training mode with running statistics, each step updates them as the
    module's forward does (``num_batches_tracked += 1``, the momentum or,
    for ``momentum=None``, the cumulative average, unbiased variance).

    ``stats`` receives the ``(mean, var)`` ``[T, C]`` the kernel used, for
    :meth:`update_running_stats`.
    """

    def __init__(self, norm, x_seq, layer):
        self.norm = norm
        self.batch_stats = norm.training or norm.running_mean is None
        self.updates = norm.training and norm.running_mean is not None
        self.eps = float(norm.eps)
        steps, channels = x_seq.shape[0], x_seq.shape[2]
        # values per channel and step: batch x spatial
        self.count = x_seq[0].numel() // max(channels, 1)
        if self.batch_stats and self.count < 2:
            raise ConfigError(
                f'{layer}: the membrane BatchNorm (norm_state) needs more '
                'than one value per channel in training mode, got batch x '
                f'spatial = {self.count}; use a batch of 2 or more')
        dtype = x_seq.dtype
        like = x_seq.new_empty(channels)
        self.weight = (norm.weight if norm.weight is not None else
                       torch.ones_like(like))
        self.bias = (norm.bias if norm.bias is not None else
                     torch.zeros_like(like))
        self.mean = self.invstd = None
        if not self.batch_stats:  # the running statistics, every step
            mean = norm.running_mean.detach().to(dtype)
            # 1 / sqrt, not rsqrt: ATen's arithmetic for eval mode
            invstd = 1 / torch.sqrt(norm.running_var.detach().to(dtype) +
                                    self.eps)
            self.mean = mean.expand(steps, channels).contiguous()
            self.invstd = invstd.expand(steps, channels).contiguous()
        self.stats = None

    def _next_factor(self):
        """Count one step in ``num_batches_tracked`` and return its update
        factor, as nn.BatchNorm's forward does."""
        norm = self.norm
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:  # cumulative moving average
            return 1.0 / float(norm.num_batches_tracked)
        return norm.momentum

    def update_running_stats(self):
        """Step by step, nn.BatchNorm's update from the recorded stats
        (the compiled kernel's; the PyTorch one updates in :meth:`native`)."""
        if not self.updates or self.stats is None:
            return
        norm, (mean, var) = self.norm, self.stats
        mean = mean.detach().to(norm.running_mean.dtype)
        unbiased = var.detach().to(norm.running_var.dtype) * (
            self.count / (self.count - 1))
        with torch.no_grad():
            for t in range(mean.shape[0]):
                factor = self._next_factor()
                norm.running_mean.copy_(mean[t] * factor +
                                        norm.running_mean * (1 - factor))
                norm.running_var.copy_(unbiased[t] * factor +
                                       norm.running_var * (1 - factor))

    def native(self, u, weight, bias, update):
        """ATen's BatchNorm of one step ``u``, the op ``nn.BatchNorm``
        runs: ``(z, mean, invstd)``; with ``update`` (the forward) the
        running statistics are updated as the module would."""
        norm = self.norm
        if not self.batch_stats:
            return torch.native_batch_norm(u, weight, bias, norm.running_mean,
                                           norm.running_var, False, 0.0,
                                           self.eps)
        if update and self.updates:
            return torch.native_batch_norm(u, weight, bias, norm.running_mean,
                                           norm.running_var, True,
                                           self._next_factor(), self.eps)
        return torch.native_batch_norm(u, weight, bias, None, None, True, 0.0,
                                       self.eps)

    def native_backward(self, grad_z, u, weight, mean, invstd, mask):
        """ATen's BatchNorm backward of one step: ``(dL/du, dL/dweight,
        dL/dbias)`` (None where ``mask`` is False)."""
        norm = self.norm
        running = (None, None) if self.batch_stats else (norm.running_mean,
                                                         norm.running_var)
        return torch.ops.aten.native_batch_norm_backward(
            grad_z, u, weight, *running, mean, invstd, self.batch_stats,
            self.eps, list(mask))


class LIFMultiStepBN(torch.autograd.Function):
    """The fused LIF with membrane BatchNorm in pure PyTorch; use
    :func:`lif_multistep_bn`.

    One autograd node for all ``T`` steps. Each step's BatchNorm is ATen's
    own (``native_batch_norm`` forward, ``native_batch_norm_backward``), the
    very ops the loop's ``nn.BatchNorm`` runs, so its numbers and running
    statistics are the loop's. The forward runs without autograd and saves
    the pre-norm potentials ``u_t`` (one input-sized tensor) and the
    per-step, per-channel mean and invstd; the backward recomputes ``z_t``
    with the forward's op on the same ``u_t`` (so the spikes are the
    forward's) and runs BPTT through fire, reset, leak and BatchNorm by
    hand.
    """

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, weight, bias, derivative,
                reset, detach_reset, out_mode, bn):
        hard = reset == 'hard'
        dtype = x_seq.dtype
        a, b, th, rv = (p.detach().to(dtype) for p in (alpha, beta, theta,
                                                       v0))
        gamma, shift = weight.detach(), bias.detach()
        u_seq, y = torch.empty_like(x_seq), torch.empty_like(x_seq)
        v, s, r, tmp = (torch.empty_like(x_seq[0]) for _ in range(4))
        means, invstds = [], []
        for t in range(x_seq.shape[0]):
            u = u_seq[t]
            _charge(x_seq, t, v, out=u)
            z, mean, invstd = bn.native(u, gamma, shift, update=True)
            means.append(mean)
            invstds.append(invstd)
            _fire_reset_leak(z, a, b, th, rv, hard, tmp, out=(s, r, v))
            y[t] = _output_of(out_mode, s, z, th, r, v)
        ctx.save_for_backward(u_seq, torch.stack(means), torch.stack(invstds),
                              alpha, beta, theta, v0, weight, bias)
        ctx.derivative, ctx.hard, ctx.out_mode = derivative, hard, out_mode
        ctx.keep_ds, ctx.bn = not detach_reset, bn
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (u_seq, means, invstds, alpha, beta, theta, v0, weight,
         bias) = ctx.saved_tensors
        dtype, hard, mode = u_seq.dtype, ctx.hard, ctx.out_mode
        a, th, rv = (p.to(dtype) for p in (alpha, theta, v0))
        need = ctx.needs_input_grad
        need_params = any(need[1:5])
        grad_x = torch.empty_like(u_seq)
        zero = torch.zeros_like(u_seq[0])
        acc = {name: zero.clone() for name in ('a', 'b', 'th', 'v0')}
        g_w, g_bias = torch.zeros_like(weight), torch.zeros_like(bias)
        # per-step buffers written with out= / in place: fresh large
        # tensors every step cost page faults (see LIFMultiStep)
        s, g_r, g_s, g_z, tmp = (torch.empty_like(zero) for _ in range(5))
        g_next = zero  # dL/dv_t from step t + 1
        for t in range(u_seq.shape[0] - 1, -1, -1):
            u, gy = u_seq[t], grad_y[t]
            z = ctx.bn.native(u, weight, bias, update=False)[0]
            torch.gt(z, th, out=s)
            g_v = g_next + gy if mode == 3 else g_next
            torch.mul(g_v, a, out=g_r)
            if mode == 2:
                g_r.add_(gy)
            # dL/ds: the output (y = s) and, unless detached, the reset
            if ctx.keep_ds:
                ds = torch.sub(rv, z, out=tmp) if hard else -th
                if mode == 'spike':
                    torch.addcmul(gy, g_r, ds, out=g_s)
                else:
                    torch.mul(g_r, ds, out=g_s)
            elif mode == 'spike':
                g_s.copy_(gy)
            else:
                g_s.zero_()
            g_s.mul_(ctx.derivative(z - th))
            # dL/dz: through r (dr/dz = 1 - s or 1), s, and y = z, z - th
            if hard:
                torch.addcmul(g_r, g_r, s, value=-1, out=g_z)
            else:
                g_z.copy_(g_r)
            g_z.add_(g_s)
            if mode in (0, 1):
                g_z.add_(gy)
            if need_params:
                acc['a'].addcmul_(g_v, _reset(z, s, th, rv, hard))
                acc['b'].add_(g_v)
                acc['th'].sub_(g_s)
                if not hard:
                    acc['th'].addcmul_(g_r, s, value=-1)
                if mode == 1:
                    acc['th'].sub_(gy)
                if hard:
                    acc['v0'].addcmul_(g_r, s)
            g_u, gw_t, gb_t = ctx.bn.native_backward(
                g_z, u, weight, means[t], invstds[t], (True, need[5],
                                                       need[6]))
            grad_x[t] = g_u
            g_next = grad_x[t]
            if need[5]:
                g_w += gw_t
            if need[6]:
                g_bias += gb_t
        grads = [grad_x if need[0] else None]
        for name, param, needed in zip(('a', 'b', 'th', 'v0'),
                                       (alpha, beta, theta, v0), need[1:5]):
            grads.append(_reduce_to(acc[name], param) if needed else None)
        grads.append(g_w if need[5] else None)
        grads.append(g_bias if need[6] else None)
        return tuple(grads) + (None, ) * 5


def _output_of(out_mode, s, z, theta, r, v):
    """The step's output: ``s``, or ``[z, z - theta, r, v][out_mode]``."""
    if out_mode == 'spike':
        return s
    return z - theta if out_mode == 1 else (z, None, r, v)[out_mode]


def _reset(z, s, theta, v0, hard):
    """``r`` from the (normalised) membrane and the spikes."""
    if hard:
        return torch.addcmul(z, s, v0 - z)
    return torch.addcmul(z, s, theta, value=-1)


def keep_bn_context(ctx, bn, tensors, mean, var, invstd, params, affine,
                    code, hard, mode, detach_reset):
    """What every membrane-BatchNorm kernel (C++, Triton) does after its
    forward: hand the batch statistics to the running-statistics update,
    and keep for the backward ``tensors`` (input, per-neuron parameters,
    affine) with the per-step mean and invstd, which it recomputes the
    potentials from."""
    if bn.batch_stats:
        bn.stats = (mean, var)
    if any(ctx.needs_input_grad[:7]):
        ctx.save_for_backward(*tensors, mean, invstd)
        ctx.params = [(p.shape, p.dtype, p.device) for p in params]
        ctx.affine_dtypes = tuple(p.dtype for p in affine)
    ctx.code, ctx.hard, ctx.mode = code, hard, mode
    ctx.keep_ds, ctx.batch_stats = not detach_reset, bn.batch_stats


def bn_input_grads(ctx, grads, grad_y):
    """The gradients of ``(x, alpha, beta, theta, v0, weight, bias)`` from
    a membrane-BatchNorm kernel's backward outputs."""
    need = ctx.needs_input_grad
    out = compiled_grads(grads[:5], grad_y, ctx.params, need[:5])
    weight_grad = grads[5].to(ctx.affine_dtypes[0]) if need[5] else None
    bias_grad = grads[6].to(ctx.affine_dtypes[1]) if need[6] else None
    return out + (weight_grad, bias_grad)


class LIFMultiStepBNCpp(torch.autograd.Function):
    """The fused LIF with membrane BatchNorm on the compiled CPU kernel; use
    :func:`lif_multistep_bn`. Saves the input and the per-step, per-channel
    mean and invstd only: the backward recomputes the potentials from them
    (see :mod:`bidl_train.neurons.lif_cpp`)."""

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, weight, bias, derivative,
                reset, detach_reset, out_mode, bn, module, code):
        steps, batch, channels = x_seq.shape[:3]
        dtype = x_seq.dtype
        flat = [_per_neuron(p, x_seq.shape[1:], dtype)
                for p in (alpha, beta, theta, v0)]
        affine = [p.detach().to(dtype).contiguous() for p in (weight, bias)]
        x4 = x_seq.detach().contiguous().view(
            steps, batch, channels, x_seq[0, 0, 0].numel())
        hard = reset == 'hard'
        mode = -1 if out_mode == 'spike' else out_mode
        empty = x_seq.new_empty(0)
        y, mean, invstd, var = module.lif_bn_forward(
            x4, *flat, *affine,
            bn.mean if bn.mean is not None else empty,
            bn.invstd if bn.invstd is not None else empty,
            bn.batch_stats, bn.eps, hard, mode)
        keep_bn_context(ctx, bn, (x4, *flat, *affine), mean, var, invstd,
                        (alpha, beta, theta, v0), (weight, bias), code, hard,
                        mode, detach_reset)
        ctx.module = module
        return y.view(x_seq.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x4, a, b, th, rv, gamma, shift, mean, invstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = ctx.module.lif_bn_backward(
            x4, grad_y.contiguous().view(x4.shape).to(x4.dtype), a, b, th,
            rv, gamma, shift, mean, invstd, ctx.batch_stats, ctx.hard,
            ctx.keep_ds, ctx.mode, ctx.code[0], ctx.code[1], any(need[1:5]))
        return bn_input_grads(ctx, grads, grad_y) + (None, ) * 7


def _membrane_bn_form(function):
    """The membrane-BatchNorm autograd function of the kernel that
    :func:`select_kernel` chose (``function``: its plain form); the two
    take the same extra arguments."""
    if function is LIFMultiStepCpp:
        return LIFMultiStepBNCpp
    module, _ = load_triton_kernel()  # chosen, so it loaded
    return module.LIFMultiStepBNTriton


def lif_multistep_bn(x_seq, alpha, beta, theta, v0, derivative, norm,
                     reset='hard', detach_reset=False, out_mode='spike',
                     kernel='auto', layer='lif_multistep_bn'):
    """:func:`lif_multistep` with BatchNorm on the membrane: per step
    ``u = x_t + v_{t-1}``, ``z = norm(u)``, then fire, reset and leak on
    ``z`` (and the outputs of ``out_mode`` taken from ``z``).

    ``norm``: the ``nn.BatchNorm1d/2d/3d`` over dim 2 of ``x_seq`` (the
    channels of ``[T, B, C, ...]``); it is used exactly as calling it on
    every step would (batch or running statistics by its mode, running
    statistics updated step by step, see :class:`MembraneBN`); its weight
    and bias get gradients. ``kernel``: as for :func:`lif_multistep` (each
    kernel has its membrane-BatchNorm form).
    """
    _check_options('lif_multistep_bn', out_mode, reset)
    if x_seq.dim() < 3 or x_seq.shape[2] != norm.num_features:
        raise ConfigError(
            f'{layer}: the membrane BatchNorm has {norm.num_features} '
            f'channels but the input [T, B, C, ...] has shape '
            f'{tuple(x_seq.shape)}')
    chosen = select_kernel(x_seq, derivative, kernel, layer,
                           membrane_bn=True)
    bn = MembraneBN(norm, x_seq, layer)
    args = (x_seq, alpha, beta, theta, v0, bn.weight, bn.bias, derivative,
            reset, bool(detach_reset), out_mode, bn)
    if chosen is not None:
        function, extra = chosen
        y = _membrane_bn_form(function).apply(*args, *extra)
    else:
        y = LIFMultiStepBN.apply(*args)
    bn.update_running_stats()
    return y
