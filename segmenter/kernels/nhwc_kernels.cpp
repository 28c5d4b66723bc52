// Fused NHWC float32 kernels for the selfie models' small-channel layers (no torch headers here).
//
// oneDNN and MKL are tuned for wide layers; at 16-128 channels a depthwise conv or a 1x1 conv is
// a few FMAs per pixel and their per-call set-up, layout checks and separate activation/add passes
// dominate. Each kernel here keeps a tile of output pixels in vector registers, applies bias,
// activation and (1x1 only) the residual add before the one store.
//
// This file is compiled once per instruction set (HOLOCAM_ISA = avx512, avx2, generic), each
// with its own -march; torch_ops.cpp picks one at run time. GCC vector extensions keep the code
// ISA-neutral: the compiler lowers v16/v8 to zmm, ymm or pairs of xmm registers.
#include "nhwc_kernels.h"

#include <algorithm>

namespace holocam {
namespace HOLOCAM_ISA {
namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
template <int NB> struct VecOf { using T = float; };
template <> struct VecOf<16> { using T = v16; };
template <> struct VecOf<8> { using T = v8; };

template <typename V> inline V load(const float* p) {
  if constexpr (sizeof(V) == sizeof(float)) return *p;
  V v;
  __builtin_memcpy(&v, p, sizeof(V));   // unaligned load
  return v;
}
template <typename V> inline void store(float* p, V v) {
  if constexpr (sizeof(V) == sizeof(float)) *p = v;
  else __builtin_memcpy(p, &v, sizeof(V));
}

// The TFLite fused activations, and HARD_SWISH x * relu6(x + 3) / 6. Written so that NaN and
// infinities come out as torch's clamp gives them (a NaN input stays NaN).
template <int ACT, typename V> inline V activate(V v) {
  const V zero{}, six = zero + 6.f;
  if constexpr (ACT == kRelu) return v < zero ? zero : v;
  if constexpr (ACT == kRelu6) { V t = v < zero ? zero : v; return t > six ? six : t; }
  if constexpr (ACT == kHardSwish) {
    V t = v + 3.f;
    t = t < zero ? zero : t;
    t = t > six ? six : t;
    return v * t * (1.f / 6.f);
  }
  return v;
}

// ---- depthwise -------------------------------------------------------------------------------

// One output pixel, channels [c0, c0 + NB), taps clipped to the input (the zero padding).
template <int NB, int ACT>
inline void dw_border(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                      const float* __restrict r, float* __restrict y, const DepthwiseShape& s, int oy, int ox,
                      int c0) {
  using V = typename VecOf<NB>::T;
  V acc = load<V>(b + c0);
  const int iy0 = oy * s.stride - s.pad_top, ix0 = ox * s.stride - s.pad_left;
  const int ky0 = std::max(0, -iy0), ky1 = std::min(s.kh, s.h - iy0);
  const int kx0 = std::max(0, -ix0), kx1 = std::min(s.kw, s.w - ix0);
  for (int ky = ky0; ky < ky1; ++ky)
    for (int kx = kx0; kx < kx1; ++kx)
      acc += load<V>(x + ((long)(iy0 + ky) * s.w + ix0 + kx) * s.c + c0) *
             load<V>(w + ((long)ky * s.kw + kx) * s.c + c0);
  const long at = ((long)oy * s.out_w + ox) * s.c + c0;
  acc = activate<ACT>(acc);
  if (r != nullptr) acc += load<V>(r + at);
  store(y + at, acc);
}

// PX neighbouring output pixels whose windows lie inside the input: each weight vector is loaded
// once for the PX accumulators.
template <int NB, int PX, int ACT>
inline void dw_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                    const float* __restrict r, float* __restrict y, const DepthwiseShape& s, int oy, int ox,
                    int c0) {
  using V = typename VecOf<NB>::T;
  V acc[PX];
  const V bias = load<V>(b + c0);
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) acc[p] = bias;
  const long step = (long)s.stride * s.c;
  const float* xrow = x + ((long)(oy * s.stride - s.pad_top) * s.w + ox * s.stride - s.pad_left) * s.c + c0;
  for (int ky = 0; ky < s.kh; ++ky, xrow += (long)s.w * s.c) {
    const float* wk = w + (long)ky * s.kw * s.c + c0;
    for (int kx = 0; kx < s.kw; ++kx) {
      const V wv = load<V>(wk + (long)kx * s.c);
      const float* xp = xrow + (long)kx * s.c;
#pragma GCC unroll 8
      for (int p = 0; p < PX; ++p) acc[p] += load<V>(xp + p * step) * wv;
    }
  }
  const long at = ((long)oy * s.out_w + ox) * s.c + c0;
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) {
    V v = activate<ACT>(acc[p]);
    if (r != nullptr) v += load<V>(r + at + (long)p * s.c);
    store(y + at + (long)p * s.c, v);
  }
}

