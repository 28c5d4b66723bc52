// Fused NHWC float32 kernels for the selfie models' small-channel layers (no torch headers here).
//
// oneDNN and MKL are tuned for wide layers; at 16-128 channels a depthwise conv or a 1x1 conv is
// a few FMAs per pixel and their per-call set-up, layout checks and separate activation/add passes
// dominate. Each kernel keeps a tile of output pixels x channel vectors in registers and applies
// bias, activation and the residual add before the one store.
//
// This file is compiled once per instruction set (HOLOCAM_ISA = avx512, avx2, generic), each with
// its own -march; torch_ops.cpp picks one at run time. Vectors are GCC vector extensions of the
// build's *native* width (16 floats with AVX-512, 8 with AVX2, 4 with SSE2/NEON) and every tile is
// sized for the build's register file (32 or 16 vector registers). A vector wider than the
// machine's registers is split by the compiler into pairs that spill and cannot be passed in
// registers: that is what made an earlier 16-float-everywhere version 3x slower than stock torch
// on AVX2.
#include "nhwc_kernels.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace holocam {
namespace HOLOCAM_ISA {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRegisters = 32;
#elif defined(__AVX__)
constexpr int kLanes = 8;
constexpr int kRegisters = 16;
#elif defined(__aarch64__)
constexpr int kLanes = 4;
constexpr int kRegisters = 32;
#else
constexpr int kLanes = 4;    // SSE2, the x86-64 baseline
constexpr int kRegisters = 16;
#endif

#define HOLOCAM_INLINE inline __attribute__((always_inline))

// Float vectors of L lanes; only L <= kLanes are ever instantiated (the channel tails use the
// narrower ones, then scalars).
template <int L> struct VecOf;
template <> struct VecOf<1> { using T = float; };
template <> struct VecOf<4> { typedef float T __attribute__((vector_size(16))); };
template <> struct VecOf<8> { typedef float T __attribute__((vector_size(32))); };
template <> struct VecOf<16> { typedef float T __attribute__((vector_size(64))); };

template <int L> HOLOCAM_INLINE typename VecOf<L>::T load(const float* p) {
  using V = typename VecOf<L>::T;
  if constexpr (L == 1) return *p;
  V v;
  __builtin_memcpy(&v, p, sizeof(V));   // unaligned load
  return v;
}
template <int L> HOLOCAM_INLINE void store(float* p, typename VecOf<L>::T v) {
  if constexpr (L == 1) *p = v;
  else __builtin_memcpy(p, &v, sizeof(v));
}

// The TFLite fused activations, and HARD_SWISH x * relu6(x + 3) / 6. Written so that NaN and
// infinities come out as torch's clamp gives them (a NaN input stays NaN).
template <int ACT, typename V> HOLOCAM_INLINE V activate(V v) {
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

// Output pixels per tile for NV accumulator vectors each: as many as the register file holds
// next to NV weight vectors and a broadcast, at most 8. AVX-512 (NV = 1): 8, as before.
template <int NV> constexpr int tile_pixels() {
  return std::max(1, std::min(8, (kRegisters - NV - 2) / NV));
}

// Output pixels per tile of the windowed kernels (depthwise, first conv), which reuse nothing but
// the weights across pixels: half the registers for accumulators; 4 for full AVX-512 vectors.
template <int L, int NV> constexpr int window_tile_pixels() {
  if constexpr (L == 16) return 4;
  return tile_pixels<NV>();
}

// Splits `vectors` channel vectors into blocks of 2 (3 when 3 are left, 1 when 1 is left) on
// 16-register machines, single vectors on 32-register ones, and calls f.template operator()<NV>(v0).
template <typename F> HOLOCAM_INLINE void for_vector_blocks(int vectors, F&& f) {
  int v = 0;
  if constexpr (kRegisters >= 32) {
    for (; v < vectors; ++v) f.template operator()<1>(v);
  } else {
    for (; vectors - v >= 4 || vectors - v == 2; v += 2) f.template operator()<2>(v);
    if (vectors - v == 3) { f.template operator()<3>(v); v += 3; }
    if (vectors - v == 1) f.template operator()<1>(v);
  }
}

// Calls f.template operator()<L>(c0, c1) for the channel tail [c0, c) in vectors narrower than the
// native one, then scalars.
template <typename F> HOLOCAM_INLINE void for_tail_channels(int c0, int c, F&& f) {
  if constexpr (kLanes >= 16) if (c - c0 >= 8) { f.template operator()<8>(c0); c0 += 8; }
  if constexpr (kLanes >= 8) if (c - c0 >= 4) { f.template operator()<4>(c0); c0 += 4; }
  for (; c0 < c; ++c0) f.template operator()<1>(c0);
}

// Calls f.template operator()<N>() for the N = n < MAX leftover pixels of a row in one tile, so
// they keep several accumulator chains instead of running one latency-bound pixel at a time.
template <int MAX, typename F> HOLOCAM_INLINE void tail_tile(int n, F&& f) {
  if constexpr (MAX > 1) {
    if (n == MAX - 1) f.template operator()<MAX - 1>();
    else tail_tile<MAX - 1>(n, f);
  }
}

// First and one-past-last output columns whose windows lie inside the input horizontally.
inline void interior_columns(int out_w, int w, int kw, int stride, int pad_left, int& first, int& last) {
  first = 0;
  while (first < out_w && first * stride - pad_left < 0) ++first;
  last = out_w;
  while (last > first && (last - 1) * stride - pad_left + kw > w) --last;
}

// The output rows [s.row_begin, s.row_end) of a windowed kernel (depthwise, first conv): pixels
// whose window crosses the input's edge go to border(oy, ox) one at a time, the others to
// tile.template operator()<N>(oy, ox) in runs of PX (and one shorter run for a row's leftovers).
template <int PX, typename Shape, typename Border, typename Tile>
HOLOCAM_INLINE void windowed_rows(const Shape& s, Border&& border, Tile&& tile) {
  int first, last;
  interior_columns(s.out_w, s.w, s.kw, s.stride, s.pad_left, first, last);
  for (int oy = s.row_begin; oy < s.row_end; ++oy) {
    const int iy0 = oy * s.stride - s.pad_top;
    if (iy0 < 0 || iy0 + s.kh > s.h) {
      for (int ox = 0; ox < s.out_w; ++ox) border(oy, ox);
      continue;
    }
    int ox = 0;
    for (; ox < first; ++ox) border(oy, ox);
    for (; ox + PX <= last; ox += PX) tile.template operator()<PX>(oy, ox);
    tail_tile<PX>(last - ox, [&]<int N>() { tile.template operator()<N>(oy, ox); });
    for (ox = last; ox < s.out_w; ++ox) border(oy, ox);
  }
}

// Every accumulator of a PX x NV tile starts from the bias of its channels.
template <int L, int NV, int PX>
HOLOCAM_INLINE void start_from_bias(typename VecOf<L>::T (&acc)[PX][NV], const float* b) {
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const auto bias = load<L>(b + v * L);
#pragma GCC unroll 8
    for (int p = 0; p < PX; ++p) acc[p][v] = bias;
  }
}

// ---- depthwise -------------------------------------------------------------------------------

// One output pixel, channels [c0, c0 + L), taps clipped to the input (the zero padding).
template <int L, int ACT>
HOLOCAM_INLINE void dw_border(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                              const float* __restrict r, float* __restrict y, const DepthwiseShape& s, int oy,
                              int ox, int c0) {
  auto acc = load<L>(b + c0);
  const int iy0 = oy * s.stride - s.pad_top, ix0 = ox * s.stride - s.pad_left;
  const int ky0 = std::max(0, -iy0), ky1 = std::min(s.kh, s.h - iy0);
  const int kx0 = std::max(0, -ix0), kx1 = std::min(s.kw, s.w - ix0);
  for (int ky = ky0; ky < ky1; ++ky)
    for (int kx = kx0; kx < kx1; ++kx)
      acc += load<L>(x + ((long)(iy0 + ky) * s.w + ix0 + kx) * s.c + c0) *
             load<L>(w + ((long)ky * s.kw + kx) * s.c + c0);
  const long at = ((long)oy * s.out_w + ox) * s.c + c0;
  acc = activate<ACT>(acc);
  if (r != nullptr) acc += load<L>(r + at);
  store<L>(y + at, acc);
}

// PX neighbouring output pixels x NV vectors of L channels, windows inside the input: each weight
// vector is loaded once for the PX pixels.
template <int L, int NV, int PX, int ACT>
HOLOCAM_INLINE void dw_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                            const float* __restrict r, float* __restrict y, const DepthwiseShape& s, int oy,
                            int ox, int c0) {
  using V = typename VecOf<L>::T;
  V acc[PX][NV];
  start_from_bias<L, NV, PX>(acc, b + c0);
  const long step = (long)s.stride * s.c;
  const float* xrow = x + ((long)(oy * s.stride - s.pad_top) * s.w + ox * s.stride - s.pad_left) * s.c + c0;
  for (int ky = 0; ky < s.kh; ++ky, xrow += (long)s.w * s.c) {
    const float* wk = w + (long)ky * s.kw * s.c + c0;
    for (int kx = 0; kx < s.kw; ++kx) {
      const float* xp = xrow + (long)kx * s.c;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        const V wv = load<L>(wk + (long)kx * s.c + v * L);
#pragma GCC unroll 8
        for (int p = 0; p < PX; ++p) acc[p][v] += load<L>(xp + p * step + v * L) * wv;
      }
    }
  }
  const long at = ((long)oy * s.out_w + ox) * s.c + c0;
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      V out = activate<ACT>(acc[p][v]);
      const long o = at + (long)p * s.c + v * L;
      if (r != nullptr) out += load<L>(r + o);
      store<L>(y + o, out);
    }
  }
}

