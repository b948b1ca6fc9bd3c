"""Optional Triton (GPU) kernel of the fused multi-step LIF.

The same equations as :mod:`bidl_train.neurons.functional` and the same
memory plan as the compiled CPU kernel of :mod:`bidl_train.neurons.lif_cpp`:
one Triton program per block of :data:`BLOCK` neurons walks its neurons
through all ``T`` steps, so

* the forward reads ``x`` once and writes ``y`` once, and saves only ``x``
  (plus the parameters, one value per neuron or one scalar);
* the backward first recomputes ``u_t`` for every ``t`` into the
  input-gradient buffer, then runs BPTT in reverse, overwriting each ``u_t``
  by ``dL/dx_t`` and summing the parameter gradients per neuron over time
  (summed down to each parameter's shape in PyTorch afterwards).

Arithmetic is done in float32 (float64 for float64 inputs): float16 and
bfloat16 inputs are widened on load and the results rounded once on store.
Resets are selects (``r = v0`` or ``u`` hard, ``u - theta`` or ``u`` soft),
as in the loop form and the C++ kernel. Unlike the C++ build, the GPU
compiler may fuse ``alpha * r + beta`` into one multiply-add, which can move
``v`` (and so ``u``) by one rounding; the backward's recomputation is
compiled from the same expression, so it still reproduces the forward's
``u`` (and spikes) exactly.

Coverage: reset hard/soft, ``detach_reset``, out modes ``'spike'`` and 0-3,
the six built-in surrogates (by the codes of
:func:`bidl_train.neurons.lif_cpp.surrogate_code`), parameters of any
broadcastable shape, inputs of float16, bfloat16, float32 and float64.

This module imports :mod:`triton` at the top, so
:mod:`bidl_train.neurons.functional` imports it lazily, only when a Triton
kernel is asked for, and treats any failure as "Triton is absent". Triton
kernels run on GPUs; with ``TRITON_INTERPRET=1`` in the environment
Triton's interpreter runs them (slowly, with numpy) on CPU tensors too,
which is how the tests check the numerics on machines without a GPU.
"""
import contextlib
import functools
import types

import torch
import triton
import triton.language as tl

from .functional import bn_input_grads, compiled_grads, keep_bn_context
from .surrogate import SURROGATE_TABLE

__all__ = ['BLOCK', 'BN_BLOCK', 'LIFMultiStepBNTriton', 'LIFMultiStepTriton',
           'interpreting', 'launch_bn_backward', 'launch_bn_forward',
           'launch_forward', 'launch_backward', 'surrogate_constants']

#: Neurons per Triton program.
BLOCK = 512
#: Warps per program (4 elements per thread at BLOCK = 512).
NUM_WARPS = 4


def interpreting():
    """Whether Triton's interpreter is on (``TRITON_INTERPRET=1``).

    Triton reads the variable when a kernel is decorated, so the kernels
    are decorated once per setting (see :func:`_jitted`).
    """
    return bool(triton.knobs.runtime.interpret)


def surrogate_constants(code, param):
    """The two constants the backward kernel's surrogate ``code`` uses.

    They come from :data:`~bidl_train.neurons.surrogate.SURROGATE_TABLE`,
    computed in double precision, as the PyTorch surrogates compute their
    Python-float factors, and are rounded once to the compute dtype, so the
    kernel's derivative is the PyTorch one's to rounding.
    """
    if not (isinstance(code, int) and 0 <= code < len(SURROGATE_TABLE)):
        raise ValueError(f'unknown surrogate code {code!r}')
    return SURROGATE_TABLE[code].kernel_constants(param)


# ---------------------------------------------------------------------------
# Kernel bodies and the per-step helpers they share. They are plain
# functions here and decorated by _jitted(), once for the GPU compiler and
# once for the interpreter. They call only triton.language builtins (tl.full,
# not tl.zeros_like) and each other: the library's own jit helpers are
# decorated when triton is first imported, and when that happened without
# TRITON_INTERPRET (SpikingJelly imports triton), the interpreter cannot
# call them.
#
# The helpers hold the maths of one neuron step, written once for the plain
# and the membrane-BatchNorm kernels (which apply it to z = BN(u) instead of
# u). The backward recomputes each u from the forward's v with the helper
# the forward ran, so the compiler turns the same expression into the same
# instructions and the recomputed u (and spikes) are the forward's exactly.
# ---------------------------------------------------------------------------
def _reset(u, fire, thr, rv, HARD: tl.constexpr):
    """r_t: ``v0`` (hard) or ``u - theta`` (soft) where the neuron fired,
    else ``u``; a select, as the loop form and the C++ kernel reset."""
    if HARD:
        r = tl.where(fire, rv, u)
    else:
        r = tl.where(fire, u - thr, u)
    return r