template <int NB, int ACT>
void dw_channels(const float* x, const float* w, const float* b, const float* r, float* y, const DepthwiseShape& s,
                 int c0) {
  constexpr int PX = NB == 8 ? 8 : 4;   // accumulators that stay in registers on AVX2 too
  // Output columns [first, last) whose windows are inside the input horizontally.
  int first = 0;
  while (first < s.out_w && first * s.stride - s.pad_left < 0) ++first;
  int last = s.out_w;
  while (last > first && (last - 1) * s.stride - s.pad_left + s.kw > s.w) --last;
  for (int oy = s.row_begin; oy < s.row_end; ++oy) {
    const int iy0 = oy * s.stride - s.pad_top;
    if (iy0 < 0 || iy0 + s.kh > s.h) {
      for (int ox = 0; ox < s.out_w; ++ox) dw_border<NB, ACT>(x, w, b, r, y, s, oy, ox, c0);
      continue;
    }
    int ox = 0;
    for (; ox < first; ++ox) dw_border<NB, ACT>(x, w, b, r, y, s, oy, ox, c0);
    for (; ox + PX <= last; ox += PX) dw_tile<NB, PX, ACT>(x, w, b, r, y, s, oy, ox, c0);
    for (; ox < last; ++ox) dw_tile<NB, 1, ACT>(x, w, b, r, y, s, oy, ox, c0);
    for (; ox < s.out_w; ++ox) dw_border<NB, ACT>(x, w, b, r, y, s, oy, ox, c0);
  }
}

template <int ACT>
void dw_all(const float* x, const float* w, const float* b, const float* r, float* y, const DepthwiseShape& s) {
  int c0 = 0;
  for (; c0 + 16 <= s.c; c0 += 16) dw_channels<16, ACT>(x, w, b, r, y, s, c0);
  for (; c0 + 8 <= s.c; c0 += 8) dw_channels<8, ACT>(x, w, b, r, y, s, c0);
  for (; c0 < s.c; ++c0) dw_channels<1, ACT>(x, w, b, r, y, s, c0);
}

// ---- pointwise (1x1 conv) ----------------------------------------------------------------------

// y[p, n0:n0+NB] = act(b + x[p, :] @ w[:, n0:n0+NB] (+ r[p, n0:n0+NB])) for PX pixels.
template <int NB, int PX, int ACT, bool RES>
inline void pw_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                    const float* __restrict r, float* __restrict y, long k_in, long n_out, long p0, long n0) {
  using V = typename VecOf<NB>::T;
  V acc[PX];
  const V bias = load<V>(b + n0);
#pragma GCC unroll 16
  for (int p = 0; p < PX; ++p) acc[p] = bias;
  const float* xp = x + p0 * k_in;
  for (long k = 0; k < k_in; ++k) {
    const V wv = load<V>(w + k * n_out + n0);
#pragma GCC unroll 16
    for (int p = 0; p < PX; ++p) acc[p] += xp[p * k_in + k] * wv;
  }
#pragma GCC unroll 16
  for (int p = 0; p < PX; ++p) {
    V v = acc[p];
    if constexpr (RES) v += load<V>(r + (p0 + p) * n_out + n0);
    store(y + (p0 + p) * n_out + n0, activate<ACT>(v));
  }
}

template <int NB, int ACT, bool RES>
void pw_columns(const float* x, const float* w, const float* b, const float* r, float* y,
                long p_begin, long p_end, long k_in, long n_out, long n0) {
  constexpr int PX = NB == 1 ? 4 : 8;
  long p = p_begin;
  for (; p + PX <= p_end; p += PX) pw_tile<NB, PX, ACT, RES>(x, w, b, r, y, k_in, n_out, p, n0);
  for (; p < p_end; ++p) pw_tile<NB, 1, ACT, RES>(x, w, b, r, y, k_in, n_out, p, n0);
}

template <int ACT, bool RES>
void pw_all(const float* x, const float* w, const float* b, const float* r, float* y,
            long p_begin, long p_end, long k_in, long n_out) {
  long n0 = 0;
  for (; n0 + 16 <= n_out; n0 += 16) pw_columns<16, ACT, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out, n0);
  for (; n0 + 8 <= n_out; n0 += 8) pw_columns<8, ACT, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out, n0);
  for (; n0 < n_out; ++n0) pw_columns<1, ACT, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out, n0);
}

