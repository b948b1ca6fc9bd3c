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

Two implementations of the same equations:

* :class:`LIFMultiStep`: pure PyTorch; runs wherever torch does (CPU or
  CUDA) and needs no compiler;
* :class:`LIFMultiStepCpp`: the compiled CPU kernel of
  :mod:`bidl_train.neurons.lif_cpp` (one pass over memory forward and one
  backward; it saves only the input and recomputes ``u`` in backward), used automatically for CPU float32/float64 inputs with a
  built-in surrogate when it builds; ``kernel='torch'`` or the environment
  variable ``BIDL_TRAIN_CPP_KERNEL=0`` force the pure-PyTorch one.
"""
import torch

from bidl_train.errors import ConfigError
from .lif_cpp import load_cpp_kernel, surrogate_code

__all__ = ['lif_multistep', 'LIFMultiStep', 'LIFMultiStepCpp',
           'select_kernel']

_OUT_MODES = ('spike', 0, 1, 2, 3)
_KERNELS = ('auto', 'cpp', 'torch')


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
        x_flat = x_seq.detach().contiguous().view(steps, -1)
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
        shape = grad_y.shape[1:]
        out = [grads[0].view(grad_y.shape) if need[0] else None]
        for g, (pshape, pdtype, pdevice), needed in zip(
                grads[1:], ctx.params, need[1:]):
            if not needed:
                out.append(None)
            else:
                g = g.view(shape)
                g = g.sum() if len(pshape) == 0 else g.sum_to_size(pshape)
                out.append(g.to(device=pdevice, dtype=pdtype))
        return tuple(out) + (None, ) * 6


def _per_neuron(param, shape, dtype):
    """A scalar stays one value; anything else becomes one per neuron."""
    param = param.detach().to(dtype)
    if param.numel() == 1:
        return param.reshape(1).contiguous()
    return param.expand(shape).contiguous().view(-1)


def select_kernel(x_seq, derivative, kernel='auto'):
    """``(module, surrogate code)`` of the compiled kernel, or None.

    ``kernel``: ``'auto'`` (the compiled kernel when it applies and builds),
    ``'cpp'`` (the same, but refuse when it cannot run) or ``'torch'``.
    """
    if kernel not in _KERNELS:
        raise ConfigError(
            f'lif_multistep: kernel must be one of {_KERNELS}, got {kernel!r}')
    if kernel == 'torch':
        return None
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
        if kernel == 'cpp':
            raise ConfigError('lif_multistep: kernel=\'cpp\' cannot run: ' +
                              '; '.join(reasons))
        return None
    return module, code


def lif_multistep(x_seq, alpha, beta, theta, v0, derivative, reset='hard',
                  detach_reset=False, out_mode='spike', kernel='auto'):
    """Run the LIF recurrence over ``x_seq`` (``[T, B, ...]``) in one node.

    ``alpha, beta, theta, v0``: tensors broadcastable to ``x_seq[0]``
    (scalars, ``(C, 1, 1)`` or per neuron); each gets a gradient when it
    requires one. ``derivative``: the surrogate derivative as a function of
    ``u - theta`` (e.g. ``RectangleSurrogate().derivative``). ``kernel``:
    ``'auto'``, ``'cpp'`` or ``'torch'`` (see :func:`select_kernel`).
    """
    if out_mode not in _OUT_MODES:
        raise ConfigError(f'lif_multistep: out_mode must be one of {_OUT_MODES}, '
                          f'got {out_mode!r}')
    if reset not in ('hard', 'soft'):
        raise ConfigError(
            f"lif_multistep: reset must be 'hard' or 'soft', got {reset!r}")
    compiled = select_kernel(x_seq, derivative, kernel)
    if compiled is not None:
        return LIFMultiStepCpp.apply(x_seq, alpha, beta, theta, v0,
                                     derivative, reset, bool(detach_reset),
                                     out_mode, *compiled)
    return LIFMultiStep.apply(x_seq, alpha, beta, theta, v0, derivative,
                              reset, bool(detach_reset), out_mode)