def _fire_reset_leak(u, a, b, thr, rv, HARD: tl.constexpr):
    """``(fire, r_t, v_t)`` of a neuron at membrane potential ``u``."""
    fire = u > thr
    r = _reset(u, fire, thr, rv, HARD)
    return fire, r, a * r + b


def _output(u, fire, r, v, thr, MODE: tl.constexpr):
    """What the layer emits. MODE: -1 spike, 0 u, 1 u - theta, 2 r, 3 v."""
    if MODE == -1:
        y = fire.to(u.dtype)
    elif MODE == 0:
        y = u
    elif MODE == 1:
        y = u - thr
    elif MODE == 2:
        y = r
    else:
        y = v
    return y


def _fire_surrogate(u, thr, c0, c1, KIND: tl.constexpr):
    """``(fire, s_t, surrogate dS/du)`` for the backward of a neuron at
    membrane potential ``u``: the spike as a mask and as a number, and the
    surrogate derivative at ``u - theta``, one branch per code of
    SURROGATE_TABLE (surrogate.py), ``c0`` and ``c1`` its constants."""
    fire = u > thr
    s = fire.to(u.dtype)
    d = u - thr
    if KIND == 0:  # rectangle: c0 = width, c1 = width / 2
        sg = tl.where(tl.abs(d) < c1, 1.0 / c0, 0.0)
    elif KIND == 1:  # sigmoid: c0 = alpha
        sig = 1.0 / (1.0 + tl.exp(-(c0 * d)))
        sg = c0 * sig * (1.0 - sig)
    elif KIND == 2:  # atan: c0 = alpha / 2, c1 = pi/2 alpha
        q = c1 * d
        sg = c0 / (1.0 + q * q)
    elif KIND == 3:  # triangle: c0 = width
        sg = tl.maximum(1.0 - tl.abs(d) / c0, 0.0) / c0
    elif KIND == 4:  # fast sigmoid: c0 = slope
        q = c0 * tl.abs(d) + 1.0
        sg = 1.0 / (q * q)
    else:  # erf: c0 = alpha / sqrt(pi), c1 = alpha
        q = c1 * d
        sg = c0 * tl.exp(-(q * q))
    return fire, s, sg


def _grad_membrane(u, s, sg, gy, g_next, a, thr, rv, HARD: tl.constexpr,
                   KEEP_DS: tl.constexpr, MODE: tl.constexpr,
                   BLOCK: tl.constexpr):
    """One BPTT step (see functional.py for the equations):
    ``(dL/du_t, dL/dv_t, dL/dr_t, dL/ds_t * surrogate)`` from ``gy``, the
    gradient of step t's output, and ``g_next`` = dL/du_{t+1}; the last
    three are for :func:`_grad_params`."""
    gv = g_next  # gradient of v_t
    if MODE == 3:
        gv = gv + gy
    gr = a * gv  # gradient of r_t
    if MODE == 2:
        gr = gr + gy
    gs = tl.full((BLOCK, ), 0.0, u.dtype)  # gradient of s_t
    if MODE == -1:
        gs = gy
    if KEEP_DS:  # the reset depends on the spike unless detach_reset
        if HARD:
            gs = gs + gr * (rv - u)
        else:
            gs = gs - gr * thr
    gssg = gs * sg
    if HARD:
        gu = gr * (1.0 - s) + gssg
    else:
        gu = gr + gssg
    if MODE == 0 or MODE == 1:
        gu = gu + gy
    return gu, gv, gr, gssg


def _grad_params(sa, sb, sth, sv0, u, fire, s, gy, gv, gr, gssg, thr, rv,
                 HARD: tl.constexpr, MODE: tl.constexpr):
    """``(sa, sb, sth, sv0)``, the sums of dL/dalpha, dL/dbeta, dL/dtheta
    and dL/dv0 so far, plus step t's terms."""
    r = _reset(u, fire, thr, rv, HARD)
    if HARD:
        sv0 += gr * s
        sth -= gssg
    else:
        sth -= gssg + gr * s
    if MODE == 1:
        sth -= gy
    return sa + gv * r, sb + gv, sth, sv0


def _forward_body(x_ptr, y_ptr, a_ptr, b_ptr, th_ptr, v0_ptr,
                  a_step, b_step, th_step, v0_step, steps, n,
                  HARD: tl.constexpr, MODE: tl.constexpr,
                  BLOCK: tl.constexpr):
    # MODE: -1 spike, 0 u, 1 u - theta, 2 r, 3 v. A parameter's *_step is 1
    # (one value per neuron) or 0 (one scalar for all).
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    # the parameters arrive in the compute dtype; v and u follow theirs
    a = tl.load(a_ptr + offs * a_step, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs * b_step, mask=mask, other=0.0)
    thr = tl.load(th_ptr + offs * th_step, mask=mask, other=1.0)
    rv = tl.load(v0_ptr + offs * v0_step, mask=mask, other=0.0)
    v = tl.full((BLOCK, ), 0.0, a.dtype)
    x_p = x_ptr + offs
    y_p = y_ptr + offs
    # pointers advance by n per step: no t * n product that could overflow
    for _ in range(steps):
        u = tl.load(x_p, mask=mask, other=0.0).to(a.dtype) + v
        fire, r, v = _fire_reset_leak(u, a, b, thr, rv, HARD)
        y = _output(u, fire, r, v, thr, MODE)
        tl.store(y_p, y.to(y_ptr.dtype.element_ty), mask=mask)
        x_p += n
        y_p += n


