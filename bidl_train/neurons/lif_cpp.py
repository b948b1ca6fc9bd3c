"""Optional compiled CPU kernel of the fused multi-step LIF.

The pure-PyTorch kernel of :mod:`bidl_train.neurons.functional` issues a few
elementwise torch calls per time step, each a full pass over one step's
neurons. This module compiles (once, lazily, with
``torch.utils.cpp_extension.load_inline``) a C++ kernel that walks every
neuron through all ``T`` steps in one pass over memory: the forward reads
``x`` once and writes ``y`` and the saved potentials ``u`` once; the
backward reads ``u`` and the incoming gradient once and writes the input
gradient once, accumulating the parameter gradients per neuron on the way.
Neurons are split over threads with ``at::parallel_for`` (so
``torch.set_num_threads`` applies) and processed in blocks of
:data:`BLOCK` consecutive neurons, the time loop outside the block loop, so
every access is contiguous and the inner loop vectorises.

The arithmetic is the loop form's, operation for operation (``r`` is
``v0`` or ``u`` for a hard reset, ``u - theta`` or ``u`` for a soft one;
``v = alpha r + beta``), compiled with ``-ffp-contract=off`` so no fused
multiply-add changes a rounding.

Availability: CPU tensors of float32/float64 and the six built-in surrogates.
The build needs a C++ compiler and ninja; it is cached by torch (under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``), so only
the first use on a machine compiles. Any build failure produces one warning
and the pure-PyTorch kernel is used instead. Set the environment variable
``BIDL_TRAIN_CPP_KERNEL=0`` to never build or use it.
"""
import functools
import os
import warnings

from .surrogate import (ATanSurrogate, ErfSurrogate, FastSigmoidSurrogate,
                        RectangleSurrogate, SigmoidSurrogate,
                        TriangleSurrogate)

__all__ = ['ENV_VAR', 'BLOCK', 'cpp_enabled', 'load_cpp_kernel',
           'surrogate_code']

#: Environment variable: ``0``/``false``/``off`` disables the C++ kernel.
ENV_VAR = 'BIDL_TRAIN_CPP_KERNEL'
#: Neurons per block in the kernel's inner loop.
BLOCK = 512

# (class, attribute holding its hyper-parameter) -> code in the C++ switch
_SURROGATE_CODES = {
    RectangleSurrogate: (0, 'width'),
    SigmoidSurrogate: (1, 'alpha'),
    ATanSurrogate: (2, 'alpha'),
    TriangleSurrogate: (3, 'width'),
    FastSigmoidSurrogate: (4, 'slope'),
    ErfSurrogate: (5, 'alpha'),
}


def surrogate_code(derivative):
    """``(code, parameter)`` of a built-in surrogate's ``derivative``.

    ``None`` for anything else (a plain function, a subclass overriding
    ``derivative``): the compiled kernel cannot evaluate it.
    """
    owner = getattr(derivative, '__self__', None)
    entry = _SURROGATE_CODES.get(type(owner))
    if entry is None or getattr(derivative, '__func__', None) is not \
            type(owner).derivative:
        return None
    return entry[0], float(getattr(owner, entry[1]))


def cpp_enabled():
    """False when ``BIDL_TRAIN_CPP_KERNEL`` switches the kernel off."""
    value = os.environ.get(ENV_VAR, '1').strip().lower()
    return value not in ('0', 'false', 'off', 'no')


