// torch.ops.holocam.*: the fused NHWC kernels as PyTorch operators, so the traced TorchScript
// graph of the selfie models calls them like any aten op. Checks every argument (a bad call raises
// a RuntimeError, never reads out of bounds) and picks the instruction set once per process.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "nhwc_kernels.h"

namespace holocam {
namespace {

struct Kernels {
  const char* isa;
  decltype(&generic::depthwise) depthwise;
  decltype(&generic::pointwise) pointwise;
  decltype(&generic::upsample2x) upsample2x;
  decltype(&generic::conv_u8) conv_u8;
  decltype(&generic::squeeze_excite) squeeze_excite;
  decltype(&generic::mask_head) mask_head;
  decltype(&generic::gated_add) gated_add;
};

#define HOLOCAM_KERNELS_OF(isa) \
  Kernels{#isa, &isa::depthwise, &isa::pointwise, &isa::upsample2x, &isa::conv_u8, &isa::squeeze_excite, \
          &isa::mask_head, &isa::gated_add}

// The best build this CPU runs, or the one HOLOCAM_KERNELS_ISA names when the CPU can run it
// (tests use that to exercise every build on one machine).
Kernels pick() {
  const char* wanted = std::getenv("HOLOCAM_KERNELS_ISA");
  const std::string want = wanted ? wanted : "";
  const Kernels generic_build = HOLOCAM_KERNELS_OF(generic);
#if defined(HOLOCAM_X86_VARIANTS)
  __builtin_cpu_init();
  // x86-64-v4 (what -march=x86-64-v4 may use) and x86-64-v3.
  const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi2");
  const Kernels avx512_build = HOLOCAM_KERNELS_OF(avx512);
  const Kernels avx2_build = HOLOCAM_KERNELS_OF(avx2);
  if (want == "generic") return generic_build;
  if (want == "avx2" && v3) return avx2_build;
  if ((want.empty() || want == "avx512") && v4) return avx512_build;
  if (v3 && want != "avx512") return avx2_build;
#endif
  return generic_build;
}

const Kernels& kernels() {
  static const Kernels k = pick();
  return k;
}

// Rows per task: at least ~32k output values, so small maps run on one thread (a split costs more
// than it saves there) and large ones use every torch thread (torch.set_num_threads).
int64_t grain_rows(int64_t row_values) { return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, row_values)); }

void check_nhwc(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, op, ": ", name, " must be a float32 CPU tensor");
  TORCH_CHECK(t.dim() == 4 && t.size(0) == 1, op, ": ", name, " must be (1, C, H, W), got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), op, ": ", name,
              " must be channels_last (NHWC memory)");
}

void check_dense(const at::Tensor& t, const char* op, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == dim && t.is_contiguous(),
              op, ": ", name, " must be a contiguous float32 CPU tensor with ", dim, " dims, got ", t.sizes());
}

// Output rows [0, out_h) split over torch's threads; `run(rows)` computes the rows its shape names.
template <typename Shape, typename Run>
void parallel_rows(const Shape& shape, int64_t out_h, int64_t row_values, Run run) {
  at::parallel_for(0, out_h, grain_rows(row_values), [&](int64_t begin, int64_t end) {
    Shape rows = shape;
    rows.row_begin = (int)begin;
    rows.row_end = (int)end;
    run(rows);
  });
}

// The optional residual added before the store (or another map read beside the input: `name`),
// checked against the map y of the same shape; nullptr without one.
const float* residual_data(const std::optional<at::Tensor>& residual, const at::Tensor& y, const char* op,
                           const char* name = "residual") {
  if (!residual.has_value()) return nullptr;
  check_nhwc(*residual, op, name);
  TORCH_CHECK(residual->sizes() == y.sizes(), op, ": ", name, " ", residual->sizes(), " is not the shape ",
              y.sizes(), " of the map it goes with");
  return residual->const_data_ptr<float>();
}