def _backward_body(x_ptr, gy_ptr, gx_ptr, a_ptr, b_ptr, th_ptr, v0_ptr,
                   a_step, b_step, th_step, v0_step, sc_ptr,
                   ga_ptr, gb_ptr, gth_ptr, gv0_ptr, steps, n,
                   HARD: tl.constexpr, KEEP_DS: tl.constexpr,
                   MODE: tl.constexpr, KIND: tl.constexpr,
                   NEED_PARAMS: tl.constexpr, BLOCK: tl.constexpr):
    # gx (compute dtype) holds u_t after the first loop and dL/dx_t after
    # the second. KIND: surrogate code; sc_ptr: its two constants.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs * a_step, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs * b_step, mask=mask, other=0.0)
    thr = tl.load(th_ptr + offs * th_step, mask=mask, other=1.0)
    rv = tl.load(v0_ptr + offs * v0_step, mask=mask, other=0.0)
    c0 = tl.load(sc_ptr)
    c1 = tl.load(sc_ptr + 1)

    # 1. recompute u_t exactly as the forward did, into gx
    v = tl.full((BLOCK, ), 0.0, a.dtype)
    x_p = x_ptr + offs
    u_p = gx_ptr + offs
    gy_p = gy_ptr + offs
    for _ in range(steps):
        u = tl.load(x_p, mask=mask, other=0.0).to(a.dtype) + v
        tl.store(u_p, u, mask=mask)
        _, _, v = _fire_reset_leak(u, a, b, thr, rv, HARD)
        x_p += n
        u_p += n
        gy_p += n

    # 2. BPTT from t = T-1 down to 0 (see functional.py for the equations);
    # u_p and gy_p now point one step past the end
    g_next = tl.full((BLOCK, ), 0.0, a.dtype)  # dL/du_{t+1}
    sa = tl.full((BLOCK, ), 0.0, a.dtype)
    sb = tl.full((BLOCK, ), 0.0, a.dtype)
    sth = tl.full((BLOCK, ), 0.0, a.dtype)
    sv0 = tl.full((BLOCK, ), 0.0, a.dtype)
    for _ in range(steps):
        u_p -= n
        gy_p -= n
        u = tl.load(u_p, mask=mask, other=0.0)
        gy = tl.load(gy_p, mask=mask, other=0.0).to(a.dtype)
        fire, s, sg = _fire_surrogate(u, thr, c0, c1, KIND)
        gu, gv, gr, gssg = _grad_membrane(u, s, sg, gy, g_next, a, thr, rv,
                                          HARD, KEEP_DS, MODE, BLOCK)
        tl.store(u_p, gu, mask=mask)
        g_next = gu
        if NEED_PARAMS:
            sa, sb, sth, sv0 = _grad_params(sa, sb, sth, sv0, u, fire, s,
                                            gy, gv, gr, gssg, thr, rv, HARD,
                                            MODE)

    if NEED_PARAMS:
        tl.store(ga_ptr + offs, sa, mask=mask)
        tl.store(gb_ptr + offs, sb, mask=mask)
        tl.store(gth_ptr + offs, sth, mask=mask)
        tl.store(gv0_ptr + offs, sv0, mask=mask)


def _kernels(interpret):
    """``(forward, backward)`` decorated for the interpreter or the GPU."""
    jitted = _jitted(interpret)
    return jitted['_forward_body'], jitted['_backward_body']


@functools.lru_cache(maxsize=64)
def _constants_tensor(code, sparam, dtype, device):
    """The surrogate's constants as a tensor on ``device``, made once: a
    fresh host-to-GPU copy per backward would wait for the GPU. (A tensor
    rather than float arguments, which Triton passes as float32.)"""
    return torch.tensor(surrogate_constants(code, sparam), dtype=dtype,
                        device=device)


def _grid(n):
    return (triton.cdiv(n, BLOCK), )


def _on_device(x):
    """The launch context for ``x``'s device: Triton launches on the
    current CUDA device, which need not be the tensor's."""
    if x.is_cuda:
        return torch.cuda.device(x.device)
    return contextlib.nullcontext()  # the interpreter on CPU tensors