_SOURCE = r'''
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBlock = BLOCK_SIZE;

template <typename T>
inline T surrogate(int kind, T p, T x) {
  switch (kind) {
    case 0: {  // rectangle, p = width
      return std::abs(x) < static_cast<T>(static_cast<double>(p) / 2)
                 ? T(1) / p : T(0);
    }
    case 1: {  // sigmoid, p = alpha
      T sig = T(1) / (T(1) + std::exp(-(p * x)));
      return p * sig * (T(1) - sig);
    }
    case 2: {  // atan, p = alpha
      T z = static_cast<T>(M_PI / 2.0) * p * x;
      return (p / T(2)) / (T(1) + z * z);
    }
    case 3: {  // triangle, p = width
      T t = T(1) - std::abs(x) / p;
      return (t > T(0) ? t : T(0)) / p;
    }
    case 4: {  // fast sigmoid, p = slope
      T d = p * std::abs(x) + T(1);
      return T(1) / (d * d);
    }
    default: {  // erf, p = alpha
      T z = p * x;
      return (p / static_cast<T>(std::sqrt(M_PI))) * std::exp(-(z * z));
    }
  }
}

// a parameter is a scalar (numel 1) or one value per neuron
template <typename T>
struct Param {
  const T* data;
  int64_t stride;
  explicit Param(const torch::Tensor& t)
      : data(t.data_ptr<T>()), stride(t.numel() == 1 ? 0 : 1) {}
  inline T operator[](int64_t i) const { return data[i * stride]; }
};

template <typename T>
void forward_impl(const torch::Tensor& x, const torch::Tensor& alpha,
                  const torch::Tensor& beta, const torch::Tensor& theta,
                  const torch::Tensor& v0, bool hard, int64_t out_mode,
                  torch::Tensor& y, torch::Tensor& u_out, bool save_u) {
  const int64_t steps = x.size(0), n = x.size(1);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  T* up = save_u ? u_out.data_ptr<T>() : nullptr;
  Param<T> a(alpha), b(beta), th(theta), r0(v0);
  at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) {
    T v[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      for (int64_t k = 0; k < len; ++k) v[k] = T(0);
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t off = t * n + start;
        for (int64_t k = 0; k < len; ++k) {
          const int64_t i = start + k;
          const T u = xp[off + k] + v[k];
          const T thr = th[i];
          const bool fired = u > thr;
          const T r = hard ? (fired ? r0[i] : u) : (fired ? u - thr : u);
          const T vn = a[i] * r + b[i];
          v[k] = vn;
          if (save_u) up[off + k] = u;
          T out;
          switch (out_mode) {
            case -1: out = fired ? T(1) : T(0); break;
            case 0: out = u; break;
            case 1: out = u - thr; break;
            case 2: out = r; break;
            default: out = vn; break;
          }
          yp[off + k] = out;
        }
      }
    }
  });
}

template <typename T>
void backward_impl(const torch::Tensor& u_seq, const torch::Tensor& grad_y,
                   const torch::Tensor& alpha, const torch::Tensor& theta,
                   const torch::Tensor& v0, bool hard, bool keep_ds,
                   int64_t out_mode, int kind, double sparam,
                   torch::Tensor& gx, torch::Tensor& ga, torch::Tensor& gb,
                   torch::Tensor& gth, torch::Tensor& gv0, bool need_x,
                   bool need_a, bool need_b, bool need_th, bool need_v0) {
  const int64_t steps = u_seq.size(0), n = u_seq.size(1);
  const T* up = u_seq.data_ptr<T>();
  const T* gyp = grad_y.data_ptr<T>();
  T* gxp = need_x ? gx.data_ptr<T>() : nullptr;
  T* gap = need_a ? ga.data_ptr<T>() : nullptr;
  T* gbp = need_b ? gb.data_ptr<T>() : nullptr;
  T* gthp = need_th ? gth.data_ptr<T>() : nullptr;
  T* gv0p = need_v0 ? gv0.data_ptr<T>() : nullptr;
  const T p = static_cast<T>(sparam);
  Param<T> a(alpha), th(theta), r0(v0);
  const bool y_is_s = out_mode == -1, y_is_u = out_mode == 0 || out_mode == 1;
  at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) {
    T gnext[kBlock], sa[kBlock], sb[kBlock], sth[kBlock], sv0[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      for (int64_t k = 0; k < len; ++k) {
        gnext[k] = sa[k] = sb[k] = sth[k] = sv0[k] = T(0);
      }
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t off = t * n + start;
        for (int64_t k = 0; k < len; ++k) {
          const int64_t i = start + k;
          const T u = up[off + k];
          const T thr = th[i];
          const bool fired = u > thr;
          const T s = fired ? T(1) : T(0);
          const T sg = surrogate<T>(kind, p, u - thr);
          const T gy = gyp[off + k];
          const T gv = out_mode == 3 ? gnext[k] + gy : gnext[k];
          const T gr = out_mode == 2 ? a[i] * gv + gy : a[i] * gv;
          T gs = y_is_s ? gy : T(0);
          if (keep_ds) gs += gr * (hard ? r0[i] - u : -thr);
          const T gssg = gs * sg;
          T gu = (hard ? gr * (T(1) - s) : gr) + gssg;
          if (y_is_u) gu += gy;
          if (need_x) gxp[off + k] = gu;
          if (need_a) {
            const T r = hard ? (fired ? r0[i] : u) : (fired ? u - thr : u);
            sa[k] += gv * r;
          }
          if (need_b) sb[k] += gv;
          if (need_th) {
            T g = -gssg;
            if (!hard) g -= gr * s;
            if (out_mode == 1) g -= gy;
            sth[k] += g;
          }
          if (need_v0 && hard) sv0[k] += gr * s;
          gnext[k] = gu;
        }
      }
      for (int64_t k = 0; k < len; ++k) {
        if (need_a) gap[start + k] = sa[k];
        if (need_b) gbp[start + k] = sb[k];
        if (need_th) gthp[start + k] = sth[k];
        if (need_v0) gv0p[start + k] = sv0[k];
      }
    }
  });
}

}  // namespace

std::vector<torch::Tensor> lif_forward(torch::Tensor x, torch::Tensor alpha,
                                       torch::Tensor beta, torch::Tensor theta,
                                       torch::Tensor v0, bool hard,
                                       int64_t out_mode, bool save_u) {
  auto y = torch::empty_like(x);
  auto u = save_u ? torch::empty_like(x) : torch::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    forward_impl<scalar_t>(x, alpha, beta, theta, v0, hard, out_mode, y, u,
                           save_u);
  });
  return {y, u};
}

std::vector<torch::Tensor> lif_backward(
    torch::Tensor u_seq, torch::Tensor grad_y, torch::Tensor alpha,
    torch::Tensor theta, torch::Tensor v0, bool hard, bool keep_ds,
    int64_t out_mode, int64_t kind, double sparam, bool need_x, bool need_a,
    bool need_b, bool need_th, bool need_v0) {
  const int64_t n = u_seq.size(1);
  auto opts = u_seq.options();
  auto empty = torch::empty({0}, opts);
  auto gx = need_x ? torch::empty_like(u_seq) : empty;
  auto ga = need_a ? torch::empty({n}, opts) : empty;
  auto gb = need_b ? torch::empty({n}, opts) : empty;
  auto gth = need_th ? torch::empty({n}, opts) : empty;
  auto gv0 = need_v0 ? torch::zeros({n}, opts) : empty;
  AT_DISPATCH_FLOATING_TYPES(u_seq.scalar_type(), "lif_backward", [&] {
    backward_impl<scalar_t>(u_seq, grad_y, alpha, theta, v0, hard, keep_ds,
                            out_mode, static_cast<int>(kind), sparam, gx, ga,
                            gb, gth, gv0, need_x, need_a, need_b, need_th,
                            need_v0);
  });
  return {gx, ga, gb, gth, gv0};
}
'''


@functools.lru_cache(maxsize=None)
def _build():
    """Compile (or load the cached build of) the extension; None on failure."""
    try:
        from torch.utils.cpp_extension import load_inline
        source = _SOURCE.replace('BLOCK_SIZE', str(BLOCK))
        return load_inline(
            name='bidl_train_lif_cpu',
            cpp_sources=[source],
            functions=['lif_forward', 'lif_backward'],
            extra_cflags=['-O3', '-ffp-contract=off', '-fopenmp'],
            extra_ldflags=['-fopenmp'],
            verbose=False)
    except Exception as err:  # any compiler/ninja/linker problem
        warnings.warn(
            'bidl_train: could not build the C++ LIF kernel, using the '
            f'pure-PyTorch kernel instead ({type(err).__name__}: '
            f'{str(err).strip().splitlines()[-1] if str(err).strip() else ""}'
            f'). Set {ENV_VAR}=0 to skip the attempt.', RuntimeWarning)
        return None


def load_cpp_kernel():
    """The compiled module, or None (disabled by the environment, or the
    build failed)."""
    if not cpp_enabled():
        return None
    return _build()