at::Tensor depthwise(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride,
                     int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t act,
                     const std::optional<at::Tensor>& residual) {
  check_nhwc(x, "holocam::depthwise", "input");
  check_dense(w, "holocam::depthwise", "weight (kh, kw, C)", 3);
  check_dense(b, "holocam::depthwise", "bias", 1);
  const int64_t c = x.size(1);
  TORCH_CHECK(w.size(2) == c && b.size(0) == c, "holocam::depthwise: weight ", w.sizes(), " and bias ",
              b.sizes(), " do not match ", c, " channels");
  TORCH_CHECK(stride >= 1 && pad_top >= 0 && pad_left >= 0 && out_h >= 1 && out_w >= 1,
              "holocam::depthwise: stride, padding or output size out of range");
  TORCH_CHECK(act >= kNone && act <= kHardSwish, "holocam::depthwise: unknown activation ", act);
  at::Tensor y = at::empty({1, c, out_h, out_w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* r = residual_data(residual, y, "holocam::depthwise");
  const DepthwiseShape shape{(int)x.size(2), (int)x.size(3), (int)c, (int)w.size(0), (int)w.size(1), (int)stride,
                             (int)pad_top, (int)pad_left, (int)out_h, (int)out_w, 0, (int)out_h};
  const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  parallel_rows(shape, out_h, out_w * c,
                [&](const DepthwiseShape& rows) { kernels().depthwise(xp, wp, bp, r, yp, rows, (int)act); });
  return y;
}

at::Tensor upsample2x(const at::Tensor& x) {
  check_nhwc(x, "holocam::upsample2x", "input");
  at::Tensor y = at::empty({1, x.size(1), 2 * x.size(2), 2 * x.size(3)},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  const int h = (int)x.size(2), w = (int)x.size(3), c = (int)x.size(1);
  at::parallel_for(0, 2 * h, grain_rows(2 * w * c), [&](int64_t begin, int64_t end) {
    kernels().upsample2x(xp, yp, h, w, c, (int)begin, (int)end);
  });
  return y;
}

at::Tensor conv_u8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride, int64_t pad_top,
                   int64_t pad_left, int64_t out_h, int64_t out_w, int64_t act) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kByte && x.dim() == 4 && x.size(0) == 1 &&
              x.is_contiguous(), "holocam::conv_u8: input must be a contiguous uint8 (1, H, W, C) CPU tensor, got ",
              x.scalar_type(), " ", x.sizes());
  check_dense(w, "holocam::conv_u8", "weight (kh, kw, cin, cout)", 4);
  check_dense(b, "holocam::conv_u8", "bias", 1);
  const int64_t cout = w.size(3);
  TORCH_CHECK(w.size(2) == x.size(3) && b.size(0) == cout, "holocam::conv_u8: weight ", w.sizes(), " and bias ",
              b.sizes(), " do not match ", x.size(3), " input channels");
  TORCH_CHECK(stride >= 1 && pad_top >= 0 && pad_left >= 0 && out_h >= 1 && out_w >= 1,
              "holocam::conv_u8: stride, padding or output size out of range");
  TORCH_CHECK(act >= kNone && act <= kHardSwish, "holocam::conv_u8: unknown activation ", act);
  at::Tensor y = at::empty({1, cout, out_h, out_w},
                           at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  // Widened once by ATen (vectorised); see nhwc_kernels.cpp for why the kernel reads floats.
  const at::Tensor frame = x.to(at::kFloat);
  const DenseShape shape{(int)x.size(1), (int)x.size(2), (int)x.size(3), (int)w.size(0), (int)w.size(1), (int)stride,
                         (int)cout, (int)pad_top, (int)pad_left, (int)out_h, (int)out_w, 0, (int)out_h};
  const float *xp = frame.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  parallel_rows(shape, out_h, out_w * cout,
                [&](const DenseShape& rows) { kernels().conv_u8(xp, wp, bp, yp, rows, (int)act); });
  return y;
}

at::Tensor pointwise(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                     const std::optional<at::Tensor>& residual, int64_t act) {
  check_nhwc(x, "holocam::pointwise", "input");
  check_dense(w, "holocam::pointwise", "weight (in, out)", 2);
  check_dense(b, "holocam::pointwise", "bias", 1);
  const int64_t k_in = x.size(1), n_out = w.size(1);
  TORCH_CHECK(w.size(0) == k_in && b.size(0) == n_out, "holocam::pointwise: weight ", w.sizes(), " and bias ",
              b.sizes(), " do not match ", k_in, " input channels");
  TORCH_CHECK(act >= kNone && act <= kHardSwish, "holocam::pointwise: unknown activation ", act);
  at::Tensor y = at::empty({1, n_out, x.size(2), x.size(3)},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* r = residual_data(residual, y, "holocam::pointwise");
  const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  at::parallel_for(0, x.size(2) * x.size(3), grain_rows(n_out), [&](int64_t begin, int64_t end) {
    kernels().pointwise(xp, wp, bp, r, yp, begin, end, k_in, n_out, (int)act);
  });
  return y;
}

// The squeeze-excite gate of a map x (of x + x2 when x2 is given): sigmoid(w2 @ act1(w1 @ mean(x) + b1) + b2),
// shape (1, C, 1, 1).
at::Tensor squeeze_excite(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, int64_t act1,
                          const at::Tensor& w2, const at::Tensor& b2, const std::optional<at::Tensor>& x2) {
  check_nhwc(x, "holocam::squeeze_excite", "input");
  const float* x2p = residual_data(x2, x, "holocam::squeeze_excite", "second input");
  check_dense(w1, "holocam::squeeze_excite", "first weight (C, M)", 2);
  check_dense(w2, "holocam::squeeze_excite", "second weight (M, C)", 2);
  check_dense(b1, "holocam::squeeze_excite", "first bias", 1);
  check_dense(b2, "holocam::squeeze_excite", "second bias", 1);
  const int64_t c = x.size(1), m = w1.size(1);
  TORCH_CHECK(w1.size(0) == c && b1.size(0) == m && w2.size(0) == m && w2.size(1) == c && b2.size(0) == c,
              "holocam::squeeze_excite: weights ", w1.sizes(), ", ", w2.sizes(), " and biases ", b1.sizes(), ", ",
              b2.sizes(), " do not match ", c, " channels");
  TORCH_CHECK(act1 == kNone || act1 == kRelu, "holocam::squeeze_excite: the first activation must be NONE or RELU");
  TORCH_CHECK(x.size(2) * x.size(3) > 0, "holocam::squeeze_excite: empty input");
  at::Tensor gate = at::empty({1, c, 1, 1}, x.options());
  kernels().squeeze_excite(x.const_data_ptr<float>(), x2p, x.size(2) * x.size(3), (int)c, w1.const_data_ptr<float>(),
                           b1.const_data_ptr<float>(), (int)m, (int)act1, w2.const_data_ptr<float>(),
                           b2.const_data_ptr<float>(), gate.mutable_data_ptr<float>());
  return gate;
}

// y + x * gate with gate (1, C, 1, 1): torch.addcmul(y, x, gate) on channels-last maps.
at::Tensor gated_add(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y) {
  check_nhwc(x, "holocam::gated_add", "input");
  const float* yp = residual_data(y, x, "holocam::gated_add", "addend");
  TORCH_CHECK(gate.scalar_type() == at::kFloat && gate.is_contiguous() && gate.numel() == x.size(1),
              "holocam::gated_add: the gate must be float32 (1, C, 1, 1) for ", x.size(1), " channels, got ",
              gate.scalar_type(), " ", gate.sizes());
  const int64_t c = x.size(1), pixels = x.size(2) * x.size(3);
  at::Tensor out = at::empty_like(x);
  const float *xp = x.const_data_ptr<float>(), *gp = gate.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  at::parallel_for(0, pixels, grain_rows(c), [&](int64_t begin, int64_t end) {
    kernels().gated_add(xp, gp, yp, op, begin, end, (int)c);
  });
  return out;
}

std::string isa() { return kernels().isa; }

// sigmoid(transposed conv with kernel == stride) of the last feature map: (1, o, H s, W s) float.
// w is (C, s*s*o) with the taps in (ky, kx, o) order, b the bias of each tap (s*s*o).
at::Tensor mask_head(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride) {
  check_nhwc(x, "holocam::mask_head", "input");
  check_dense(w, "holocam::mask_head", "weight (C, s*s*o)", 2);
  check_dense(b, "holocam::mask_head", "bias (s*s*o)", 1);
  TORCH_CHECK(stride >= 1 && stride <= 8, "holocam::mask_head: stride ", stride, " out of range 1..8");
  const int64_t c = x.size(1), taps = w.size(1);
  TORCH_CHECK(w.size(0) == c && taps >= 1 && taps % (stride * stride) == 0 && b.size(0) == taps,
              "holocam::mask_head: weight ", w.sizes(), " and bias ", b.sizes(), " do not match ", c,
              " channels at stride ", stride);
  const int64_t h = x.size(2), wd = x.size(3);
  at::Tensor y = at::empty({1, taps / (stride * stride), h * stride, wd * stride}, x.options());
  const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  at::parallel_for(0, h, grain_rows(wd * taps), [&](int64_t begin, int64_t end) {
    kernels().mask_head(xp, wp, bp, yp, (int)h, (int)wd, (int)c, (int)stride, (int)taps, (int)begin, (int)end);
  });
  return y;
}

}  // namespace
}  // namespace holocam