def launch_forward(x_flat, params, hard, mode):
    """``y`` of the LIF over ``x_flat`` (``[T, N]``, contiguous).

    ``params``: alpha, beta, theta, v0 flattened by
    :func:`bidl_train.neurons.functional._per_neuron` to ``N`` values or one,
    in the compute dtype. ``mode``: -1 (spike) or 0-3.
    """
    steps, n = x_flat.shape
    y = torch.empty_like(x_flat)
    if y.numel() == 0:
        return y
    forward, _ = _kernels(interpreting())
    steps_of = [int(p.numel() != 1) for p in params]
    with _on_device(x_flat):
        forward[_grid(n)](x_flat, y, *params, *steps_of, steps, n,
                          HARD=hard, MODE=mode, BLOCK=BLOCK,
                          num_warps=NUM_WARPS)
    return y


def launch_backward(x_flat, grad_y, params, hard, keep_ds, mode, code,
                    sparam, need_params):
    """``(dL/dx, per-neuron dL/dalpha, dL/dbeta, dL/dtheta, dL/dv0)``.

    ``dL/dx`` has ``x_flat``'s dtype; the parameter gradients (None unless
    ``need_params``) are in the compute dtype, one value per neuron, summed
    over time.
    """
    steps, n = x_flat.shape
    dtype = params[0].dtype  # compute dtype
    # the buffer holds u first, so it needs the compute precision
    gx = torch.empty(x_flat.shape, dtype=dtype, device=x_flat.device)
    # every neuron's entry is written by the kernel (gx stands in for the
    # unused pointers when no parameter needs a gradient)
    grads = [torch.empty(n, dtype=dtype, device=x_flat.device)
             for _ in range(4)] if need_params else [gx] * 4
    if x_flat.numel():
        _, backward = _kernels(interpreting())
        consts = _constants_tensor(code, sparam, dtype, x_flat.device)
        steps_of = [int(p.numel() != 1) for p in params]
        with _on_device(x_flat):
            backward[_grid(n)](
                x_flat, grad_y, gx, *params, *steps_of, consts, *grads,
                steps, n, HARD=hard, KEEP_DS=keep_ds, MODE=mode, KIND=code,
                NEED_PARAMS=need_params, BLOCK=BLOCK, num_warps=NUM_WARPS)
    else:  # no step or no neuron: nothing to launch, every gradient is 0
        for g in [gx] + grads:
            g.zero_()
    return (gx.to(x_flat.dtype), ) + (tuple(grads) if need_params
                                      else (None, ) * 4)


