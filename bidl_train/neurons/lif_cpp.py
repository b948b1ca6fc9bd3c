"""Optional compiled CPU kernel of the fused multi-step LIF.

The pure-PyTorch kernel of :mod:`bidl_train.neurons.functional` issues a few
elementwise torch calls per time step, each a full pass over one step's
neurons. This module compiles (once, lazily, with
``torch.utils.cpp_extension.load_inline``) a C++ kernel that walks every
neuron through all ``T`` steps in one pass over memory. The forward reads
``x`` once and writes ``y`` once; it saves nothing but ``x`` itself. The
backward, per block of neurons, recomputes ``u_t`` for all ``t`` into the
input-gradient buffer (the block's ``T`` values stay in cache), then runs
BPTT in reverse, overwriting each ``u_t`` by ``dL/dx_t`` in place and
accumulating the parameter gradients per neuron. So the backward reads ``x``
and the incoming gradient once and writes the input gradient once, and no
tensor beyond the input is kept between forward and backward.
Neurons are split over threads with ``at::parallel_for`` (so
``torch.set_num_threads`` applies; layers under about 2^18 neuron-steps stay
on the calling thread) and processed in blocks of
:data:`BLOCK` consecutive neurons, the time loop outside the block loop, so
every access is contiguous and the inner loop vectorises.

The arithmetic is the loop form's, operation for operation (``r`` is
``v0`` or ``u`` for a hard reset, ``u - theta`` or ``u`` for a soft one;
``v = alpha r + beta``), compiled with ``-ffp-contract=off`` so no fused
multiply-add changes a rounding (``-fno-trapping-math`` only lets the
selects vectorise); the outputs equal the loop's and the recomputed ``u_t``
are the forward's bit for bit. Surrogate derivatives use ``std::exp``, which
may differ from torch's vectorised ``exp`` in the last bit, so gradients
agree with the loop to rounding.

Availability: CPU tensors of float32/float64 and the six built-in surrogates
(``surrogate<KIND>`` below has one branch per code of
:data:`bidl_train.neurons.surrogate.SURROGATE_TABLE`; tests/test_lif_parity.py
holds each branch to the autograd derivative of the table's smooth step).
The build needs a C++ compiler and ninja; it is cached by torch (under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) with a
name that digests the source, flags, torch version and environment, so only
the first use per environment compiles (about a minute). Any build failure produces one warning
and the pure-PyTorch kernel is used instead. Set the environment variable
``BIDL_TRAIN_CPP_KERNEL=0`` to never build or use it.
"""
import functools
import hashlib
import logging
import os
import sys
import warnings

from .surrogate import surrogate_code

__all__ = ['ENV_VAR', 'BLOCK', 'build_kernel', 'build_name', 'cpp_enabled',
           'load_cpp_kernel', 'surrogate_code']

#: Environment variable: ``0``/``false``/``off`` disables the C++ kernel.
ENV_VAR = 'BIDL_TRAIN_CPP_KERNEL'
#: Neurons per block in the kernel's inner loop.
BLOCK = 512


def cpp_enabled():
    """False when ``BIDL_TRAIN_CPP_KERNEL`` switches the kernel off."""
    value = os.environ.get(ENV_VAR, '1').strip().lower()
    return value not in ('0', 'false', 'off', 'no')