// Every output row of the call for channels [c0, c0 + NV * L).
template <int L, int NV, int ACT>
void dw_channels(const float* x, const float* w, const float* b, const float* r, float* y, const DepthwiseShape& s,
                 int c0) {
  windowed_rows<window_tile_pixels<L, NV>()>(
      s, [&](int oy, int ox) {
        for (int v = 0; v < NV; ++v) dw_border<L, ACT>(x, w, b, r, y, s, oy, ox, c0 + v * L);
      },
      [&]<int N>(int oy, int ox) { dw_tile<L, NV, N, ACT>(x, w, b, r, y, s, oy, ox, c0); });
}

template <int ACT>
void dw_blocks(const float* x, const float* w, const float* b, const float* r, float* y, const DepthwiseShape& s) {
  const int vectors = s.c / kLanes;
  for_vector_blocks(vectors, [&]<int NV>(int v0) { dw_channels<kLanes, NV, ACT>(x, w, b, r, y, s, v0 * kLanes); });
  for_tail_channels(vectors * kLanes, s.c, [&]<int L>(int c0) { dw_channels<L, 1, ACT>(x, w, b, r, y, s, c0); });
}

// On small maps (5x5 windows on 16x16) up to half the outputs touch the zero padding, and a border
// pixel runs one accumulator chain per vector, latency-bound. There the rows of this call are
// copied once into a zero-padded buffer, so every output takes the tiled path; on large maps the
// border is a few percent and the copy would cost more than it saves.
template <int ACT>
void dw_all(const float* x, const float* w, const float* b, const float* r, float* y, const DepthwiseShape& s) {
  const int rows = s.row_end - s.row_begin;
  int first, last;
  interior_columns(s.out_w, s.w, s.kw, s.stride, s.pad_left, first, last);
  int inner_rows = 0;
  for (int oy = s.row_begin; oy < s.row_end; ++oy)
    inner_rows += (oy * s.stride - s.pad_top >= 0 && oy * s.stride - s.pad_top + s.kh <= s.h);
  const long outputs = (long)rows * s.out_w, border = outputs - (long)inner_rows * (last - first);
  if (rows <= 0 || border * 8 <= outputs) {
    dw_blocks<ACT>(x, w, b, r, y, s);
    return;
  }
  const int iy_begin = s.row_begin * s.stride - s.pad_top;
  const int ph = (rows - 1) * s.stride + s.kh, pw = (s.out_w - 1) * s.stride + s.kw;
  const long row_len = (long)pw * s.c;
  std::vector<float> padded((long)ph * row_len);
  for (int py = 0; py < ph; ++py) {
    float* dst = padded.data() + py * row_len;
    const int iy = iy_begin + py;
    if (iy < 0 || iy >= s.h) {
      std::fill(dst, dst + row_len, 0.f);
      continue;
    }
    const int left = std::min(pw, s.pad_left), copied = std::max(0, std::min(s.w, pw - left));
    std::fill(dst, dst + (long)left * s.c, 0.f);
    __builtin_memcpy(dst + (long)left * s.c, x + (long)iy * s.w * s.c, sizeof(float) * copied * s.c);
    std::fill(dst + (long)(left + copied) * s.c, dst + row_len, 0.f);
  }
  DepthwiseShape p = s;
  p.h = ph;
  p.w = pw;
  p.pad_top = p.pad_left = 0;
  p.row_begin = 0;
  p.row_end = rows;
  const long skip = (long)s.row_begin * s.out_w * s.c;   // the output (and residual) rows of this call
  dw_blocks<ACT>(padded.data(), w, b, r != nullptr ? r + skip : nullptr, y + skip, p);
}