TORCH_LIBRARY(holocam, m) {
  m.def("depthwise(Tensor x, Tensor w, Tensor b, int stride, int pad_top, int pad_left, int out_h, int out_w, "
        "int act, Tensor? residual=None) -> Tensor");
  m.def("upsample2x(Tensor x) -> Tensor");
  m.def("conv_u8(Tensor x, Tensor w, Tensor b, int stride, int pad_top, int pad_left, int out_h, int out_w, "
        "int act) -> Tensor");
  m.def("pointwise(Tensor x, Tensor w, Tensor b, Tensor? residual, int act) -> Tensor");
  m.def("squeeze_excite(Tensor x, Tensor w1, Tensor b1, int act1, Tensor w2, Tensor b2, Tensor? x2=None) -> Tensor");
  m.def("gated_add(Tensor x, Tensor gate, Tensor y) -> Tensor");
  m.def("mask_head(Tensor x, Tensor w, Tensor b, int stride) -> Tensor");
  m.def("isa() -> str", holocam::isa);
}

TORCH_LIBRARY_IMPL(holocam, CPU, m) {
  m.impl("depthwise", holocam::depthwise);
  m.impl("pointwise", holocam::pointwise);
  m.impl("upsample2x", holocam::upsample2x);
  m.impl("conv_u8", holocam::conv_u8);
  m.impl("squeeze_excite", holocam::squeeze_excite);
  m.impl("mask_head", holocam::mask_head);
  m.impl("gated_add", holocam::gated_add);
}