template <bool RES>
void pw_dispatch(const float* x, const float* w, const float* b, const float* r, float* y,
                 long p_begin, long p_end, long k_in, long n_out, int act) {
  switch (act) {
    case kRelu: pw_all<kRelu, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out); break;
    case kRelu6: pw_all<kRelu6, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out); break;
    case kHardSwish: pw_all<kHardSwish, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out); break;
    default: pw_all<kNone, RES>(x, w, b, r, y, p_begin, p_end, k_in, n_out); break;
  }
}


// ---- 2x bilinear upsampling (half-pixel centres, edges clamped) ---------------------------------

// Source index pair and weight of the second for output o of an exact 2x upsampling of n: torch's
// align_corners=False rule, src = max(0, (o + 0.5) / 2 - 0.5).
inline void up2_taps(int o, int n, int& i0, int& i1, float& l) {
  const float src = std::max(0.f, (o + 0.5f) * 0.5f - 0.5f);
  i0 = std::min((int)src, n - 1);
  i1 = std::min(i0 + 1, n - 1);
  l = src - (float)i0;
}

template <int NB>
void up2_channels(const float* __restrict x, float* __restrict y, int h, int w, int c, int c0, int row_begin,
                  int row_end) {
  using V = typename VecOf<NB>::T;
  const int out_w = 2 * w;
  for (int oy = row_begin; oy < row_end; ++oy) {
    int y0, y1;
    float ly;
    up2_taps(oy, h, y0, y1, ly);
    const float* r0 = x + (long)y0 * w * c + c0;
    const float* r1 = x + (long)y1 * w * c + c0;
    float* out = y + (long)oy * out_w * c + c0;
    for (int ox = 0; ox < out_w; ++ox) {
      int x0, x1;
      float lx;
      up2_taps(ox, w, x0, x1, lx);
      const V top = load<V>(r0 + (long)x0 * c) * (1.f - lx) + load<V>(r0 + (long)x1 * c) * lx;
      const V bottom = load<V>(r1 + (long)x0 * c) * (1.f - lx) + load<V>(r1 + (long)x1 * c) * lx;
      store(out + (long)ox * c, top * (1.f - ly) + bottom * ly);
    }
  }
}

// ---- dense conv on the uint8 frame (the first layer) --------------------------------------------

// y = act(b + conv(x)) with x the frame NHWC (few channels) and w (kh, kw, cin, cout). The caller
// widens the uint8 frame to float first: each input value is used by ~kh*kw/stride^2 outputs, and a
// float operand is one broadcast-FMA where a byte is three instructions. No padded copy is made.
template <int NB, int ACT>
inline void conv_u8_border(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                           float* __restrict y, const DenseShape& s, int oy, int ox, int n0) {
  using V = typename VecOf<NB>::T;
  const int iy0 = oy * s.stride - s.pad_top, ix0 = ox * s.stride - s.pad_left;
  const int ky0 = std::max(0, -iy0), ky1 = std::min(s.kh, s.h - iy0);
  const int kx0 = std::max(0, -ix0), kx1 = std::min(s.kw, s.w - ix0);
  V acc = load<V>(b + n0);
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* xp = x + ((long)(iy0 + ky) * s.w + ix0 + kx0) * s.cin;
    const float* wp = w + ((long)ky * s.kw + kx0) * s.cin * s.cout + n0;
    const int taps = (kx1 - kx0) * s.cin;
    for (int t = 0; t < taps; ++t) acc += xp[t] * load<V>(wp + (long)t * s.cout);
  }
  store(y + ((long)oy * s.out_w + ox) * s.cout + n0, activate<ACT>(acc));
}

// PX output pixels of one row with windows inside the frame: independent accumulators keep the
// FMA pipeline full and each weight vector is loaded once for all of them.
template <int NB, int PX, int ACT>
inline void conv_u8_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                         float* __restrict y, const DenseShape& s, int oy, int ox, int n0) {
  using V = typename VecOf<NB>::T;
  V acc[PX];
  const V bias = load<V>(b + n0);
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) acc[p] = bias;
  const long step = (long)s.stride * s.cin;
  const int taps = s.kw * s.cin;
  for (int ky = 0; ky < s.kh; ++ky) {
    const float* xp = x + ((long)(oy * s.stride - s.pad_top + ky) * s.w + ox * s.stride - s.pad_left) * s.cin;
    const float* wp = w + (long)ky * taps * s.cout + n0;
    for (int t = 0; t < taps; ++t) {
      const V wv = load<V>(wp + (long)t * s.cout);
#pragma GCC unroll 8
      for (int p = 0; p < PX; ++p) acc[p] += xp[p * step + t] * wv;
    }
  }
  float* yp = y + ((long)oy * s.out_w + ox) * s.cout + n0;
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) store(yp + (long)p * s.cout, activate<ACT>(acc[p]));
}