_SOURCE = r'''
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kBlock = BLOCK_SIZE;

// Neurons per thread task: at least kBlock and enough for ~2^18 neuron-steps,
// so that small layers run on the calling thread (waking a thread pool on a
// busy machine costs more than the work) and large ones use every thread.
inline int64_t grain_of(int64_t steps) {
  return std::max<int64_t>(kBlock, (int64_t(1) << 18) / std::max<int64_t>(
                                       steps, 1));
}

template <int KIND, typename T>
inline T surrogate(T p, T x) {
  if constexpr (KIND == 0) {  // rectangle, p = width
    return std::abs(x) < static_cast<T>(static_cast<double>(p) / 2)
               ? T(1) / p : T(0);
  } else if constexpr (KIND == 1) {  // sigmoid, p = alpha
    const T sig = T(1) / (T(1) + std::exp(-(p * x)));
    return p * sig * (T(1) - sig);
  } else if constexpr (KIND == 2) {  // atan, p = alpha
    const T z = static_cast<T>(M_PI / 2.0) * p * x;
    return (p / T(2)) / (T(1) + z * z);
  } else if constexpr (KIND == 3) {  // triangle, p = width
    const T t = T(1) - std::abs(x) / p;
    return (t > T(0) ? t : T(0)) / p;
  } else if constexpr (KIND == 4) {  // fast sigmoid, p = slope
    const T d = p * std::abs(x) + T(1);
    return T(1) / (d * d);
  } else {  // erf, p = alpha
    const T z = p * x;
    return (p / static_cast<T>(std::sqrt(M_PI))) * std::exp(-(z * z));
  }
}

// Copy one block of a parameter (a scalar or one value per neuron).
template <typename T>
inline void load_block(const torch::Tensor& param, int64_t start, int64_t len,
                       T* out) {
  const T* data = param.data_ptr<T>();
  if (param.numel() == 1) {
    std::fill(out, out + len, data[0]);
  } else {
    std::copy(data + start, data + start + len, out);
  }
}

// The reset r of the loop form exactly: v0 or u (hard), u - theta or u
// (soft), as selects so that loops over neurons vectorise.
template <bool HARD, typename T>
inline T reset_of(T u, T thr, T v0) {
  if constexpr (HARD) {
    return u > thr ? v0 : u;
  } else {
    return u > thr ? u - thr : u;
  }
}

// Forward: y only (the backward recomputes u from x).
template <typename T, bool HARD, int MODE>
void forward_impl(const torch::Tensor& x, const torch::Tensor& alpha,
                  const torch::Tensor& beta, const torch::Tensor& theta,
                  const torch::Tensor& v0, torch::Tensor& y) {
  const int64_t steps = x.size(0), n = x.size(1);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  at::parallel_for(0, n, grain_of(steps), [&](int64_t begin, int64_t end) {
    T v[kBlock], pa[kBlock], pb[kBlock], pth[kBlock], pr[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      load_block(alpha, start, len, pa);
      load_block(beta, start, len, pb);
      load_block(theta, start, len, pth);
      load_block(v0, start, len, pr);
      std::fill(v, v + len, T(0));
      for (int64_t t = 0; t < steps; ++t) {
        const T* __restrict__ xt = xp + t * n + start;
        T* __restrict__ yt = yp + t * n + start;
#pragma omp simd
        for (int64_t k = 0; k < len; ++k) {
          // all loads up front and selects on values: the loop vectorises
          const T thr = pth[k], v0k = pr[k], ak = pa[k], bk = pb[k];
          const T u = xt[k] + v[k];
          const T r = reset_of<HARD>(u, thr, v0k);
          const T vn = ak * r + bk;
          v[k] = vn;
          if constexpr (MODE == -1) yt[k] = u > thr ? T(1) : T(0);
          if constexpr (MODE == 0) yt[k] = u;
          if constexpr (MODE == 1) yt[k] = u - thr;
          if constexpr (MODE == 2) yt[k] = r;
          if constexpr (MODE == 3) yt[k] = vn;
        }
      }
    }
  });
}

// Backward, per block of neurons: recompute u_t for every t into the
// gradient buffer (the block stays in cache), then run BPTT in reverse,
// overwriting u_t by the input gradient in place.
template <typename T, int KIND, int MODE>
void backward_impl(const torch::Tensor& x, const torch::Tensor& grad_y,
                   const torch::Tensor& alpha, const torch::Tensor& beta,
                   const torch::Tensor& theta, const torch::Tensor& v0,
                   bool hard, bool keep_ds, double sparam, torch::Tensor& gx,
                   torch::Tensor& ga, torch::Tensor& gb, torch::Tensor& gth,
                   torch::Tensor& gv0, bool need_params) {
  const int64_t steps = x.size(0), n = x.size(1);
  const T* xp = x.data_ptr<T>();
  const T* gyp = grad_y.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  const T p = static_cast<T>(sparam);
  at::parallel_for(0, n, grain_of(steps), [&](int64_t begin, int64_t end) {
    T v[kBlock], pa[kBlock], pb[kBlock], pth[kBlock], pr[kBlock];
    T sa[kBlock], sb[kBlock], sth[kBlock], sv0[kBlock], sg[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      load_block(alpha, start, len, pa);
      load_block(beta, start, len, pb);
      load_block(theta, start, len, pth);
      load_block(v0, start, len, pr);
      std::fill(v, v + len, T(0));
      for (int64_t t = 0; t < steps; ++t) {  // u_t into gx
        const T* __restrict__ xt = xp + t * n + start;
        T* __restrict__ ut = gxp + t * n + start;
        if (hard) {
#pragma omp simd
          for (int64_t k = 0; k < len; ++k) {
            const T thr = pth[k], v0k = pr[k], ak = pa[k], bk = pb[k];
            const T u = xt[k] + v[k];
            ut[k] = u;
            v[k] = ak * reset_of<true>(u, thr, v0k) + bk;
          }
        } else {
#pragma omp simd
          for (int64_t k = 0; k < len; ++k) {
            const T thr = pth[k], v0k = pr[k], ak = pa[k], bk = pb[k];
            const T u = xt[k] + v[k];
            ut[k] = u;
            v[k] = ak * reset_of<false>(u, thr, v0k) + bk;
          }
        }
      }
      // v now carries the gradient flowing into v_t from step t + 1
      std::fill(v, v + len, T(0));
      std::fill(sa, sa + len, T(0));
      std::fill(sb, sb + len, T(0));
      std::fill(sth, sth + len, T(0));
      std::fill(sv0, sv0 + len, T(0));
      const T kd = keep_ds ? T(1) : T(0);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* __restrict__ gyt = gyp + t * n + start;
        T* __restrict__ gt = gxp + t * n + start;
        // the surrogate first (exp does not vectorise), then the rest
        for (int64_t k = 0; k < len; ++k) {
          sg[k] = surrogate<KIND>(p, gt[k] - pth[k]);
        }
#pragma omp simd
        for (int64_t k = 0; k < len; ++k) {
          const T u = gt[k], thr = pth[k], v0k = pr[k], ak = pa[k];
          const T gy = gyt[k], sgk = sg[k];
          const T s = u > thr ? T(1) : T(0);
          const T gv = MODE == 3 ? v[k] + gy : v[k];
          const T gr = MODE == 2 ? ak * gv + gy : ak * gv;
          const T ds = hard ? v0k - u : -thr;  // dr/ds
          const T gs = (MODE == -1 ? gy : T(0)) + kd * gr * ds;
          const T gssg = gs * sgk;
          const T gu = (hard ? gr * (T(1) - s) : gr) + gssg +
                       ((MODE == 0 || MODE == 1) ? gy : T(0));
          gt[k] = gu;
          v[k] = gu;
          const T r = hard ? (u > thr ? v0k : u) : (u > thr ? u - thr : u);
          sa[k] += gv * r;
          sb[k] += gv;
          sth[k] += -gssg - (hard ? T(0) : gr * s) -
                    (MODE == 1 ? gy : T(0));
          sv0[k] += hard ? gr * s : T(0);
        }
      }
      if (need_params) {
        std::copy(sa, sa + len, ga.data_ptr<T>() + start);
        std::copy(sb, sb + len, gb.data_ptr<T>() + start);
        std::copy(sth, sth + len, gth.data_ptr<T>() + start);
        std::copy(sv0, sv0 + len, gv0.data_ptr<T>() + start);
      }
    }
  });
}

template <typename F>
void with_mode(int64_t mode, F&& f) {
  switch (mode) {
    case -1: f(std::integral_constant<int, -1>()); break;
    case 0: f(std::integral_constant<int, 0>()); break;
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    default: f(std::integral_constant<int, 3>()); break;
  }
}

template <typename F>
void with_kind(int64_t kind, F&& f) {
  switch (kind) {
    case 0: f(std::integral_constant<int, 0>()); break;
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, 4>()); break;
    default: f(std::integral_constant<int, 5>()); break;
  }
}

}  // namespace

torch::Tensor lif_forward(torch::Tensor x, torch::Tensor alpha,
                          torch::Tensor beta, torch::Tensor theta,
                          torch::Tensor v0, bool hard, int64_t out_mode) {
  auto y = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    with_mode(out_mode, [&](auto mode) {
      if (hard) {
        forward_impl<scalar_t, true, decltype(mode)::value>(
            x, alpha, beta, theta, v0, y);
      } else {
        forward_impl<scalar_t, false, decltype(mode)::value>(
            x, alpha, beta, theta, v0, y);
      }
    });
  });
  return y;
}

std::vector<torch::Tensor> lif_backward(
    torch::Tensor x, torch::Tensor grad_y, torch::Tensor alpha,
    torch::Tensor beta, torch::Tensor theta, torch::Tensor v0, bool hard,
    bool keep_ds, int64_t out_mode, int64_t kind, double sparam,
    bool need_params) {
  const int64_t n = x.size(1);
  auto opts = x.options();
  auto gx = torch::empty_like(x);
  auto per_neuron = [&] {
    return need_params ? torch::empty({n}, opts) : torch::empty({0}, opts);
  };
  auto ga = per_neuron(), gb = per_neuron(), gth = per_neuron(),
       gv0 = per_neuron();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_backward", [&] {
    with_kind(kind, [&](auto k) {
      with_mode(out_mode, [&](auto mode) {
        backward_impl<scalar_t, decltype(k)::value, decltype(mode)::value>(
            x, grad_y, alpha, beta, theta, v0, hard, keep_ds, sparam, gx, ga,
            gb, gth, gv0, need_params);
      });
    });
  });
  return {gx, ga, gb, gth, gv0};
}
'''