// ---- pointwise (1x1 conv) ----------------------------------------------------------------------

// y[p, n0:n0+NV*L] = act(b + x[p, :] @ w[:, n0:n0+NV*L] (+ r)) for PX pixels from p0.
template <int L, int NV, int PX, int ACT, bool RES>
HOLOCAM_INLINE void pw_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                            const float* __restrict r, float* __restrict y, long k_in, long n_out, long p0,
                            long n0) {
  using V = typename VecOf<L>::T;
  V acc[PX][NV];
  start_from_bias<L, NV, PX>(acc, b + n0);
  const float* xp = x + p0 * k_in;
  for (long k = 0; k < k_in; ++k) {
    V wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) wv[v] = load<L>(w + k * n_out + n0 + v * L);
#pragma GCC unroll 8
    for (int p = 0; p < PX; ++p) {
      const float xv = xp[p * k_in + k];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[p][v] += xv * wv[v];
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      V out = acc[p][v];
      const long o = (p0 + p) * n_out + n0 + v * L;
      if constexpr (RES) out += load<L>(r + o);
      store<L>(y + o, activate<ACT>(out));
    }
  }
}

// Pixels [p_begin, p_end) for one block of output columns.
template <int L, int NV, int ACT, bool RES>
void pw_columns(const float* x, const float* w, const float* b, const float* r, float* y, long p_begin, long p_end,
                long k_in, long n_out, long n0) {
  constexpr int PX = tile_pixels<NV>();
  long p = p_begin;
  for (; p + PX <= p_end; p += PX) pw_tile<L, NV, PX, ACT, RES>(x, w, b, r, y, k_in, n_out, p, n0);
  tail_tile<PX>((int)(p_end - p), [&]<int N>() { pw_tile<L, NV, N, ACT, RES>(x, w, b, r, y, k_in, n_out, p, n0); });
}

