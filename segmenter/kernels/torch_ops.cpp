// torch.ops.holocam.*: the fused NHWC kernels as PyTorch operators, so the traced TorchScript
// graph of the selfie models calls them like any aten op. Checks every argument (a bad call raises
// a RuntimeError, never reads out of bounds) and picks the instruction set once per process.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "nhwc_kernels.h"

namespace holocam {
namespace {

struct Kernels {
  const char* isa;
  decltype(&generic::depthwise) depthwise;
  decltype(&generic::pointwise) pointwise;
};

// The best build this CPU runs, or the one HOLOCAM_KERNELS_ISA names when the CPU can run it
// (tests use that to exercise every build on one machine).
Kernels pick() {
  const char* wanted = std::getenv("HOLOCAM_KERNELS_ISA");
  const std::string want = wanted ? wanted : "";
  const Kernels generic_build{"generic", &generic::depthwise, &generic::pointwise};
#if defined(HOLOCAM_X86_VARIANTS)
  __builtin_cpu_init();
  // x86-64-v4 (what -march=x86-64-v4 may use) and x86-64-v3.
  const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi2");
  const Kernels avx512_build{"avx512", &avx512::depthwise, &avx512::pointwise};
  const Kernels avx2_build{"avx2", &avx2::depthwise, &avx2::pointwise};
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

at::Tensor depthwise(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride,
                     int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t act) {
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
  const DepthwiseShape s{(int)x.size(2), (int)x.size(3), (int)c, (int)w.size(0), (int)w.size(1), (int)stride,
                         (int)pad_top, (int)pad_left, (int)out_h, (int)out_w};
  kernels().depthwise(x.const_data_ptr<float>(), w.const_data_ptr<float>(), b.const_data_ptr<float>(),
                      y.mutable_data_ptr<float>(), s, (int)act);
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
  const float* r = nullptr;
  if (residual.has_value()) {
    check_nhwc(*residual, "holocam::pointwise", "residual");
    TORCH_CHECK(residual->sizes() == y.sizes(), "holocam::pointwise: residual ", residual->sizes(),
                " is not the output's shape ", y.sizes());
    r = residual->const_data_ptr<float>();
  }
  kernels().pointwise(x.const_data_ptr<float>(), w.const_data_ptr<float>(), b.const_data_ptr<float>(), r,
                      y.mutable_data_ptr<float>(), x.size(2) * x.size(3), k_in, n_out, (int)act);
  return y;
}

std::string isa() { return kernels().isa; }

}  // namespace
}  // namespace holocam

TORCH_LIBRARY(holocam, m) {
  m.def("depthwise(Tensor x, Tensor w, Tensor b, int stride, int pad_top, int pad_left, int out_h, int out_w, "
        "int act) -> Tensor");
  m.def("pointwise(Tensor x, Tensor w, Tensor b, Tensor? residual, int act) -> Tensor");
  m.def("isa() -> str", holocam::isa);
}

TORCH_LIBRARY_IMPL(holocam, CPU, m) {
  m.impl("depthwise", holocam::depthwise);
  m.impl("pointwise", holocam::pointwise);
}