def compute_dtype(dtype):
    """float64 stays float64; float32, float16 and bfloat16 compute in
    float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class LIFMultiStepTriton(torch.autograd.Function):
    """The fused LIF node on the Triton kernels; use
    :func:`bidl_train.neurons.functional.lif_multistep`.

    Same arguments and semantics as
    :class:`~bidl_train.neurons.functional.LIFMultiStepCpp`, except that the
    trailing argument is only the surrogate's ``(code, parameter)``. Saves
    the input and the flattened parameters, nothing else.
    """

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, derivative, reset,
                detach_reset, out_mode, code):
        from .functional import _per_neuron  # functional imports us lazily
        steps = x_seq.shape[0]
        dtype = compute_dtype(x_seq.dtype)
        flat = [_per_neuron(p, x_seq.shape[1:], dtype).to(x_seq.device)
                for p in (alpha, beta, theta, v0)]
        hard = reset == 'hard'
        mode = -1 if out_mode == 'spike' else out_mode
        x_flat = x_seq.detach().contiguous().view(
            steps, x_seq.shape[1:].numel())  # not -1: T may be 0
        y = launch_forward(x_flat, flat, hard, mode)
        if any(ctx.needs_input_grad[:5]):
            ctx.save_for_backward(x_flat, *flat)
            ctx.params = [(p.shape, p.dtype, p.device)
                          for p in (alpha, beta, theta, v0)]
        ctx.code, ctx.hard, ctx.mode = code, hard, mode
        ctx.keep_ds = not detach_reset
        return y.view(x_seq.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x_flat, *flat = ctx.saved_tensors
        need = ctx.needs_input_grad[:5]
        grads = launch_backward(
            x_flat, grad_y.contiguous().view(x_flat.shape), flat, ctx.hard,
            ctx.keep_ds, ctx.mode, ctx.code[0], ctx.code[1], any(need[1:]))
        return compiled_grads(grads, grad_y, ctx.params, need) + (None, ) * 5


# ---------------------------------------------------------------------------
# LIF with BatchNorm on the membrane (norm_state): the memory plan of the
# C++ kernel (lif_cpp.py, lif_bn_forward/backward). Each step's statistics
# need every neuron of a channel, so one program owns one channel (all batch
# and spatial positions of it) and runs it through all T steps: no barrier
# between programs, no launch per step. Per step and channel:
#   u = x_t + v_{t-1};  mean, var over (batch, spatial) of u (biased; sums
#   in float64, two passes as the C++ kernel);  z = u k + c0 with
#   k = invstd gamma, c0 = bias - mean k;  fire, reset and leak on z.
# The forward writes y and the [T, C] mean, invstd and biased variance
# (the caller updates the running statistics from them); it keeps v_{t-1}
# in a one-step buffer and saves nothing else. The backward recomputes u_t
# into the input-gradient buffer from x and the saved statistics (so the
# spikes are the forward's), then per step in reverse: pass A writes dL/dz
# of every neuron of the channel into a one-step buffer and sums dL/dz and
# dL/dz * u_hat; pass B applies BatchNorm's backward and leaves dL/du_t (=
# dL/dx_t = the gradient into v_{t-1}) in the input-gradient buffer.
# Neurons of channel c in one step: offset (b * C + c) * S + s for the j-th,
# b = j // S, s = j % S, j < B * S, walked in chunks of BN_BLOCK.
# Sums over a chunk are tl.reduce with Triton's own sum combiner (what
# tl.sum runs): the interpreter sums those with numpy, whereas tl.sum
# itself is a jit helper that the interpreter cannot call when triton was
# imported before TRITON_INTERPRET was set (see the note above).
# ---------------------------------------------------------------------------
#: Neurons per chunk of a membrane-BatchNorm program (one program a channel).
BN_BLOCK = 1024


def _bn_forward_body(x_ptr, y_ptr, vbuf_ptr, a_ptr, b_ptr, th_ptr, v0_ptr,
                     a_step, b_step, th_step, v0_step, w_ptr, bias_ptr,
                     mean_ptr, invstd_ptr, var_ptr, eps_ptr, steps, batch,
                     channels, spatial,
                     BATCH_STATS: tl.constexpr, HARD: tl.constexpr,
                     MODE: tl.constexpr, BLOCK: tl.constexpr):
    c = tl.program_id(0)
    n = batch * channels * spatial  # neurons per step
    count = batch * spatial  # neurons of this channel per step
    gamma = tl.load(w_ptr + c)
    shift = tl.load(bias_ptr + c)
    dtype = gamma.dtype  # the compute dtype
    eps = tl.load(eps_ptr)  # float64, as the C++ kernel's
    for t in range(steps):
        xt = x_ptr + t * n
        yt = y_ptr + t * n
        if BATCH_STATS:
            # pass 1: u into y (scratch), its sum
            total = tl.full((BLOCK, ), 0.0, tl.float64)
            for j0 in range(0, count, BLOCK):
                j = j0 + tl.arange(0, BLOCK)
                mask = j < count
                off = ((j // spatial) * channels + c) * spatial + j % spatial
                # v_{-1} = 0: the buffer starts zeroed
                u = tl.load(xt + off, mask=mask, other=0.0).to(dtype) + \
                    tl.load(vbuf_ptr + off, mask=mask, other=0.0)
                tl.store(yt + off, u, mask=mask)
                total += tl.where(mask, u.to(tl.float64), 0.0)
            mu = tl.reduce(total, 0, tl.standard._sum_combine) / count
            # pass 2: squared deviations (y holds u exactly: it has the
            # compute dtype whenever stats are taken, see launch_bn_forward)
            sq = tl.full((BLOCK, ), 0.0, tl.float64)
            for j0 in range(0, count, BLOCK):
                j = j0 + tl.arange(0, BLOCK)
                mask = j < count
                off = ((j // spatial) * channels + c) * spatial + j % spatial
                d = tl.load(yt + off, mask=mask, other=0.0).to(
                    tl.float64) - mu
                sq += tl.where(mask, d * d, 0.0)
            sigma2 = tl.reduce(sq, 0, tl.standard._sum_combine) / count
            mean = mu.to(dtype)
            invstd = (1.0 / tl.sqrt(sigma2 + eps)).to(dtype)
            tl.store(mean_ptr + t * channels + c, mean)
            tl.store(invstd_ptr + t * channels + c, invstd)
            tl.store(var_ptr + t * channels + c, sigma2.to(dtype))
        else:
            mean = tl.load(mean_ptr + t * channels + c)
            invstd = tl.load(invstd_ptr + t * channels + c)
        k = invstd * gamma
        c0 = shift - mean * k
        # pass 3: normalise, fire, reset, leak
        for j0 in range(0, count, BLOCK):
            j = j0 + tl.arange(0, BLOCK)
            mask = j < count
            off = ((j // spatial) * channels + c) * spatial + j % spatial
            if BATCH_STATS:
                u = tl.load(yt + off, mask=mask, other=0.0).to(dtype)
            else:
                u = tl.load(xt + off, mask=mask, other=0.0).to(dtype) + \
                    tl.load(vbuf_ptr + off, mask=mask, other=0.0)
            a = tl.load(a_ptr + off * a_step, mask=mask, other=0.0)
            b = tl.load(b_ptr + off * b_step, mask=mask, other=0.0)
            thr = tl.load(th_ptr + off * th_step, mask=mask, other=1.0)
            rv = tl.load(v0_ptr + off * v0_step, mask=mask, other=0.0)
            z = u * k + c0
            fire, r, v = _fire_reset_leak(z, a, b, thr, rv, HARD)
            tl.store(vbuf_ptr + off, v, mask=mask)
            y = _output(z, fire, r, v, thr, MODE)
            tl.store(yt + off, y.to(y_ptr.dtype.element_ty), mask=mask)


def _bn_backward_body(x_ptr, gy_ptr, gx_ptr, gz_ptr, a_ptr, b_ptr, th_ptr,
                      v0_ptr, a_step, b_step, th_step, v0_step, w_ptr,
                      bias_ptr, mean_ptr, invstd_ptr, sc_ptr, ga_ptr, gb_ptr,
                      gth_ptr, gv0_ptr, gw_ptr, gbias_ptr, steps, batch,
                      channels, spatial,
                      BATCH_STATS: tl.constexpr, HARD: tl.constexpr,
                      KEEP_DS: tl.constexpr, MODE: tl.constexpr,
                      KIND: tl.constexpr, NEED_PARAMS: tl.constexpr,
                      BLOCK: tl.constexpr):
    # gx (compute dtype) holds u_t after the first loop and dL/dx_t after
    # the second; gz is a one-step buffer of dL/dz.
    c = tl.program_id(0)
    n = batch * channels * spatial
    count = batch * spatial
    gamma = tl.load(w_ptr + c)
    shift = tl.load(bias_ptr + c)
    dtype = gamma.dtype
    c0s = tl.load(sc_ptr)
    c1s = tl.load(sc_ptr + 1)

    # 1. recompute u_t exactly as the forward did, into gx
    for t in range(steps):
        for j0 in range(0, count, BLOCK):
            j = j0 + tl.arange(0, BLOCK)
            mask = j < count
            off = ((j // spatial) * channels + c) * spatial + j % spatial
            # v_{t-1} from u_{t-1} (in gx), with the forward's arithmetic;
            # v_{-1} = 0
            before = mask & (j * 0 + t > 0)  # a block mask, as Triton needs
            prev = tl.maximum(t - 1, 0)
            kp = tl.load(invstd_ptr + prev * channels + c) * gamma
            cp = shift - tl.load(mean_ptr + prev * channels + c) * kp
            zp = tl.load(gx_ptr + prev * n + off, mask=before,
                         other=0.0) * kp + cp
            thr = tl.load(th_ptr + off * th_step, mask=mask, other=1.0)
            rv = tl.load(v0_ptr + off * v0_step, mask=mask, other=0.0)
            a = tl.load(a_ptr + off * a_step, mask=mask, other=0.0)
            b = tl.load(b_ptr + off * b_step, mask=mask, other=0.0)
            _, _, vp = _fire_reset_leak(zp, a, b, thr, rv, HARD)
            v = tl.where(before, vp, 0.0)
            u = tl.load(x_ptr + t * n + off, mask=mask, other=0.0).to(
                dtype) + v
            tl.store(gx_ptr + t * n + off, u, mask=mask)

    # 2. BPTT from t = T-1 down to 0
    sum_w = tl.full((BLOCK, ), 0.0, tl.float64)
    sum_b = tl.full((BLOCK, ), 0.0, tl.float64)
    for i in range(steps):
        t = steps - 1 - i
        mu = tl.load(mean_ptr + t * channels + c)
        invstd = tl.load(invstd_ptr + t * channels + c)
        k = invstd * gamma
        c0 = shift - mu * k
        acc_gz = tl.full((BLOCK, ), 0.0, tl.float64)
        acc_gzuh = tl.full((BLOCK, ), 0.0, tl.float64)
        for j0 in range(0, count, BLOCK):  # pass A
            j = j0 + tl.arange(0, BLOCK)
            mask = j < count
            off = ((j // spatial) * channels + c) * spatial + j % spatial
            u = tl.load(gx_ptr + t * n + off, mask=mask, other=0.0)
            gy = tl.load(gy_ptr + t * n + off, mask=mask, other=0.0).to(dtype)
            a = tl.load(a_ptr + off * a_step, mask=mask, other=0.0)
            thr = tl.load(th_ptr + off * th_step, mask=mask, other=1.0)
            rv = tl.load(v0_ptr + off * v0_step, mask=mask, other=0.0)
            # the gradient into v_t: dL/du_{t+1}, already in gx
            g_next = tl.load(gx_ptr + (t + 1) * n + off,
                             mask=mask & (j * 0 + t + 1 < steps), other=0.0)
            z = u * k + c0
            fire, s, sg = _fire_surrogate(z, thr, c0s, c1s, KIND)
            g, gv, gr, gssg = _grad_membrane(z, s, sg, gy, g_next, a, thr,
                                             rv, HARD, KEEP_DS, MODE, BLOCK)
            g = tl.where(mask, g, 0.0)
            tl.store(gz_ptr + off, g, mask=mask)
            acc_gz += g.to(tl.float64)
            acc_gzuh += g.to(tl.float64) * ((u - mu) * invstd).to(tl.float64)
            if NEED_PARAMS:
                # per-neuron sums over time, in the (zeroed) output buffers
                ga, gb, gth, gv0 = _grad_params(
                    tl.load(ga_ptr + off, mask=mask, other=0.0),
                    tl.load(gb_ptr + off, mask=mask, other=0.0),
                    tl.load(gth_ptr + off, mask=mask, other=0.0),
                    tl.load(gv0_ptr + off, mask=mask, other=0.0),
                    z, fire, s, gy, gv, gr, gssg, thr, rv, HARD, MODE)
                tl.store(ga_ptr + off, ga, mask=mask)
                tl.store(gb_ptr + off, gb, mask=mask)
                tl.store(gth_ptr + off, gth, mask=mask)
                tl.store(gv0_ptr + off, gv0, mask=mask)
        s_gz = tl.reduce(acc_gz, 0, tl.standard._sum_combine)
        s_gzuh = tl.reduce(acc_gzuh, 0, tl.standard._sum_combine)
        sum_w += tl.where(tl.arange(0, BLOCK) == 0, s_gzuh, 0.0)
        sum_b += tl.where(tl.arange(0, BLOCK) == 0, s_gz, 0.0)
        if BATCH_STATS:
            mean_gz = (s_gz / count).to(dtype)
            mean_gzuh = (s_gzuh / count).to(dtype)
        else:  # running statistics: constants, no gradient through them
            mean_gz = 0.0
            mean_gzuh = 0.0
        for j0 in range(0, count, BLOCK):  # pass B
            j = j0 + tl.arange(0, BLOCK)
            mask = j < count
            off = ((j // spatial) * channels + c) * spatial + j % spatial
            u = tl.load(gx_ptr + t * n + off, mask=mask, other=0.0)
            g = tl.load(gz_ptr + off, mask=mask, other=0.0)
            uh = (u - mu) * invstd
            tl.store(gx_ptr + t * n + off,
                     k * (g - mean_gz - uh * mean_gzuh), mask=mask)
    total_w = tl.reduce(sum_w, 0, tl.standard._sum_combine)
    total_b = tl.reduce(sum_b, 0, tl.standard._sum_combine)
    tl.store(gw_ptr + c, total_w.to(dtype))
    tl.store(gbias_ptr + c, total_b.to(dtype))


#: What _jitted decorates: the kernel bodies and the helpers they call.
_DEVICE_FUNCTIONS = (_reset, _fire_reset_leak, _output, _fire_surrogate,
                     _grad_membrane, _grad_params, _forward_body,
                     _backward_body, _bn_forward_body, _bn_backward_body)


@functools.lru_cache(maxsize=None)
def _jitted(interpret):
    """Each of :data:`_DEVICE_FUNCTIONS` decorated for the interpreter or the
    GPU, by name.

    ``triton.jit`` returns an interpreted function when ``TRITON_INTERPRET``
    is set at decoration time; ``interpret`` (the setting now) keys the
    cache, so switching the variable within a process (as the tests do)
    gets kernels of the matching kind. A kernel of one kind cannot call a
    helper of the other, and Triton resolves a call by the name in the
    function's globals; so each function is decorated as a copy whose
    globals are this namespace, where the names stand for the decorated
    copies (the module keeps the plain functions).
    """
    del interpret  # only the cache key: triton.jit reads the variable itself
    namespace = dict(globals())
    for fn in _DEVICE_FUNCTIONS:
        copy = types.FunctionType(fn.__code__, namespace, fn.__name__)
        namespace[fn.__name__] = triton.jit(copy)
    return namespace


def _bn_kernels(interpret):
    """``(forward, backward)`` of the membrane-BatchNorm kernels, decorated
    for the interpreter or the GPU."""
    jitted = _jitted(interpret)
    return jitted['_bn_forward_body'], jitted['_bn_backward_body']


def launch_bn_forward(x4, params, weight, bias, mean, invstd, batch_stats,
                      eps, hard, mode):
    """``(y, mean, invstd, var)`` of the LIF with membrane BatchNorm over
    ``x4`` (``[T, B, C, S]``, contiguous): ``y`` in ``x4``'s dtype, the
    statistics ``[T, C]`` in the compute dtype (``mean`` and ``invstd``
    given, the running ones, when not ``batch_stats``; ``var`` then 0).

    ``params``: alpha, beta, theta, v0 flattened to one value per neuron of
    one step or one scalar; ``weight``, ``bias``: ``[C]``; all in the
    compute dtype."""
    steps, batch, channels, spatial = x4.shape
    dtype = params[0].dtype
    # y doubles as the scratch of u between the statistics passes, so it
    # needs the compute dtype; cast once at the end for half inputs
    y = torch.empty(x4.shape, dtype=dtype, device=x4.device)
    vbuf = torch.zeros(x4.shape[1:], dtype=dtype, device=x4.device)
    eps64 = torch.tensor([float(eps)], dtype=torch.float64, device=x4.device)
    var = torch.zeros(steps, channels, dtype=dtype, device=x4.device)
    if batch_stats:
        mean = torch.empty(steps, channels, dtype=dtype, device=x4.device)
        invstd = torch.empty_like(mean)
    if x4.numel():
        forward, _ = _bn_kernels(interpreting())
        steps_of = [int(p.numel() != 1) for p in params]
        with _on_device(x4):
            forward[(channels, )](
                x4, y, vbuf, *params, *steps_of, weight, bias, mean, invstd,
                var, eps64, steps, batch, channels, spatial,
                BATCH_STATS=batch_stats, HARD=hard, MODE=mode,
                BLOCK=BN_BLOCK, num_warps=NUM_WARPS)
    return y.to(x4.dtype), mean, invstd, var


def launch_bn_backward(x4, grad_y, params, weight, bias, mean, invstd,
                       batch_stats, hard, keep_ds, mode, code, sparam,
                       need_params):
    """``(dL/dx, dL/dalpha, dL/dbeta, dL/dtheta, dL/dv0 per neuron of one
    step (None unless ``need_params``), dL/dweight, dL/dbias)``."""
    steps, batch, channels, spatial = x4.shape
    dtype = params[0].dtype
    device = x4.device
    gx = torch.empty(x4.shape, dtype=dtype, device=device)
    gz = torch.empty(x4.shape[1:], dtype=dtype, device=device)
    n = x4[0].numel()
    grads = [torch.zeros(n, dtype=dtype, device=device)
             for _ in range(4)] if need_params else [gz] * 4
    gw = torch.zeros(channels, dtype=dtype, device=device)
    gbias = torch.zeros(channels, dtype=dtype, device=device)
    if x4.numel():
        _, backward = _bn_kernels(interpreting())
        consts = _constants_tensor(code, sparam, dtype, device)
        steps_of = [int(p.numel() != 1) for p in params]
        with _on_device(x4):
            backward[(channels, )](
                x4, grad_y, gx, gz, *params, *steps_of, weight, bias, mean,
                invstd, consts, *grads, gw, gbias, steps, batch, channels,
                spatial, BATCH_STATS=batch_stats, HARD=hard,
                KEEP_DS=keep_ds, MODE=mode, KIND=code,
                NEED_PARAMS=need_params, BLOCK=BN_BLOCK,
                num_warps=NUM_WARPS)
    else:
        gx.zero_()
    return ((gx.to(x4.dtype), ) + (tuple(grads) if need_params else
                                   (None, ) * 4) + (gw, gbias))


class LIFMultiStepBNTriton(torch.autograd.Function):
    """The fused LIF with membrane BatchNorm on the Triton kernels; use
    :func:`bidl_train.neurons.functional.lif_multistep_bn`.

    Same arguments as
    :class:`~bidl_train.neurons.functional.LIFMultiStepBNCpp` except that
    the trailing argument is only the surrogate's ``(code, parameter)``.
    Saves the input, the per-step, per-channel mean and invstd and the
    parameters, as the C++ kernel does."""

    @staticmethod
    def forward(ctx, x_seq, alpha, beta, theta, v0, weight, bias, derivative,
                reset, detach_reset, out_mode, bn, code):
        from .functional import _per_neuron
        steps, batch, channels = x_seq.shape[:3]
        dtype = compute_dtype(x_seq.dtype)
        device = x_seq.device
        flat = [_per_neuron(p, x_seq.shape[1:], dtype).to(device)
                for p in (alpha, beta, theta, v0)]
        affine = [p.detach().to(device=device, dtype=dtype).contiguous()
                  for p in (weight, bias)]
        x4 = x_seq.detach().contiguous().view(
            steps, batch, channels, x_seq[0, 0, 0].numel())
        hard = reset == 'hard'
        mode = -1 if out_mode == 'spike' else out_mode
        running = [None, None] if bn.batch_stats else [
            s.to(device=device, dtype=dtype).contiguous()
            for s in (bn.mean, bn.invstd)]
        y, mean, invstd, var = launch_bn_forward(
            x4, flat, *affine, *running, bn.batch_stats, bn.eps, hard, mode)
        keep_bn_context(ctx, bn, (x4, *flat, *affine), mean, var, invstd,
                        (alpha, beta, theta, v0), (weight, bias), code, hard,
                        mode, detach_reset)
        return y.view(x_seq.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x4, a, b, th, rv, gamma, shift, mean, invstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = launch_bn_backward(
            x4, grad_y.contiguous().view(x4.shape), [a, b, th, rv], gamma,
            shift, mean, invstd, ctx.batch_stats, ctx.hard, ctx.keep_ds,
            ctx.mode, ctx.code[0], ctx.code[1], any(need[1:5]))
        return bn_input_grads(ctx, grads, grad_y) + (None, ) * 6