// Pixels in chunks small enough that their inputs stay in L1 while every column block reads them.
template <int ACT, bool RES>
void pw_all(const float* x, const float* w, const float* b, const float* r, float* y, long p_begin, long p_end,
            long k_in, long n_out) {
  const int vectors = (int)(n_out / kLanes);
  const long chunk = std::max<long>(8, 8192 / std::max<long>(1, k_in)) / 8 * 8;
  for (long q = p_begin; q < p_end; q += chunk) {
    const long q_end = std::min(p_end, q + chunk);
    for_vector_blocks(vectors, [&]<int NV>(int v0) {
      pw_columns<kLanes, NV, ACT, RES>(x, w, b, r, y, q, q_end, k_in, n_out, (long)v0 * kLanes);
    });
    for_tail_channels(vectors * kLanes, (int)n_out, [&]<int L>(int n0) {
      pw_columns<L, 1, ACT, RES>(x, w, b, r, y, q, q_end, k_in, n_out, n0);
    });
  }
}

template <bool RES>
void pw_dispatch(const float* x, const float* w, const float* b, const float* r, float* y, long p_begin, long p_end,
                 long k_in, long n_out, int act) {
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

// out = a * (1 - l) + b * l over n floats, in native vectors, then narrower ones, then scalars.
inline void blend(const float* __restrict a, const float* __restrict b, float* __restrict out, long n, float l) {
  const float k = 1.f - l;
  long i = 0;
  for (; i + kLanes <= n; i += kLanes) store<kLanes>(out + i, load<kLanes>(a + i) * k + load<kLanes>(b + i) * l);
  for (; i < n; ++i) out[i] = a[i] * k + b[i] * l;
}

// Each output row: the two source rows blended vertically into `row` (w * c contiguous floats, so
// the whole row is one vector loop), then every output pixel from two neighbours of `row`; the
// horizontal taps of an exact 2x are fixed: 0.25 / 0.75 between neighbours, copies at the edges.
void up2_rows(const float* __restrict x, float* __restrict y, int h, int w, int c, int row_begin, int row_end) {
  const long row_len = (long)w * c, out_row = 2 * row_len;
  std::vector<float> row(row_len);
  for (int oy = row_begin; oy < row_end; ++oy) {
    int y0, y1;
    float ly;
    up2_taps(oy, h, y0, y1, ly);
    blend(x + y0 * row_len, x + y1 * row_len, row.data(), row_len, ly);
    float* out = y + oy * out_row;
    __builtin_memcpy(out, row.data(), sizeof(float) * c);                                 // ox = 0
    for (int i = 0; i + 1 < w; ++i) {
      const float* a = row.data() + (long)i * c;
      blend(a, a + c, out + (2L * i + 1) * c, c, 0.25f);
      blend(a, a + c, out + (2L * i + 2) * c, c, 0.75f);
    }
    __builtin_memcpy(out + (out_row - c), row.data() + (row_len - c), sizeof(float) * c);   // ox = 2w - 1
  }
}

// ---- dense conv on the uint8 frame (the first layer) --------------------------------------------

// y = act(b + conv(x)) with x the frame NHWC (few channels) and w (kh, kw, cin, cout). The caller
// widens the uint8 frame to float first: each input value is used by ~kh*kw/stride^2 outputs, and a
// float operand is one broadcast-FMA where a byte is three instructions. No padded copy is made.
template <int L, int ACT>
HOLOCAM_INLINE void conv_u8_border(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                                   float* __restrict y, const DenseShape& s, int oy, int ox, int n0) {
  const int iy0 = oy * s.stride - s.pad_top, ix0 = ox * s.stride - s.pad_left;
  const int ky0 = std::max(0, -iy0), ky1 = std::min(s.kh, s.h - iy0);
  const int kx0 = std::max(0, -ix0), kx1 = std::min(s.kw, s.w - ix0);
  auto acc = load<L>(b + n0);
  for (int ky = ky0; ky < ky1; ++ky) {
    const float* xp = x + ((long)(iy0 + ky) * s.w + ix0 + kx0) * s.cin;
    const float* wp = w + ((long)ky * s.kw + kx0) * s.cin * s.cout + n0;
    const int taps = (kx1 - kx0) * s.cin;
    for (int t = 0; t < taps; ++t) acc += xp[t] * load<L>(wp + (long)t * s.cout);
  }
  store<L>(y + ((long)oy * s.out_w + ox) * s.cout + n0, activate<ACT>(acc));
}

// PX output pixels of one row x NV vectors of output channels, windows inside the frame:
// independent accumulators keep the FMA pipeline full and each weight vector is loaded once.
template <int L, int NV, int PX, int ACT>
HOLOCAM_INLINE void conv_u8_tile(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                                 float* __restrict y, const DenseShape& s, int oy, int ox, int n0) {
  using V = typename VecOf<L>::T;
  V acc[PX][NV];
  start_from_bias<L, NV, PX>(acc, b + n0);
  const long step = (long)s.stride * s.cin;
  const int taps = s.kw * s.cin;
  for (int ky = 0; ky < s.kh; ++ky) {
    const float* xp = x + ((long)(oy * s.stride - s.pad_top + ky) * s.w + ox * s.stride - s.pad_left) * s.cin;
    const float* wp = w + (long)ky * taps * s.cout + n0;
    for (int t = 0; t < taps; ++t) {
      V wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = load<L>(wp + (long)t * s.cout + v * L);
#pragma GCC unroll 8
      for (int p = 0; p < PX; ++p) {
        const float xv = xp[p * step + t];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[p][v] += xv * wv[v];
      }
    }
  }
  float* yp = y + ((long)oy * s.out_w + ox) * s.cout + n0;
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) store<L>(yp + (long)p * s.cout + v * L, activate<ACT>(acc[p][v]));
}