template <int NB, int ACT>
void conv_u8_channels(const float* x, const float* w, const float* b, float* y, const DenseShape& s,
                      int n0) {
  constexpr int PX = NB == 8 ? 8 : 4;
  int first = 0;
  while (first < s.out_w && first * s.stride - s.pad_left < 0) ++first;
  int last = s.out_w;
  while (last > first && (last - 1) * s.stride - s.pad_left + s.kw > s.w) --last;
  for (int oy = s.row_begin; oy < s.row_end; ++oy) {
    const int iy0 = oy * s.stride - s.pad_top;
    if (iy0 < 0 || iy0 + s.kh > s.h) {
      for (int ox = 0; ox < s.out_w; ++ox) conv_u8_border<NB, ACT>(x, w, b, y, s, oy, ox, n0);
      continue;
    }
    int ox = 0;
    for (; ox < first; ++ox) conv_u8_border<NB, ACT>(x, w, b, y, s, oy, ox, n0);
    for (; ox + PX <= last; ox += PX) conv_u8_tile<NB, PX, ACT>(x, w, b, y, s, oy, ox, n0);
    for (; ox < last; ++ox) conv_u8_tile<NB, 1, ACT>(x, w, b, y, s, oy, ox, n0);
    for (; ox < s.out_w; ++ox) conv_u8_border<NB, ACT>(x, w, b, y, s, oy, ox, n0);
  }
}

template <int ACT>
void conv_u8_all(const float* x, const float* w, const float* b, float* y, const DenseShape& s) {
  int n0 = 0;
  for (; n0 + 16 <= s.cout; n0 += 16) conv_u8_channels<16, ACT>(x, w, b, y, s, n0);
  for (; n0 + 8 <= s.cout; n0 += 8) conv_u8_channels<8, ACT>(x, w, b, y, s, n0);
  for (; n0 < s.cout; ++n0) conv_u8_channels<1, ACT>(x, w, b, y, s, n0);
}

}  // namespace

void upsample2x(const float* x, float* y, int h, int w, int c, int row_begin, int row_end) {
  int c0 = 0;
  for (; c0 + 16 <= c; c0 += 16) up2_channels<16>(x, y, h, w, c, c0, row_begin, row_end);
  for (; c0 + 8 <= c; c0 += 8) up2_channels<8>(x, y, h, w, c, c0, row_begin, row_end);
  for (; c0 < c; ++c0) up2_channels<1>(x, y, h, w, c, c0, row_begin, row_end);
}

void conv_u8(const float* x, const float* w, const float* b, float* y, const DenseShape& s, int act) {
  switch (act) {
    case kRelu: conv_u8_all<kRelu>(x, w, b, y, s); break;
    case kRelu6: conv_u8_all<kRelu6>(x, w, b, y, s); break;
    case kHardSwish: conv_u8_all<kHardSwish>(x, w, b, y, s); break;
    default: conv_u8_all<kNone>(x, w, b, y, s); break;
  }
}

void depthwise(const float* x, const float* w, const float* b, const float* residual, float* y,
               const DepthwiseShape& s, int act) {
  switch (act) {
    case kRelu: dw_all<kRelu>(x, w, b, residual, y, s); break;
    case kRelu6: dw_all<kRelu6>(x, w, b, residual, y, s); break;
    case kHardSwish: dw_all<kHardSwish>(x, w, b, residual, y, s); break;
    default: dw_all<kNone>(x, w, b, residual, y, s); break;
  }
}

void pointwise(const float* x, const float* w, const float* b, const float* residual, float* y,
               long p_begin, long p_end, long k_in, long n_out, int act) {
  if (residual != nullptr) pw_dispatch<true>(x, w, b, residual, y, p_begin, p_end, k_in, n_out, act);
  else pw_dispatch<false>(x, w, b, nullptr, y, p_begin, p_end, k_in, n_out, act);
}

}  // namespace HOLOCAM_ISA
}  // namespace holocam
