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
are the forward's bit for bit. The surrogate derivative is computed inside
the one backward pass; its ``exp`` (sigmoid, erf) is ``vexp``, a polynomial
of plain arithmetic that vectorises (within 2 ulp of ``std::exp`` where the
result is a normal number), so gradients agree with the loop to rounding.
The build targets the CPU it runs on (``-march=native``: AVX2 where
present), falling back to a portable build if the compiler refuses.

``lif_bn_forward``/``lif_bn_backward`` are the same with BatchNorm on the
membrane (``norm_state``): each step's channel statistics need every neuron
of the channel, so there a task owns whole channels (all batch and spatial
positions) and runs them through all ``T`` steps: per step a sum, a sum of
squared deviations (two passes, double accumulators), then normalise, fire,
reset and leak; the backward recomputes ``u_t`` from the saved input and
the saved per-step mean and invstd, then per step sums ``dL/dz`` and
``dL/dz * u_hat`` over the channel and applies BatchNorm's backward.

Availability: CPU tensors of float32/float64 and the six built-in surrogates
(``surrogate<KIND>`` below has one branch per code of
:data:`bidl_train.neurons.surrogate.SURROGATE_TABLE`; tests/test_lif_parity.py
holds each branch to the autograd derivative of the table's smooth step).

Building: the first use compiles (about a minute; needs a C++ compiler and
ninja) into ``<TORCH_EXTENSIONS_DIR>/<name>`` (by default
``~/.cache/torch_extensions``), where ``name`` digests :func:`build_key`:
the source, flags, torch, the Python ABI and environment, the compiler's and
ninja's paths and versions, and the CPU's features. Any change of these
builds in a folder of its own, so two toolchains never rebuild over each
other. An OS file lock (:func:`build_lock`) makes concurrent processes build
one after the other (the later ones then load the finished build), and the
console says when a compile starts and ends. Any build failure produces one
warning and the pure-PyTorch kernel is used instead. Set the environment
variable ``BIDL_TRAIN_CPP_KERNEL=0`` to never build or use it.
"""
import contextlib
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
import warnings

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from .surrogate import surrogate_code

__all__ = ['ENV_VAR', 'BLOCK', 'build_kernel', 'build_key', 'build_lock',
           'build_name', 'cpp_enabled', 'load_cpp_kernel', 'surrogate_code']

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
#include <cstdint>
#include <cstring>
#include <limits>
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

// Bit copies between a float type and the unsigned integer of its size.
template <typename T>
using bits_t = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <typename T>
inline bits_t<T> to_bits(T x) {
  bits_t<T> b;
  std::memcpy(&b, &x, sizeof(T));
  return b;
}

template <typename T>
inline T from_bits(bits_t<T> b) {
  T x;
  std::memcpy(&x, &b, sizeof(T));
  return x;
}

// exp(x) from additions, multiplications, one division and selects only,
// so that the loops calling it vectorise (std::exp is a call the compiler
// keeps scalar). Cephes' method: x = n ln2 + r with |r| <= ln2 / 2, e^r by
// a polynomial (float) or a Pade form (double), times 2^n built in the
// exponent bits. Within 2 ulp of std::exp wherever the result is a normal
// number; results exp itself makes subnormal come out 0, and arguments
// within ln 2 of overflow come out at most 2x too small (only ever under
// a 1e-38 or 1e-308 surrogate derivative, so no value that matters moves).
template <typename T>
inline T vexp(T x) {
  constexpr bool F = sizeof(T) == 4;
  constexpr int kMant = F ? 23 : 52;    // mantissa bits
  constexpr T kBias = F ? 127 : 1023;   // exponent bias
  constexpr T kLo = F ? T(-87.33654) : T(-708.39641853226408);  // 2^-bias+1
  constexpr T kHi = F ? T(88.0) : T(709.0);        // n stays <= bias
  constexpr T kInf = F ? T(88.72283905206835) : T(709.782712893384);
  // 1.5 * 2^kMant: adding and subtracting it rounds to an integer
  constexpr T kRound = F ? T(12582912.0) : T(6755399441055744.0);
  constexpr T kLog2e = T(1.4426950408889634073599);
  const T xc = x < kLo ? kLo : (x > kHi ? kHi : x);
  const T n = (xc * kLog2e + kRound) - kRound;
  T e;
  if constexpr (F) {
    // ln2 in two parts, the first exact in few bits (Cody-Waite)
    const T r = (xc - n * T(0.693359375)) - n * T(-2.12194440e-4);
    const T r2 = r * r;
    T q = T(1.9875691500e-4);
    q = q * r + T(1.3981999507e-3);
    q = q * r + T(8.3334519073e-3);
    q = q * r + T(4.1665795894e-2);
    q = q * r + T(1.6666665459e-1);
    q = q * r + T(5.0000001201e-1);
    e = (q * r2 + r) + T(1);
  } else {
    const T r = (xc - n * T(6.93145751953125e-1)) -
                n * T(1.42860682030941723212e-6);
    const T r2 = r * r;
    const T p = ((T(1.26177193074810590878e-4) * r2 +
                  T(3.02994407707441961300e-2)) * r2 +
                 T(9.99999999999999999910e-1)) * r;
    const T q = ((T(3.00198505138664455042e-6) * r2 +
                  T(2.52448340349684104192e-3)) * r2 +
                 T(2.27265548208155028766e-1)) * r2 +
                T(2.00000000000000000009e0);
    e = T(1) + T(2) * (p / (q - p));
  }
  // 2^n: n + bias sits in the low mantissa bits of (n + bias) + 2^kMant;
  // shifting them into the exponent field builds the power of two
  const T shifted = (n + kBias) + (kRound / T(1.5));
  const T scale = from_bits<T>(to_bits(shifted) << kMant);
  const T y = e * scale;
  return x < kLo ? T(0) : (x > kInf ? std::numeric_limits<T>::infinity()
                                    : y);
}

// The surrogate derivative of code KIND at x = u - theta (the table
// bidl_train.neurons.surrogate.SURROGATE_TABLE, one branch per code).
template <int KIND, typename T>
inline T surrogate(T p, T x) {
  if constexpr (KIND == 0) {  // rectangle, p = width
    return std::abs(x) < static_cast<T>(static_cast<double>(p) / 2)
               ? T(1) / p : T(0);
  } else if constexpr (KIND == 1) {  // sigmoid, p = alpha
    const T sig = T(1) / (T(1) + vexp(-(p * x)));
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
    return (p / static_cast<T>(std::sqrt(M_PI))) * vexp(-(z * z));
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

// Weights (0 or 1) of the incoming gradient gY in the backward, per output
// mode: runtime multipliers rather than template branches, so that the
// backward has 24 instantiations, not 120 (build time), and each of them
// vectorises (a select on a loop-invariant bool does not). Adding gY * 0
// adds an exact zero: the values are those of the branches.
template <typename T>
struct ModeWeights {
  T s, u, r, v, th;  // y = s; y = u or u - theta; y = r; y = v; y = u - th
  explicit ModeWeights(int64_t mode)
      : s(mode == -1), u(mode == 0 || mode == 1), r(mode == 2), v(mode == 3),
        th(mode == 1) {}
};

// Backward, per block of neurons: recompute u_t for every t into the
// gradient buffer (the block stays in cache), then run BPTT in reverse,
// overwriting u_t by the input gradient in place; the surrogate derivative
// is computed in the same vectorised pass.
template <typename T, int KIND, bool HARD>
void backward_impl(const torch::Tensor& x, const torch::Tensor& grad_y,
                   const torch::Tensor& alpha, const torch::Tensor& beta,
                   const torch::Tensor& theta, const torch::Tensor& v0,
                   int64_t mode, bool keep_ds, double sparam,
                   torch::Tensor& gx, torch::Tensor& ga, torch::Tensor& gb,
                   torch::Tensor& gth, torch::Tensor& gv0, bool need_params) {
  const int64_t steps = x.size(0), n = x.size(1);
  const T* xp = x.data_ptr<T>();
  const T* gyp = grad_y.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  const T p = static_cast<T>(sparam);
  const ModeWeights<T> m(mode);
  const T kd = keep_ds ? T(1) : T(0);
  at::parallel_for(0, n, grain_of(steps), [&](int64_t begin, int64_t end) {
    T v[kBlock], pa[kBlock], pb[kBlock], pth[kBlock], pr[kBlock];
    T sa[kBlock], sb[kBlock], sth[kBlock], sv0[kBlock];
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
#pragma omp simd
        for (int64_t k = 0; k < len; ++k) {
          const T thr = pth[k], v0k = pr[k], ak = pa[k], bk = pb[k];
          const T u = xt[k] + v[k];
          ut[k] = u;
          v[k] = ak * reset_of<HARD>(u, thr, v0k) + bk;
        }
      }
      // v now carries the gradient flowing into v_t from step t + 1
      std::fill(v, v + len, T(0));
      std::fill(sa, sa + len, T(0));
      std::fill(sb, sb + len, T(0));
      std::fill(sth, sth + len, T(0));
      std::fill(sv0, sv0 + len, T(0));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* __restrict__ gyt = gyp + t * n + start;
        T* __restrict__ gt = gxp + t * n + start;
#pragma omp simd
        for (int64_t k = 0; k < len; ++k) {
          const T u = gt[k], thr = pth[k], v0k = pr[k], ak = pa[k];
          const T gy = gyt[k];
          const T sgk = surrogate<KIND>(p, u - thr);
          const T s = u > thr ? T(1) : T(0);
          const T gv = v[k] + m.v * gy;
          const T gr = ak * gv + m.r * gy;
          const T ds = HARD ? v0k - u : -thr;  // dr/ds
          const T gs = m.s * gy + kd * gr * ds;
          const T gssg = gs * sgk;
          const T gu = (HARD ? gr * (T(1) - s) : gr) + gssg + m.u * gy;
          gt[k] = gu;
          v[k] = gu;
          const T r = reset_of<HARD>(u, thr, v0k);
          sa[k] += gv * r;
          sb[k] += gv;
          sth[k] += -gssg - (HARD ? T(0) : gr * s) - m.th * gy;
          sv0[k] += HARD ? gr * s : T(0);
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
      if (hard) {
        backward_impl<scalar_t, decltype(k)::value, true>(
            x, grad_y, alpha, beta, theta, v0, out_mode, keep_ds, sparam, gx,
            ga, gb, gth, gv0, need_params);
      } else {
        backward_impl<scalar_t, decltype(k)::value, false>(
            x, grad_y, alpha, beta, theta, v0, out_mode, keep_ds, sparam, gx,
            ga, gb, gth, gv0, need_params);
      }
    });
  });
  return {gx, ga, gb, gth, gv0};
}

// ---------------------------------------------------------------------------
// LIF with BatchNorm on the membrane (norm_state). Per step t and channel c:
//   u = x_t + v_{t-1};  mean_c, var_c over (batch, spatial) of u (biased)
//   z = u k_c + c_c  with  k = invstd gamma,  c = bias - mean k  (ATen's own
//   form of the normalisation);  fire, reset and leak on z.
// Each channel's recurrence depends on that channel only, so the kernel runs
// a block of channels through all T steps on one thread, with one parallel
// region in all: no barrier per step. Input laid out [T, B, C, S].
// ---------------------------------------------------------------------------
namespace {

using acc_of = double;  // the statistics' accumulator (double for both)

// Element (b, c, s) of one step: its offset and the offset of its
// per-neuron parameter (0 for a scalar parameter).
struct Layout {
  int64_t steps, batch, channels, spatial;
  int64_t step_size() const { return batch * channels * spatial; }
  int64_t count() const { return batch * spatial; }  // values per channel
};

// A parameter read per neuron: one value for a scalar, else one per neuron.
template <typename T>
struct Param {
  const T* data;
  int64_t stride;
  explicit Param(const torch::Tensor& p)
      : data(p.data_ptr<T>()), stride(p.numel() == 1 ? 0 : 1) {}
  T operator[](int64_t i) const { return data[i * stride]; }
};

// Calls f(offset) for every neuron of channel c in one step. Only for
// bodies without a dependency between neurons (the loop is declared simd);
// the sums over a channel are written out with a reduction clause, since a
// lambda would capture the shared variable, not the simd-private copy.
template <typename F>
inline void each_neuron(const Layout& L, int64_t c, F&& f) {
  for (int64_t b = 0; b < L.batch; ++b) {
    const int64_t base = (b * L.channels + c) * L.spatial;
#pragma omp simd
    for (int64_t s = 0; s < L.spatial; ++s) f(base + s);
  }
}

// Heads a loop over channel c's neurons, offset i, whose simd loop carries
// REDUCTION (an omp pragma); the body follows the macro. The if-with-
// initializer names the offset while the simd loop keeps OpenMP's
// canonical form.
#define FOR_CHANNEL_NEURONS(L, c, i, REDUCTION)                          \
  for (int64_t b_ = 0; b_ < (L).batch; ++b_)                             \
    _Pragma(REDUCTION) for (int64_t s_ = 0; s_ < (L).spatial; ++s_)      \
      if (const int64_t i = (b_ * (L).channels + (c)) * (L).spatial + s_; \
          true)

// Forward: y, and per step and channel the mean, invstd and biased var used.
template <typename T, bool HARD, int MODE>
void bn_forward_impl(const torch::Tensor& x, const Layout& L,
                     const torch::Tensor& alpha, const torch::Tensor& beta,
                     const torch::Tensor& theta, const torch::Tensor& v0,
                     const torch::Tensor& weight, const torch::Tensor& bias,
                     bool batch_stats, double eps, torch::Tensor& y,
                     torch::Tensor& mean, torch::Tensor& invstd,
                     torch::Tensor& var) {
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  T* mp = mean.data_ptr<T>();
  T* ip = invstd.data_ptr<T>();
  T* vp = var.data_ptr<T>();
  const T* wp = weight.data_ptr<T>();
  const T* bp = bias.data_ptr<T>();
  const Param<T> pa(alpha), pb(beta), pth(theta), pr(v0);
  const int64_t n = L.step_size(), count = L.count();
  const int64_t grain = std::max<int64_t>(
      1, (int64_t(1) << 18) / std::max<int64_t>(L.steps * count, 1));
  at::parallel_for(0, L.channels, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> vbuf(n);  // v_{t-1}; only this task's channels are used
    T* v = vbuf.data();
    for (int64_t c = begin; c < end; ++c) {
      each_neuron(L, c, [&](int64_t i) { v[i] = T(0); });
      for (int64_t t = 0; t < L.steps; ++t) {
        const T* __restrict__ xt = xp + t * n;
        T* __restrict__ yt = yp + t * n;
        const int64_t tc = t * L.channels + c;
        if (batch_stats) {  // two passes: the sum, then squared deviations
          acc_of sum = 0;
          FOR_CHANNEL_NEURONS(L, c, i, "omp simd reduction(+ : sum)") {
            const T u = xt[i] + v[i];
            yt[i] = u;
            sum += u;
          }
          const acc_of mu = sum / count;
          acc_of sq = 0;
          FOR_CHANNEL_NEURONS(L, c, i, "omp simd reduction(+ : sq)") {
            const acc_of d = yt[i] - mu;
            sq += d * d;
          }
          const acc_of sigma2 = sq / count;
          mp[tc] = static_cast<T>(mu);
          vp[tc] = static_cast<T>(sigma2);
          ip[tc] = static_cast<T>(1.0 / std::sqrt(sigma2 + eps));
        } else {
          each_neuron(L, c, [&](int64_t i) { yt[i] = xt[i] + v[i]; });
        }
        const T k = ip[tc] * wp[c];
        const T c0 = bp[c] - mp[tc] * k;
        each_neuron(L, c, [&](int64_t i) {
          const T z = yt[i] * k + c0;
          const T thr = pth[i];
          const T r = reset_of<HARD>(z, thr, pr[i]);
          const T vn = pa[i] * r + pb[i];
          v[i] = vn;
          if constexpr (MODE == -1) yt[i] = z > thr ? T(1) : T(0);
          if constexpr (MODE == 0) yt[i] = z;
          if constexpr (MODE == 1) yt[i] = z - thr;
          if constexpr (MODE == 2) yt[i] = r;
          if constexpr (MODE == 3) yt[i] = vn;
        });
      }
    }
  });
}

// Backward: recompute u_t into gx (z from the saved mean/invstd, the
// forward's arithmetic, so spikes are the forward's), then BPTT in reverse
// per channel: pass A takes dL/dz per neuron into a step buffer and sums
// dL/dz and dL/dz * u_hat over the channel; pass B applies BatchNorm's
// backward (through the batch statistics when they were used) and leaves
// dL/du_t = dL/dx_t = dL/dv_{t-1} in gx. PARAMS: whether the per-neuron
// parameter gradients are accumulated too, a template argument because a
// run-time test inside pass A's simd loop costs the common case (no
// learnable parameter) 30-40 % of the backward's time.
template <typename T, int KIND, bool HARD, bool PARAMS>
void bn_backward_impl(const torch::Tensor& x, const Layout& L,
                      const torch::Tensor& grad_y, const torch::Tensor& alpha,
                      const torch::Tensor& beta, const torch::Tensor& theta,
                      const torch::Tensor& v0, const torch::Tensor& weight,
                      const torch::Tensor& bias, const torch::Tensor& mean,
                      const torch::Tensor& invstd, bool batch_stats,
                      int64_t mode, bool keep_ds, double sparam,
                      torch::Tensor& gx, torch::Tensor& ga, torch::Tensor& gb,
                      torch::Tensor& gth, torch::Tensor& gv0,
                      torch::Tensor& gw, torch::Tensor& gbias) {
  const T* xp = x.data_ptr<T>();
  const T* gyp = grad_y.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  const T* mp = mean.data_ptr<T>();
  const T* ip = invstd.data_ptr<T>();
  const T* wp = weight.data_ptr<T>();
  const T* bp = bias.data_ptr<T>();
  T* gwp = gw.data_ptr<T>();
  T* gbiasp = gbias.data_ptr<T>();
  T* gap = PARAMS ? ga.data_ptr<T>() : nullptr;
  T* gbp = PARAMS ? gb.data_ptr<T>() : nullptr;
  T* gthp = PARAMS ? gth.data_ptr<T>() : nullptr;
  T* gv0p = PARAMS ? gv0.data_ptr<T>() : nullptr;
  const Param<T> pa(alpha), pb(beta), pth(theta), pr(v0);
  const T p = static_cast<T>(sparam);
  const ModeWeights<T> m(mode);
  const T kd = keep_ds ? T(1) : T(0);
  const int64_t n = L.step_size(), count = L.count();
  const int64_t grain = std::max<int64_t>(
      1, (int64_t(1) << 18) / std::max<int64_t>(L.steps * count, 1));
  at::parallel_for(0, L.channels, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> vbuf(n), gzbuf(n);
    T* v = vbuf.data();   // v_{t-1}, then dL/dv_t
    T* gz = gzbuf.data();  // dL/dz_t of one step
    for (int64_t c = begin; c < end; ++c) {
      const T gamma = wp[c];
      each_neuron(L, c, [&](int64_t i) { v[i] = T(0); });
      for (int64_t t = 0; t < L.steps; ++t) {  // u_t into gx
        const T* __restrict__ xt = xp + t * n;
        T* __restrict__ ut = gxp + t * n;
        const int64_t tc = t * L.channels + c;
        const T k = ip[tc] * gamma, c0 = bp[c] - mp[tc] * k;
        each_neuron(L, c, [&](int64_t i) {
          const T u = xt[i] + v[i];
          ut[i] = u;
          v[i] = pa[i] * reset_of<HARD>(u * k + c0, pth[i], pr[i]) + pb[i];
        });
      }
      if constexpr (PARAMS) {
        each_neuron(L, c, [&](int64_t i) {
          gap[i] = gbp[i] = gthp[i] = gv0p[i] = T(0);
        });
      }
      each_neuron(L, c, [&](int64_t i) { v[i] = T(0); });
      acc_of sum_w = 0, sum_b = 0;
      for (int64_t t = L.steps - 1; t >= 0; --t) {
        const T* __restrict__ gyt = gyp + t * n;
        T* __restrict__ gt = gxp + t * n;
        const int64_t tc = t * L.channels + c;
        const T mu = mp[tc], is = ip[tc];
        const T k = is * gamma, c0 = bp[c] - mu * k;
        acc_of sum_gz = 0, sum_gzuh = 0;
        FOR_CHANNEL_NEURONS(L, c, i,  // pass A
                            "omp simd reduction(+ : sum_gz, sum_gzuh)") {
          const T u = gt[i], thr = pth[i], v0k = pr[i], ak = pa[i];
          const T gy = gyt[i];
          const T z = u * k + c0;
          const T sgk = surrogate<KIND>(p, z - thr);
          const T s = z > thr ? T(1) : T(0);
          const T gv = v[i] + m.v * gy;
          const T gr = ak * gv + m.r * gy;
          const T ds = HARD ? v0k - z : -thr;
          const T gs = m.s * gy + kd * gr * ds;
          const T gssg = gs * sgk;
          const T g = (HARD ? gr * (T(1) - s) : gr) + gssg + m.u * gy;
          gz[i] = g;
          sum_gz += g;
          sum_gzuh += static_cast<acc_of>(g) * ((u - mu) * is);
          if constexpr (PARAMS) {
            gap[i] += gv * reset_of<HARD>(z, thr, v0k);
            gbp[i] += gv;
            gthp[i] += -gssg - (HARD ? T(0) : gr * s) - m.th * gy;
            gv0p[i] += HARD ? gr * s : T(0);
          }
        }
        sum_w += sum_gzuh;
        sum_b += sum_gz;
        const T mean_gz = batch_stats ? static_cast<T>(sum_gz / count) : T(0);
        const T mean_gzuh =
            batch_stats ? static_cast<T>(sum_gzuh / count) : T(0);
        each_neuron(L, c, [&](int64_t i) {  // pass B
          const T uh = (gt[i] - mu) * is;
          const T gu = k * (gz[i] - mean_gz - uh * mean_gzuh);
          gt[i] = gu;
          v[i] = gu;
        });
      }
      gwp[c] = static_cast<T>(sum_w);
      gbiasp[c] = static_cast<T>(sum_b);
    }
  });
}

Layout layout_of(const torch::Tensor& x) {
  return Layout{x.size(0), x.size(1), x.size(2), x.size(3)};
}

}  // namespace

// x: [T, B, C, S]; mean/invstd: [T, C] (read when batch_stats is false).
std::vector<torch::Tensor> lif_bn_forward(
    torch::Tensor x, torch::Tensor alpha, torch::Tensor beta,
    torch::Tensor theta, torch::Tensor v0, torch::Tensor weight,
    torch::Tensor bias, torch::Tensor mean, torch::Tensor invstd,
    bool batch_stats, double eps, bool hard, int64_t out_mode) {
  const Layout L = layout_of(x);
  auto y = torch::empty_like(x);
  auto var = torch::zeros({L.steps, L.channels}, x.options());
  if (batch_stats) {
    mean = torch::empty({L.steps, L.channels}, x.options());
    invstd = torch::empty({L.steps, L.channels}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_bn_forward", [&] {
    with_mode(out_mode, [&](auto mode) {
      if (hard) {
        bn_forward_impl<scalar_t, true, decltype(mode)::value>(
            x, L, alpha, beta, theta, v0, weight, bias, batch_stats, eps, y,
            mean, invstd, var);
      } else {
        bn_forward_impl<scalar_t, false, decltype(mode)::value>(
            x, L, alpha, beta, theta, v0, weight, bias, batch_stats, eps, y,
            mean, invstd, var);
      }
    });
  });
  return {y, mean, invstd, var};
}

std::vector<torch::Tensor> lif_bn_backward(
    torch::Tensor x, torch::Tensor grad_y, torch::Tensor alpha,
    torch::Tensor beta, torch::Tensor theta, torch::Tensor v0,
    torch::Tensor weight, torch::Tensor bias, torch::Tensor mean,
    torch::Tensor invstd, bool batch_stats, bool hard, bool keep_ds,
    int64_t out_mode, int64_t kind, double sparam, bool need_params) {
  const Layout L = layout_of(x);
  auto opts = x.options();
  auto gx = torch::empty_like(x);
  auto per_neuron = [&] {
    return need_params ? torch::empty({L.step_size()}, opts)
                       : torch::empty({0}, opts);
  };
  auto ga = per_neuron(), gb = per_neuron(), gth = per_neuron(),
       gv0 = per_neuron();
  auto gw = torch::empty({L.channels}, opts);
  auto gbias = torch::empty({L.channels}, opts);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_bn_backward", [&] {
    with_kind(kind, [&](auto k) {
      // hard reset and parameter gradients as template arguments
      auto run = [&](auto hard_c, auto params_c) {
        bn_backward_impl<scalar_t, decltype(k)::value,
                         decltype(hard_c)::value, decltype(params_c)::value>(
            x, L, grad_y, alpha, beta, theta, v0, weight, bias, mean, invstd,
            batch_stats, out_mode, keep_ds, sparam, gx, ga, gb, gth, gv0, gw,
            gbias);
      };
      using yes = std::true_type;
      using no = std::false_type;
      if (hard) {
        need_params ? run(yes(), yes()) : run(yes(), no());
      } else {
        need_params ? run(no(), yes()) : run(no(), no());
      }
    });
  });
  return {gx, ga, gb, gth, gv0, gw, gbias};
}
'''


#: Flags of every build: ``-ffp-contract=off`` keeps the loop form's
#: rounding (no fused multiply-add), ``-fno-trapping-math`` lets the selects
#: vectorise.
_BASE_CFLAGS = ('-O3', '-ffp-contract=off', '-fno-trapping-math', '-fopenmp')
#: Tried first: the widest vector instructions of this CPU (AVX2 where it
#: has them). The binary then runs only on CPUs like this one, so the build
#: key holds the CPU's feature flags; a compiler that refuses the flag gets
#: the portable build instead.
_NATIVE_CFLAGS = ('-march=native', )
_LDFLAGS = ('-fopenmp', )
#: Seconds to wait for another process's build of the same kernel.
LOCK_TIMEOUT = 900


def _log(message, level=logging.INFO):
    """To the console (and the run's log file when a runner is active):
    mmengine's current logger always has a console handler, unlike this
    module's own logger."""
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


@functools.lru_cache(maxsize=None)
def _tool_identity(program, search_path):
    """``'<path> -> <real path>: <first line of --version>'`` of
    ``program`` as found on ``search_path``, or ``'<program>: not found'``.
    Cached per PATH value: the answer changes only with it."""
    found = shutil.which(program, path=search_path)
    if found is None:
        return f'{program}: not found'
    try:
        done = subprocess.run([found, '--version'], capture_output=True,
                              text=True, timeout=60, check=False)
        lines = (done.stdout or done.stderr).strip().splitlines()
        version = lines[0] if lines else f'exit status {done.returncode}'
    except (OSError, subprocess.SubprocessError) as err:
        version = f'no version ({type(err).__name__})'
    return f'{found} -> {os.path.realpath(found)}: {version}'


def _cpu_features():
    """The CPU's architecture and feature flags (what ``-march=native``
    compiles for)."""
    flags = ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith(('flags', 'Features')):
                    flags = ' '.join(sorted(line.split(':', 1)[1].split()))
                    break
    except OSError:
        flags = platform.processor()
    return f'{platform.machine()} {flags}'


def build_key(source, cflags=_BASE_CFLAGS + _NATIVE_CFLAGS):
    """Everything that changes the compiled kernel, one ``name: value`` per
    line: the source, the flags, torch, the Python ABI and environment, the
    compiler and ninja (path and version, as found on ``PATH`` now), and
    with ``-march=native`` the CPU's features.

    Two builds with different keys get different folders, so two ninjas
    (pip's and the system's, say) never rebuild each other's output.
    """
    import torch
    search_path = os.environ.get('PATH', os.defpath)
    compiler = os.environ.get('CXX', 'c++')  # what torch compiles with
    parts = {
        'source': hashlib.sha1(source.encode()).hexdigest(),
        'cflags': ' '.join(cflags),
        'ldflags': ' '.join(_LDFLAGS),
        'torch': torch.__version__,
        'python': (f'{sys.implementation.cache_tag} '
                   f'{sysconfig.get_config_var("EXT_SUFFIX")}'),
        'prefix': sys.prefix,
        'compiler': _tool_identity(compiler, search_path),
        'ninja': _tool_identity('ninja', search_path),
    }
    if any(flag.startswith('-march=native') for flag in cflags):
        parts['cpu'] = _cpu_features()
    return '\n'.join(f'{name}: {value}' for name, value in parts.items())


def build_name(prefix, source, cflags=_BASE_CFLAGS + _NATIVE_CFLAGS):
    """``prefix`` plus a digest of :func:`build_key`: torch caches builds
    by name, so each distinct key gets a folder of its own."""
    key = build_key(source, cflags)
    return f'{prefix}_{hashlib.sha1(key.encode()).hexdigest()[:12]}'


@contextlib.contextmanager
def build_lock(folder, timeout=LOCK_TIMEOUT):
    """Hold an exclusive lock on ``folder`` (created if missing) across
    processes. An OS file lock: the system releases it when its holder
    dies, so a killed build never blocks the next one."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'bidl_build.lock')
    with open(path, 'a+', encoding='utf-8') as handle:
        if fcntl is None:  # no POSIX locks (Windows): torch's own lock only
            yield
            return
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    _log('bidl_train: another process is building the fused '
                         f'LIF kernel in {folder}; waiting for it')
                    announced = True
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f'{path} stayed locked for {timeout} s') from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clear_stale_torch_lock(folder):
    """Remove torch's own ``lock`` file left in ``folder`` by a build that
    was killed: torch would wait for it forever. Only called under
    :func:`build_lock`, so no live process of ours is building there."""
    stale = os.path.join(folder, 'lock')
    if os.path.exists(stale):
        _log(f'bidl_train: removing {stale}, left by an interrupted build',
             logging.WARNING)
        os.remove(stale)


def extensions_root():
    """Where torch keeps compiled extensions: ``TORCH_EXTENSIONS_DIR``, by
    default ``~/.cache/torch_extensions``; each build key has a folder of its
    own below it."""
    from torch.utils.cpp_extension import get_default_build_root
    return os.environ.get('TORCH_EXTENSIONS_DIR') or get_default_build_root()


def _library_path(folder, name):
    """Where torch puts the built module (present once built)."""
    return os.path.join(folder, f'{name}.so' if os.name != 'nt'
                        else f'{name}.pyd')


def _compile(name, source, cflags):
    """Build (or load the finished build of) ``source`` in a folder of its
    own, under :func:`build_lock`, saying so on the console when it
    compiles."""
    from torch.utils.cpp_extension import load_inline
    folder = os.path.join(extensions_root(), name)
    with build_lock(folder):
        _clear_stale_torch_lock(folder)
        fresh = not os.path.exists(_library_path(folder, name))
        if fresh:
            _log('bidl_train: compiling the fused LIF kernel (C++, about a '
                 f'minute, once per environment) in {folder}')
            start = time.monotonic()
        module = load_inline(
            name=name,
            cpp_sources=[source],
            functions=['lif_forward', 'lif_backward', 'lif_bn_forward',
                       'lif_bn_backward'],
            extra_cflags=list(cflags),
            extra_ldflags=list(_LDFLAGS),
            build_directory=folder,
            verbose=False)
        if fresh:
            _log('bidl_train: compiled the fused LIF kernel in '
                 f'{time.monotonic() - start:.0f} s')
    return module


def build_kernel(prefix, source, flag_sets=None):
    """Compile (or load the cached build of) ``source``; None on failure.

    ``flag_sets``: compiler flags to try in turn (by default the native
    build, then the portable one); each gets its own build name,
    ``prefix`` plus a digest of :func:`build_key`. A failure of every one
    (no compiler, no ninja, a compile or link error) is reported as one
    ``RuntimeWarning`` and answered with None, so callers fall back to pure
    PyTorch.
    """
    if flag_sets is None:
        flag_sets = (_BASE_CFLAGS + _NATIVE_CFLAGS, _BASE_CFLAGS)
    error = None
    for cflags in flag_sets:
        try:
            return _compile(build_name(prefix, source, cflags), source,
                            cflags)
        except Exception as err:  # any compiler/ninja/linker problem
            error = err
    lines = str(error).strip().splitlines()
    warnings.warn(
        'bidl_train: could not build the C++ LIF kernel, using the '
        f'pure-PyTorch kernel instead ({type(error).__name__}: '
        f'{lines[-1] if lines else ""}). Set {ENV_VAR}=0 to skip the '
        'attempt.', RuntimeWarning)
    return None


@functools.lru_cache(maxsize=None)
def _cached_build():
    """Build once per process (a failed build is not retried)."""
    source = _SOURCE.replace('BLOCK_SIZE', str(BLOCK))
    return build_kernel('bidl_train_lif_cpu', source)


def load_cpp_kernel():
    """The compiled module, or None (disabled by the environment, or the
    build failed)."""
    if not cpp_enabled():
        return None
    return _cached_build()