_CFLAGS = ('-O3', '-ffp-contract=off', '-fno-trapping-math', '-fopenmp')
_LDFLAGS = ('-fopenmp', )


def build_name(prefix, source):
    """``prefix`` plus a digest of the source, the flags, the torch version
    and the Python environment.

    torch caches builds by name in one folder per Python version, shared by
    every virtual environment of the user: a name of its own per
    environment and source keeps two environments (or two versions of this
    package) from rebuilding over each other or loading a build made
    against another torch.
    """
    import torch
    key = '\n'.join((source, ' '.join(_CFLAGS + _LDFLAGS), torch.__version__,
                     sys.prefix))
    return f'{prefix}_{hashlib.sha1(key.encode()).hexdigest()[:12]}'


def build_kernel(name, source):
    """Compile (or load torch's cached build of) ``source``; None on failure.

    A failure of any kind (no compiler, no ninja, a compile or link error)
    is reported as one ``RuntimeWarning`` and answered with None, so callers
    fall back to pure PyTorch.
    """
    logging.getLogger(__name__).info(
        'bidl_train: loading the C++ LIF kernel %s (the first use in an '
        'environment compiles it, about a minute)', name)
    try:
        from torch.utils.cpp_extension import load_inline
        return load_inline(
            name=name,
            cpp_sources=[source],
            functions=['lif_forward', 'lif_backward'],
            extra_cflags=list(_CFLAGS),
            extra_ldflags=list(_LDFLAGS),
            verbose=False)
    except Exception as err:  # any compiler/ninja/linker problem
        lines = str(err).strip().splitlines()
        warnings.warn(
            'bidl_train: could not build the C++ LIF kernel, using the '
            f'pure-PyTorch kernel instead ({type(err).__name__}: '
            f'{lines[-1] if lines else ""}). Set {ENV_VAR}=0 to skip the '
            'attempt.', RuntimeWarning)
        return None


@functools.lru_cache(maxsize=None)
def _cached_build():
    """Build once per process (a failed build is not retried)."""
    source = _SOURCE.replace('BLOCK_SIZE', str(BLOCK))
    return build_kernel(build_name('bidl_train_lif_cpu', source), source)


def load_cpp_kernel():
    """The compiled module, or None (disabled by the environment, or the
    build failed)."""
    if not cpp_enabled():
        return None
    return _cached_build()

