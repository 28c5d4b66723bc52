// Fused NHWC float32 kernels: one build per instruction set, chosen at run time (torch_ops.cpp).
#pragma once

namespace holocam {

enum Activation { kNone = 0, kRelu = 1, kRelu6 = 2, kHardSwish = 3 };

struct DepthwiseShape {
  int h, w, c;               // input (NHWC, batch 1)
  int kh, kw, stride;
  int pad_top, pad_left;     // TF SAME puts any odd extra padding after: only the leading side matters
  int out_h, out_w;
  int row_begin, row_end;    // output rows this call computes (threads split the rows)
};

struct DenseShape {
  int h, w, cin;             // the frame, widened to float (NHWC, batch 1)
  int kh, kw, stride, cout;
  int pad_top, pad_left;
  int out_h, out_w;
  int row_begin, row_end;    // output rows this call computes
};

#define HOLOCAM_DECLARE_KERNELS(isa)                                                                   \
  namespace isa {                                                                                      \
  void depthwise(const float* x, const float* w, const float* b, const float* residual, float* y,     \
                 const DepthwiseShape& s, int act);                                                    \
  void upsample2x(const float* x, float* y, int h, int w, int c, int row_begin, int row_end);          \
  void conv_u8(const float* x, const float* w, const float* b, float* y, const DenseShape& s, int act); \
  void pointwise(const float* x, const float* w, const float* b, const float* residual, float* y,     \
                 long p_begin, long p_end, long k_in, long n_out, int act);                            \
  void squeeze_excite(const float* x, const float* x2, long pixels, int c, const float* w1,          \
                      const float* b1, int m, int act1, const float* w2, const float* b2, float* gate); \
  void gated_add(const float* x, const float* gate, const float* y, float* out, long p_begin,        \
                 long p_end, int c);                                                                   \
  void mask_head(const float* x, const float* w, const float* b, float* y, int h, int wd, int c,       \
                 int stride, int taps, int row_begin, int row_end);                                    \
  }

HOLOCAM_DECLARE_KERNELS(avx512)
HOLOCAM_DECLARE_KERNELS(avx2)
HOLOCAM_DECLARE_KERNELS(generic)

}  // namespace holocam