template <int L, int NV, int ACT>
void conv_u8_channels(const float* x, const float* w, const float* b, float* y, const DenseShape& s, int n0) {
  windowed_rows<window_tile_pixels<L, NV>()>(
      s, [&](int oy, int ox) {
        for (int v = 0; v < NV; ++v) conv_u8_border<L, ACT>(x, w, b, y, s, oy, ox, n0 + v * L);
      },
      [&]<int N>(int oy, int ox) { conv_u8_tile<L, NV, N, ACT>(x, w, b, y, s, oy, ox, n0); });
}

template <int ACT>
void conv_u8_all(const float* x, const float* w, const float* b, float* y, const DenseShape& s) {
  const int vectors = s.cout / kLanes;
  for_vector_blocks(vectors, [&]<int NV>(int v0) { conv_u8_channels<kLanes, NV, ACT>(x, w, b, y, s, v0 * kLanes); });
  for_tail_channels(vectors * kLanes, s.cout, [&]<int L>(int n0) { conv_u8_channels<L, 1, ACT>(x, w, b, y, s, n0); });
}

// exp(v) on float vectors: 2^n p(r), r = v - n ln2 in [-ln2/2, ln2/2], with Cephes' expf
// polynomial (within 2 ulp of expf; inputs clamped to [-87, 88], where the logistic is 0 or 1 in
// float anyway). GCC vectorises no expf without -ffast-math, and a scalar expf per mask pixel
// costs more than the whole transposed conv.
template <typename V> HOLOCAM_INLINE V exp_vec(V v) {
  typedef int I __attribute__((vector_size(sizeof(V))));
  const V hi = V{} + 88.f, lo = V{} - 87.f;
  v = v > hi ? hi : v;
  v = v < lo ? lo : v;
  const V z = v * 1.44269504088896341f + 0.5f;
  V n = __builtin_convertvector(__builtin_convertvector(z, I), V);   // truncates; floor below
  n = n > z ? n - 1.f : n;
  const V r = v - n * 0.693359375f + n * 2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  V scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace

// ---- the mask head: transposed conv with kernel == stride, then the logistic ------------------

// Input rows [row_begin, row_end) of x (h, w, c) NHWC; w (c, taps) with the taps in (ky, kx, o)
// order, b (taps); y (o, h s, w s) probabilities. A transposed conv whose kernel is its stride is a
// 1x1 conv to the taps (the pointwise tiles) and a depth-to-space; the logistic runs on the taps
// in between, vectorised. torch ran it as a GEMM, a separate sigmoid and a permute copy.
void mask_head(const float* __restrict x, const float* __restrict w, const float* __restrict b, float* __restrict y,
               int h, int wd, int c, int stride, int taps, int row_begin, int row_end) {
  using V = typename VecOf<kLanes>::T;
  const int outs = taps / (stride * stride);
  const long pixels = (long)(row_end - row_begin) * wd, n = pixels * taps;
  const long ow = (long)wd * stride, oh = (long)h * stride;
  // the taps of every pixel, rounded up to whole vectors (the zero padding is never copied out)
  const long whole = (n + kLanes - 1) / kLanes * kLanes;
  auto t = std::make_unique_for_overwrite<float[]>((size_t)whole);
  std::fill(t.get() + n, t.get() + whole, 0.f);
  pw_all<kNone, false>(x + (long)row_begin * wd * c, w, b, nullptr, t.get(), 0, pixels, c, taps);
  for (long i = 0; i < n; i += kLanes) store<kLanes>(&t[i], 1.f / (1.f + exp_vec(-load<kLanes>(&t[i]))));
  for (int iy = row_begin; iy < row_end; ++iy)
    for (int o = 0; o < outs; ++o)
      for (int ky = 0; ky < stride; ++ky) {
        float* out = y + ((long)o * oh + (long)iy * stride + ky) * ow;
        const float* src = &t[(size_t)(iy - row_begin) * wd * taps + (size_t)ky * stride * outs + o];
        if (outs == 1 && stride == 2) {          // the selfie models: a pair of floats per pixel
          for (int ix = 0; ix < wd; ++ix) __builtin_memcpy(out + 2L * ix, src + (long)ix * taps, 2 * sizeof(float));
          continue;
        }
        for (int ix = 0; ix < wd; ++ix)
          for (int kx = 0; kx < stride; ++kx) out[(long)ix * stride + kx] = src[(long)ix * taps + (long)kx * outs];
      }
}

// ---- squeeze-excite gate (global mean -> 1x1 conv [-> relu] -> 1x1 conv -> sigmoid) -------------

// Eight tiny ops on a vector: a few microseconds of arithmetic but ~40 us of op dispatch per block
// in torch; here one call.
// With x2 the gate is that of x + x2 (the decoder's skip ADD, read here instead of materialised):
// each sum is rounded as the ADD rounds it, so the gate is the same to the bit.
void squeeze_excite(const float* __restrict x, const float* __restrict x2, long pixels, int c,
             const float* __restrict w1, const float* __restrict b1, int m, int act1, const float* __restrict w2,
             const float* __restrict b2, float* __restrict gate) {
  std::vector<float> mean(c, 0.f), hidden(b1, b1 + m);
  if (x2 == nullptr) {
    for (long p = 0; p < pixels; ++p) {
      const float* row = x + p * c;
      for (int i = 0; i < c; ++i) mean[i] += row[i];
    }
  } else {
    for (long p = 0; p < pixels; ++p) {
      const float *row = x + p * c, *row2 = x2 + p * c;
      for (int i = 0; i < c; ++i) mean[i] += row[i] + row2[i];
    }
  }
  const float scale = 1.f / (float)pixels;
  for (int i = 0; i < c; ++i) mean[i] *= scale;
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < m; ++j) hidden[j] += mean[i] * w1[(long)i * m + j];
  if (act1 == kRelu)
    for (int j = 0; j < m; ++j) hidden[j] = hidden[j] < 0.f ? 0.f : hidden[j];
  for (int k = 0; k < c; ++k) gate[k] = b2[k];
  for (int j = 0; j < m; ++j)
    for (int k = 0; k < c; ++k) gate[k] += hidden[j] * w2[(long)j * c + k];
  for (int k = 0; k < c; ++k) gate[k] = 1.f / (1.f + std::exp(-gate[k]));
}

void upsample2x(const float* x, float* y, int h, int w, int c, int row_begin, int row_end) {
  up2_rows(x, y, h, w, c, row_begin, row_end);
}

// out = y + x * gate (per channel), NHWC pixels [p_begin, p_end): torch.addcmul(y, x, gate) in one
// pass (aten's broadcasting path takes ~3x longer at the decoder's widths). ISO C++ does not
// contract the multiply-add, so the sums round as aten's do.
void gated_add(const float* __restrict x, const float* __restrict gate, const float* __restrict y,
               float* __restrict out, long p_begin, long p_end, int c) {
  for (long p = p_begin; p < p_end; ++p) {
    const float *xr = x + p * c, *yr = y + p * c;
    float* o = out + p * c;
    for (int i = 0; i < c; ++i) o[i] = yr[i] + xr[i] * gate[i];
  }
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
