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

__all__ = ['lif_multistep', 'LIFMultiStep', 'LIFMultiStepCpp',
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
            u = u_seq[t]
            if t == 0:
                u.copy_(x_seq[0])
            else:
                torch.add(x_seq[t], v, out=u)
            s_t = spikes[t] if spikes is not None else s
            torch.gt(u, th, out=s_t)
            if hard:
                torch.sub(rv, u, out=tmp)
                torch.addcmul(u, s_t, tmp, out=r)
            else:
                torch.addcmul(u, s_t, th, value=-1, out=r)
            torch.addcmul(b, a, r, out=v)

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


def _chosen_name(chosen):
    """The readable name of what :func:`select_kernel` returned."""
    if chosen is None:
        return 'pure-PyTorch fused LIF kernel'
    if chosen[0] is LIFMultiStepCpp:
        return 'compiled C++ fused LIF kernel'
    return 'Triton fused LIF kernel'


def select_kernel(x_seq, derivative, kernel='auto', layer=None):
    """The autograd function running :func:`lif_multistep` and its extra
    arguments, ``(function, args)``; None for the pure-PyTorch kernel.

    ``kernel``: ``'auto'`` (Triton for CUDA tensors, the compiled C++ kernel
    for CPU tensors, each when it covers the options and works; otherwise
    pure PyTorch), ``'cpp'`` or ``'triton'`` (that kernel, or a ConfigError
    naming why it cannot run) or ``'torch'``. With ``layer`` (a name for
    the log), the choice and its reason are logged once
    (:func:`announce_kernel`).
    """
    if kernel not in _KERNELS:
        raise ConfigError(
            f'lif_multistep: kernel must be one of {_KERNELS}, got {kernel!r}')
    if kernel == 'torch':
        if layer is not None:
            announce_kernel(layer, _chosen_name(None), "kernel='torch'")
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
        announce_kernel(layer, _chosen_name(choice), why)
    return choice


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
    if out_mode not in _OUT_MODES:
        raise ConfigError(f'lif_multistep: out_mode must be one of {_OUT_MODES}, '
                          f'got {out_mode!r}')
    if reset not in ('hard', 'soft'):
        raise ConfigError(
            f"lif_multistep: reset must be 'hard' or 'soft', got {reset!r}")
    chosen = select_kernel(x_seq, derivative, kernel, layer)
    if chosen is not None:
        function, extra = chosen
        return function.apply(x_seq, alpha, beta, theta, v0, derivative,
                              reset, bool(detach_reset), out_mode, *extra)
    return LIFMultiStep.apply(x_seq, alpha, beta, theta, v0, derivative,
                              reset, bool(detach_reset), out_mode)
