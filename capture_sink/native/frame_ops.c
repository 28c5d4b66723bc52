/* The sink's full-frame passes in one native library: the hologram fused with the composite,
 * the composite alone (either writing BGR or, for the virtual camera, YUYV), the refiner's steps
 * (the guide's grey, the guided filter's coefficients and their apply, the alpha's upsample to the
 * frame's size) and BGR -> YUYV.
 *
 * Why native: at 1280x720 each OpenCV call is one full pass over 2.7 MB of pixels, and the
 * hologram plus the composite take eleven of them. Here each output byte is computed once from
 * its inputs: the tint of the few rows the ghost reads lives in a small ring that stays in
 * cache, and a row's pixels where the mask is 0 are a copy of the background. The loops are
 * written so GCC vectorises them (flat byte loops, restrict pointers, 16-bit lanes); this file is
 * compiled once per x86-64 level (HOLOCAM_ISA = avx512 / avx2 / generic) and the sink picks the
 * build for its CPU (capture_sink/native/library.py), then keeps it only where it beats OpenCV
 * (capture_sink/native/choice.py).
 *
 * Arithmetic, all integer with rounding (so results do not depend on the build):
 *   gray   = (29 B + 150 G + 77 R + 128) >> 8   (BT.601 luma; OpenCV's BGR2GRAY within a level)
 *   fg     = min(255, f/2 + wa A + wc C + wb B) per byte, rounded, with A, C, B the tint at
 *            (y-s, x-s), (y, x), (y+s, x+s) and w* the row weights (16-bit fixed point below)
 *   out    = div255(fg a + bg (255 - a)), div255(v) = (v + 128 + ((v + 128) >> 8)) >> 8
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSSE3__)
#include <immintrin.h>
#endif

#ifndef HOLOCAM_ISA
#define HOLOCAM_ISA generic
#endif
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define EXPORT(name) __attribute__((visibility("default"))) CAT(name, HOLOCAM_ISA)

#define MAX_WIDTH 8192

/* Grey levels of one BGR row, in 16-bit lanes: the weights sum to 256, so the sum of products
 * fits 16 bits and each vector multiply does 16 pixels (32-bit lanes did 8: perf showed the grey
 * at ~30% of the pass). */
static void gray_row(const uint8_t *restrict bgr, uint8_t *restrict gray, int width) {
    for (int x = 0; x < width; x++) {
        uint16_t b = bgr[3 * x], g = bgr[3 * x + 1], r = bgr[3 * x + 2];
        gray[x] = (uint8_t)((uint16_t)(b * 29u + g * 150u + r * 77u + 128u) >> 8);
    }
}

/* The tint of one frame row: lut[gray] per pixel. Four pixels (12 bytes) go out as one 8-byte and
 * one 4-byte store built in registers: one 4-byte store per pixel, each overlapping the last,
 * was a quarter of the whole pass (perf, 720p). The tail is stored byte by byte, so nothing past
 * the row is touched. (x86-64 only, so little-endian: lut4[g] is B | G << 8 | R << 16.) */
static void tint_row(const uint8_t *restrict bgr, const uint32_t *restrict lut4, uint8_t *restrict gray,
                     uint8_t *restrict dst, int width) {
    gray_row(bgr, gray, width);
    int x = 0;
    for (; x + 4 <= width; x += 4) {
        uint64_t e0 = lut4[gray[x]], e1 = lut4[gray[x + 1]], e2 = lut4[gray[x + 2]];
        uint32_t e3 = lut4[gray[x + 3]];
        uint64_t lo = e0 | e1 << 24 | e2 << 48;                 /* B0 G0 R0 B1 G1 R1 B2 G2 */
        uint32_t hi = (uint32_t)(e2 >> 16) | e3 << 8;           /* R2 B3 G3 R3 */
        memcpy(dst + 3 * x, &lo, 8);
        memcpy(dst + 3 * x + 8, &hi, 4);
    }
    for (; x < width; x++) {
        uint32_t e = lut4[gray[x]];
        dst[3 * x] = (uint8_t)e, dst[3 * x + 1] = (uint8_t)(e >> 8), dst[3 * x + 2] = (uint8_t)(e >> 16);
    }
}

static void make_lut4(const uint8_t *restrict lut, uint32_t *restrict lut4) {
    for (int i = 0; i < 256; i++) {
        uint8_t entry[4] = {lut[3 * i], lut[3 * i + 1], lut[3 * i + 2], 0};
        memcpy(&lut4[i], entry, 4);
    }
}

/* Fixed point of the hologram, all in 16-bit lanes (16 bytes per AVX2 multiply):
 * a byte x is held as X = x << 7 and a weight w < 1 as W = round(w 65536), so
 * mulhi(X, W) = (X W) >> 16 is x w in 1/128 of a level (truncation error < 1/128 per term).
 * The sum of the four terms stays below 36000 (0.5 + 0.6 of 255, in 1/128), inside 16 bits. */
static inline uint16_t mulhi16(uint16_t x, uint16_t w) {
    return (uint16_t)(((uint32_t)x * (uint32_t)w) >> 16);
}

static inline uint16_t hologram_value(uint8_t f, uint8_t a, uint8_t c, uint8_t b,
                                      uint16_t wa, uint16_t wc, uint16_t wb) {
    uint16_t s = (uint16_t)((uint16_t)f * 64u + mulhi16((uint16_t)(a << 7), wa)
                            + mulhi16((uint16_t)(c << 7), wc) + mulhi16((uint16_t)(b << 7), wb));
    s = (uint16_t)((s + 64u) >> 7);
    return s < 255 ? s : 255;
}

/* div255 of a 16-bit blend sum (fg a + bg (255 - a) <= 65025): exact rounding in 16 bits. */
static inline uint8_t div255_16(uint16_t v) {
    v = (uint16_t)(v + 128u);
    return (uint8_t)((uint16_t)(v + (v >> 8)) >> 8);
}

static void holo_blend_row(const uint8_t *restrict f, const uint8_t *restrict pa, const uint8_t *restrict pc,
                           const uint8_t *restrict pb, const uint8_t *restrict bg, const uint8_t *restrict a3,
                           uint8_t *restrict out, int n, uint16_t wa, uint16_t wc, uint16_t wb) {
    for (int i = 0; i < n; i++) {
        uint16_t fg = hologram_value(f[i], pa[i], pc[i], pb[i], wa, wc, wb);
        uint16_t a = a3[i];
        out[i] = div255_16((uint16_t)(fg * a + (uint16_t)bg[i] * (uint16_t)(255u - a)));
    }
}

static void holo_row(const uint8_t *restrict f, const uint8_t *restrict pa, const uint8_t *restrict pc,
                     const uint8_t *restrict pb, uint8_t *restrict out, int n,
                     uint16_t wa, uint16_t wc, uint16_t wb) {
    for (int i = 0; i < n; i++) {
        out[i] = (uint8_t)hologram_value(f[i], pa[i], pc[i], pb[i], wa, wc, wb);
    }
}

static void blend_row(const uint8_t *restrict f, const uint8_t *restrict bg, const uint8_t *restrict a3,
                      uint8_t *restrict out, int n) {
    for (int i = 0; i < n; i++) {
        uint16_t a = a3[i];
        out[i] = div255_16((uint16_t)((uint16_t)f[i] * a + (uint16_t)bg[i] * (uint16_t)(255u - a)));
    }
}

static void spread_alpha(const uint8_t *restrict alpha, uint8_t *restrict a3, int width) {
    for (int x = 0; x < width; x++) {
        a3[3 * x] = a3[3 * x + 1] = a3[3 * x + 2] = alpha[x];
    }
}

/* [*x0, *x1): the columns of an alpha row that are not 0 (empty when the row is all 0).
 * Eight bytes at a time: most of a frame is background or person, not edge. */
static void alpha_span(const uint8_t *restrict alpha, int width, int *x0, int *x1) {
    int lo = 0, hi = width;
    uint64_t word;
    while (lo + 8 <= hi && (memcpy(&word, alpha + lo, 8), word == 0)) lo += 8;
    while (lo < hi && alpha[lo] == 0) lo++;
    while (hi - 8 >= lo && (memcpy(&word, alpha + hi - 8, 8), word == 0)) hi -= 8;
    while (hi > lo && alpha[hi - 1] == 0) hi--;
    *x0 = lo;
    *x1 = hi;
}

/* BGR -> YUYV of `height` rows (defined with hc_bgr_to_yuyv below); the fused passes convert each
 * output row as it is made, while it is in L1, when they are asked for YUYV. */
static void bgr_to_yuyv_rows(const uint8_t *restrict bgr, ptrdiff_t bstride, int height, int width,
                             uint8_t *restrict out, ptrdiff_t ostride);

/* The hologram of `frame` composited over `bg` through `alpha` into `out`; with `bg` NULL the
 * hologram alone (alpha unused). `lut` is the 256 x 3 BGR tint of each grey level; `weights`
 * holds three uint16 per output row, the weights (in 1/65536) of the tint at (y-s, x-s),
 * (y, x) and (y+s, x+s). Only what the mask shows is computed: the tint of the rows and columns
 * that output pixels with a mask above 0 read (the person's rows +-s, columns +-s); the rest of
 * each row is a copy of the background. With `out_yuyv` set, `out` takes YUYV (2 bytes a pixel,
 * even widths only), each row converted as hc_bgr_to_yuyv does while it is still in L1: the frame
 * is never stored as BGR and the v4l2 writer has nothing left to convert.
 * Returns 0, or -1 for a bad size or no memory. */
int EXPORT(hc_hologram_composite)(const uint8_t *restrict frame, ptrdiff_t fstride, int height, int width,
                                  const uint8_t *restrict lut, int shift, const uint16_t *restrict weights,
                                  const uint8_t *restrict bg, ptrdiff_t bstride,
                                  const uint8_t *restrict alpha, ptrdiff_t astride,
                                  uint8_t *restrict out, ptrdiff_t ostride, int out_yuyv) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || shift < 0 || (out_yuyv && (width & 1))) return -1;
    const int slots = 2 * shift + 1, s3 = 3 * shift;
    const size_t row_bytes = (size_t)3 * (size_t)(width + 2 * shift);   /* tint row with a zero border */
    /* The tint of rows y-s .. y+s, each at slot (row mod slots), plus one zero row for rows
     * outside the frame (the seed's zero fill of the shifted copies). */
    uint8_t *ring = calloc((size_t)(slots + 1) * row_bytes, 1);
    uint8_t *a3 = malloc((size_t)3 * (size_t)width);
    uint8_t *gray = malloc((size_t)width);
    uint8_t *rowbuf = malloc((size_t)3 * (size_t)width);                /* a BGR row before YUYV */
    int32_t *spans = malloc(sizeof(int32_t) * 2 * (size_t)height);      /* x0, x1 of each row */
    int32_t *shown = malloc(sizeof(int32_t) * ((size_t)height + 1));    /* rows with a span, prefix sums */
    uint32_t lut4[256];
    if (ring == NULL || a3 == NULL || gray == NULL || rowbuf == NULL || spans == NULL || shown == NULL) {
        free(ring), free(a3), free(gray), free(rowbuf), free(spans), free(shown);
        return -1;
    }
    int cmin = width, cmax = 0;
    shown[0] = 0;
    for (int y = 0; y < height; y++) {
        int x0 = 0, x1 = width;
        if (bg != NULL) alpha_span(alpha + y * astride, width, &x0, &x1);
        spans[2 * y] = x0, spans[2 * y + 1] = x1;
        shown[y + 1] = shown[y] + (x1 > x0);
        if (x1 > x0) {
            cmin = x0 < cmin ? x0 : cmin;
            cmax = x1 > cmax ? x1 : cmax;
        }
    }
    cmin = cmin - shift > 0 ? cmin - shift : 0;                       /* the ghost reads +-s columns */
    cmax = cmax + shift < width ? cmax + shift : width;
    const uint8_t *zero = ring + (size_t)slots * row_bytes;
    make_lut4(lut, lut4);
    for (int y = -shift; y < height; y++) {
        int r = y + shift;                                             /* the tint row this step adds */
        if (r < height && cmax > cmin) {
            int lo = r - shift > 0 ? r - shift : 0, hi = r + shift + 1 < height ? r + shift + 1 : height;
            if (shown[hi] - shown[lo] > 0) {                           /* some shown row reads it */
                tint_row(frame + r * fstride + 3 * cmin, lut4, gray,
                         ring + (size_t)(r % slots) * row_bytes + s3 + 3 * cmin, cmax - cmin);
            }
        }
        if (y < 0) continue;
        const uint8_t *b = bg != NULL ? bg + y * bstride : NULL;
        uint8_t *o = out_yuyv ? rowbuf : out + y * ostride;
        const int x0 = spans[2 * y], x1 = spans[2 * y + 1];
        if (b != NULL) {
            memcpy(o, b, (size_t)3 * x0);                              /* mask 0: the background */
            memcpy(o + 3 * x1, b + 3 * x1, (size_t)3 * (width - x1));
        }
        if (x1 > x0) {
            const uint8_t *pa = y - shift >= 0 ? ring + (size_t)((y - shift) % slots) * row_bytes : zero;
            const uint8_t *pc = ring + (size_t)(y % slots) * row_bytes + s3;
            const uint8_t *pb = (y + shift < height ? ring + (size_t)((y + shift) % slots) * row_bytes : zero) + 2 * s3;
            const uint16_t *w = weights + 3 * y;
            const uint8_t *f = frame + y * fstride;
            const int i0 = 3 * x0, n = 3 * (x1 - x0);
            if (b == NULL) {
                holo_row(f + i0, pa + i0, pc + i0, pb + i0, o + i0, n, w[0], w[1], w[2]);
            } else {
                spread_alpha(alpha + y * astride + x0, a3, x1 - x0);
                holo_blend_row(f + i0, pa + i0, pc + i0, pb + i0, b + i0, a3, o + i0, n, w[0], w[1], w[2]);
            }
        }
        if (out_yuyv) bgr_to_yuyv_rows(rowbuf, 0, 1, width, out + y * ostride, 0);
    }
    free(ring), free(a3), free(gray), free(rowbuf), free(spans), free(shown);
    return 0;
}

/* out = fg over bg through alpha (uint8, 255 = fg), exact rounding; YUYV with `out_yuyv`, as above.
 * Returns 0, or -1 as above. */
int EXPORT(hc_composite)(const uint8_t *restrict fg, ptrdiff_t fstride, int height, int width,
                         const uint8_t *restrict bg, ptrdiff_t bstride,
                         const uint8_t *restrict alpha, ptrdiff_t astride,
                         uint8_t *restrict out, ptrdiff_t ostride, int out_yuyv) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || (out_yuyv && (width & 1))) return -1;
    uint8_t *a3 = malloc((size_t)3 * (size_t)width);
    uint8_t *rowbuf = malloc((size_t)3 * (size_t)width);                /* a BGR row before YUYV */
    if (a3 == NULL || rowbuf == NULL) {
        free(a3), free(rowbuf);
        return -1;
    }
    for (int y = 0; y < height; y++) {
        const uint8_t *f = fg + y * fstride, *b = bg + y * bstride;
        uint8_t *o = out_yuyv ? rowbuf : out + y * ostride;
        int x0, x1;
        alpha_span(alpha + y * astride, width, &x0, &x1);
        memcpy(o, b, (size_t)3 * x0);
        memcpy(o + 3 * x1, b + 3 * x1, (size_t)3 * (width - x1));
        if (x1 > x0) {
            spread_alpha(alpha + y * astride + x0, a3, x1 - x0);
            int i0 = 3 * x0;
            blend_row(f + i0, b + i0, a3, o + i0, 3 * (x1 - x0));
        }
        if (out_yuyv) bgr_to_yuyv_rows(rowbuf, 0, 1, width, out + y * ostride, 0);
    }
    free(a3), free(rowbuf);
    return 0;
}

/* One output row of the upsample at 2x: `v` is 3 near + far of each source pixel (the vertical
 * blend in quarters, one repeated pixel at each end, v[-1] and v[width]); output 2j and 2j + 1
 * are (3 v[j] + v[j -+ 1] + 8) / 16. All in 16-bit lanes. */
static void upsample2_row(const uint16_t *restrict v, uint8_t *restrict o, int width) {
    for (int j = 0; j < width; j++) {
        uint16_t c = (uint16_t)(3u * v[j] + 8u);
        o[2 * j] = (uint8_t)((uint16_t)(c + v[j - 1]) >> 4);
        o[2 * j + 1] = (uint8_t)((uint16_t)(c + v[j + 1]) >> 4);
    }
}

/* One output row at k = 3 or 4: `v` is the vertical blend in 1/256 of a level (<= 65280); output
 * k j + p is near v[j] + far v[j + side], each weight in 1/65536 through a 16-bit high multiply
 * (truncating below 1/256 of a level), then rounded. Inlined with k a constant. */
static inline void upsample_row(const uint16_t *restrict v, uint8_t *restrict o, int width, const int k,
                                const int *restrict side, const uint16_t *restrict wn,
                                const uint16_t *restrict wf) {
    for (int j = 0; j < width; j++) {
        for (int p = 0; p < k; p++) {
            uint16_t sum = (uint16_t)(mulhi16(v[j], wn[p]) + mulhi16(v[j + side[p]], wf[p]) + 128u);
            o[k * j + p] = (uint8_t)(sum >> 8);
        }
    }
}

/* out (k h x k w) = src (h x w) scaled up by a whole factor k (2..4), bilinear with pixel centres
 * aligned and borders repeated (OpenCV's INTER_LINEAR). Each output pixel sits at (p + 0.5) / k - 0.5
 * of its source pixel along each axis (p its phase) and is blended with the neighbour on that
 * side by that distance. At 2x that is (9 n + 3 h + 3 v + d) / 16, exactly rounded; at 3x and 4x
 * within a level of exact. The refiner's last step, alpha at work size to the frame's size, where
 * OpenCV's 1-channel resize took 0.65 ms at 720p (2x) and 1.3 ms at 1080p (3x).
 * Returns 0, or -1 for a bad size or factor, or no memory. */
int EXPORT(hc_upsample)(const uint8_t *restrict src, ptrdiff_t sstride, int height, int width, int k,
                        uint8_t *restrict out, ptrdiff_t ostride) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || k < 2 || k > 4) return -1;
    uint16_t *v = malloc(sizeof(uint16_t) * ((size_t)width + 2));
    if (v == NULL) return -1;
    int side[4];
    uint16_t w8[4], wn[4], wf[4];          /* vertical far weight in 1/256; horizontal in 1/65536 */
    for (int p = 0; p < k; p++) {
        int d = 2 * p + 1 - k;             /* the distance to the source pixel, in 1/(2k) */
        side[p] = d < 0 ? -1 : 1;
        w8[p] = (uint16_t)((abs(d) * 256 + k) / (2 * k));
        uint32_t far = (uint32_t)((abs(d) * 65536 + k) / (2 * k));
        wf[p] = (uint16_t)far;
        wn[p] = (uint16_t)(65536u - far > 65535u ? 65535u : 65536u - far);
    }
    uint16_t *restrict row = v + 1;
    for (int y = 0; y < k * height; y++) {
        const int i = y / k, p = y % k;
        int j = i + side[p];
        j = j < 0 ? 0 : (j >= height ? height - 1 : j);
        const uint8_t *restrict near = src + i * sstride, *restrict far = src + j * sstride;
        uint8_t *restrict o = out + y * ostride;
        if (k == 2) {
            for (int x = 0; x < width; x++) row[x] = (uint16_t)(3u * near[x] + far[x]);
        } else {
            const uint16_t f8 = w8[p], n8 = (uint16_t)(256u - w8[p]);
            for (int x = 0; x < width; x++) row[x] = (uint16_t)(n8 * near[x] + f8 * far[x]);
        }
        v[0] = row[0], row[width] = row[width - 1];
        if (k == 2) upsample2_row(row, o, width);
        else if (k == 3) upsample_row(row, o, width, 3, side, wn, wf);
        else upsample_row(row, o, width, 4, side, wn, wf);
    }
    free(v);
    return 0;
}

/* The guided filter's last step at 2x: out = up(a) I + up(b), saturated to uint8, with a and b the
 * filter's coefficients (h x w, float, rows `lstride` floats apart) and I the 2h x 2w guide; up is
 * the 2x bilinear of hc_upsample (weights 3/4 and 1/4 each way, borders repeated) in float, as
 * OpenCV's float resize computes it. In one pass it replaces two float resizes to the guide's size,
 * a multiply and an add (four full-size float passes). Returns 0, or -1 for a bad size or no memory. */
int EXPORT(hc_guided_apply)(const float *restrict a, const float *restrict b, ptrdiff_t lstride,
                            int height, int width, const uint8_t *restrict guide, ptrdiff_t gstride,
                            uint8_t *restrict out, ptrdiff_t ostride) {
    if (width < 1 || width > MAX_WIDTH || height < 1) return -1;
    /* va, vb: the vertical blend (one repeated value at each end); A, B: the full-width rows */
    float *buf = malloc(sizeof(float) * (2 * ((size_t)width + 2) + 4 * (size_t)width));
    if (buf == NULL) return -1;
    float *restrict va = buf + 1, *restrict vb = buf + width + 3;
    float *restrict A = buf + 2 * (size_t)width + 4, *restrict B = A + 2 * (size_t)width;
    for (int y = 0; y < 2 * height; y++) {
        const int i = y >> 1;
        const int j = (y & 1) ? (i + 1 < height ? i + 1 : i) : (i > 0 ? i - 1 : 0);
        const float *restrict an = a + i * lstride, *restrict af = a + j * lstride;
        const float *restrict bn = b + i * lstride, *restrict bf = b + j * lstride;
        for (int x = 0; x < width; x++) {
            va[x] = 0.75f * an[x] + 0.25f * af[x];
            vb[x] = 0.75f * bn[x] + 0.25f * bf[x];
        }
        va[-1] = va[0], va[width] = va[width - 1];
        vb[-1] = vb[0], vb[width] = vb[width - 1];
        for (int x = 0; x < width; x++) {
            A[2 * x] = 0.75f * va[x] + 0.25f * va[x - 1], A[2 * x + 1] = 0.75f * va[x] + 0.25f * va[x + 1];
            B[2 * x] = 0.75f * vb[x] + 0.25f * vb[x - 1], B[2 * x + 1] = 0.75f * vb[x] + 0.25f * vb[x + 1];
        }
        const uint8_t *restrict g = guide + y * gstride;
        uint8_t *restrict o = out + y * ostride;
        for (int x = 0; x < 2 * width; x++) {
            /* Rounded half up and saturated in integers: min/max vectorise on every build, float
             * clamps did not on avx2. q is far inside int32 (|a| and |b| are bounded by the filter's
             * eps); x86 turns an out-of-range or NaN float into INT_MIN, which the clamp makes 0:
             * hidden, never shown. */
            int32_t v = (int32_t)(A[x] * (float)g[x] + B[x] + 1024.5f);
            v = v < 1024 ? 1024 : v;
            o[x] = (uint8_t)((v > 1279 ? 1279 : v) - 1024);
        }
    }
    free(buf);
    return 0;
}

/* The refiner's guide: the frame scaled down by a whole factor k, as OpenCV's INTER_LINEAR samples
 * it (source position k x + (k - 1) / 2: one pixel for odd k, the rounded mean of a 2 x 2 block for
 * even k), then grey as OpenCV 5's BGR2GRAY, (3735 B + 19235 G + 9798 R + 16384) >> 15. One pass
 * instead of a resize and a conversion, and it reads only the rows it samples (a third at 1080p).
 * Both match OpenCV 5.1 exactly on random frames (bench/results/native.md: max diff 0); the tests
 * (tests/capture_sink/test_native_refine.py) allow one level, in case OpenCV's rounding changes. */
static inline uint8_t gray15(uint32_t b, uint32_t g, uint32_t r) {
    return (uint8_t)((b * 3735u + g * 19235u + r * 9798u + 16384u) >> 15);
}

static inline void guide_row(const uint8_t *restrict r0, const uint8_t *restrict r1, uint8_t *restrict o,
                             int width, const int k) {
    if (k & 1) {
        for (int x = 0; x < width; x++) {
            const uint8_t *q = r0 + 3 * k * x;
            o[x] = gray15(q[0], q[1], q[2]);
        }
        return;
    }
    for (int x = 0; x < width; x++) {
        const uint8_t *q = r0 + 3 * k * x, *u = r1 + 3 * k * x;
        uint32_t b = (uint32_t)(q[0] + q[3] + u[0] + u[3] + 2) >> 2;
        uint32_t g = (uint32_t)(q[1] + q[4] + u[1] + u[4] + 2) >> 2;
        uint32_t r = (uint32_t)(q[2] + q[5] + u[2] + u[5] + 2) >> 2;
        o[x] = gray15(b, g, r);
    }
}

#if defined(__SSSE3__)
/* Byte shuffles that take one channel's bytes out of each of three 16-byte loads of 16 BGR
 * pixels (SPLIT_<channel><load>); ORing the three gives the channel's 16 bytes in order. */
#define SPLIT_B0 _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
#define SPLIT_B1 _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1)
#define SPLIT_B2 _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13)
#define SPLIT_G0 _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
#define SPLIT_G1 _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1)
#define SPLIT_G2 _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14)
#define SPLIT_R0 _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
#define SPLIT_R1 _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1)
#define SPLIT_R2 _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15)

/* 16 BGR pixels (48 bytes) split into their B, G and R bytes. */
static inline void split_bgr16(const uint8_t *q, __m128i *B, __m128i *G, __m128i *R) {
    const __m128i a0 = _mm_loadu_si128((const __m128i *)q), a1 = _mm_loadu_si128((const __m128i *)(q + 16));
    const __m128i a2 = _mm_loadu_si128((const __m128i *)(q + 32));
    *B = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a0, SPLIT_B0), _mm_shuffle_epi8(a1, SPLIT_B1)),
                      _mm_shuffle_epi8(a2, SPLIT_B2));
    *G = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a0, SPLIT_G0), _mm_shuffle_epi8(a1, SPLIT_G1)),
                      _mm_shuffle_epi8(a2, SPLIT_G2));
    *R = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a0, SPLIT_R0), _mm_shuffle_epi8(a1, SPLIT_R1)),
                      _mm_shuffle_epi8(a2, SPLIT_R2));
}

/* The rounded 2 x 2 means of 16 pixels of two rows: 8 per channel, in 16-bit lanes. */
static inline void mean2x2_8(const uint8_t *q, const uint8_t *u, __m128i *b, __m128i *g, __m128i *r) {
    const __m128i ones = _mm_set1_epi8(1), two = _mm_set1_epi16(2);
    __m128i qb, qg, qr, ub, ug, ur;
    split_bgr16(q, &qb, &qg, &qr);
    split_bgr16(u, &ub, &ug, &ur);
    *b = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(_mm_maddubs_epi16(qb, ones), _mm_maddubs_epi16(ub, ones)), two), 2);
    *g = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(_mm_maddubs_epi16(qg, ones), _mm_maddubs_epi16(ug, ones)), two), 2);
    *r = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(_mm_maddubs_epi16(qr, ones), _mm_maddubs_epi16(ur, ones)), two), 2);
}

/* gray15 of 8 pixels in 16-bit lanes, through 32-bit multiply-adds: (B, G) pairs and (R, 16384) pairs. */
static inline __m128i gray15_8(__m128i b, __m128i g, __m128i r) {
    const __m128i wbg = _mm_set1_epi32(3735 | (19235 << 16)), wr = _mm_set1_epi32(9798 | (1 << 16));
    const __m128i half = _mm_set1_epi16(16384);
    const __m128i lo = _mm_srli_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(b, g), wbg),
                                                    _mm_madd_epi16(_mm_unpacklo_epi16(r, half), wr)), 15);
    const __m128i hi = _mm_srli_epi32(_mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(b, g), wbg),
                                                    _mm_madd_epi16(_mm_unpackhi_epi16(r, half), wr)), 15);
    return _mm_packs_epi32(lo, hi);
}
#endif

int EXPORT(hc_guide_gray)(const uint8_t *restrict frame, ptrdiff_t fstride, int height, int width, int k,
                          uint8_t *restrict out, ptrdiff_t ostride) {
    if (k < 2 || width < k || height < k || width / k > MAX_WIDTH) return -1;
    const int oh = height / k, ow = width / k, first = (k - 1) / 2;   /* odd k: the centre; even: its top left */
    for (int y = 0; y < oh; y++) {
        const uint8_t *r0 = frame + (ptrdiff_t)(y * k + first) * fstride + 3 * first;
        uint8_t *o = out + y * ostride;
        int x = 0;
#if defined(__SSSE3__)
        /* k = 2, the 720p case: 16 output pixels from 32 of each row a step (GCC does not vectorise
         * the stride-6 loads of guide_row; scalar it was 3x slower than OpenCV's two passes) */
        if (k == 2) {
            for (; x + 16 <= ow; x += 16) {
                __m128i b0, g0, r0v, b1, g1, r1v;
                mean2x2_8(r0 + 6 * x, r0 + fstride + 6 * x, &b0, &g0, &r0v);
                mean2x2_8(r0 + 6 * x + 48, r0 + fstride + 6 * x + 48, &b1, &g1, &r1v);
                _mm_storeu_si128((__m128i *)(o + x), _mm_packus_epi16(gray15_8(b0, g0, r0v), gray15_8(b1, g1, r1v)));
            }
        }
#endif
        if (k == 2) guide_row(r0 + 6 * x, r0 + fstride + 6 * x, o + x, ow - x, 2);
        else if (k == 3) guide_row(r0, r0 + fstride, o, ow, 3);
        else guide_row(r0, r0 + fstride, o, ow, k);
    }
    return 0;
}

/* OpenCV's BORDER_REFLECT index (edge pixel repeated: cba|abc...xyz|zyx), for any p. */
static int reflect_index(int p, int n) {
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p - 1 : 2 * n - p - 1;
    return p;
}

/* One row of a quantity of the guided filter, with r reflected values at each end (row[-r .. w + r)). */
enum { Q_I, Q_P, Q_II, Q_IP, Q_PLANE };
static void quantity_row(int q, const uint8_t *restrict I, const float *restrict p, const float *restrict plane,
                         float *restrict row, int w, int r) {
    switch (q) {
    case Q_I: for (int x = 0; x < w; x++) row[x] = (float)I[x]; break;
    case Q_P: for (int x = 0; x < w; x++) row[x] = p[x]; break;
    case Q_II: for (int x = 0; x < w; x++) row[x] = (float)I[x] * (float)I[x]; break;
    case Q_IP: for (int x = 0; x < w; x++) row[x] = (float)I[x] * p[x]; break;
    default: for (int x = 0; x < w; x++) row[x] = plane[x]; break;
    }
    for (int i = 1; i <= r; i++) {
        row[-i] = row[reflect_index(-i, w)];
        row[w - 1 + i] = row[reflect_index(w - 1 + i, w)];
    }
}

/* Eight floats in a register (GCC's vector extension: AVX on the wider builds, two SSE halves on
 * the generic one); loads and stores through memcpy, so any alignment is fine. */
typedef float f8 __attribute__((vector_size(32)));
#define ADD8(acc, p) do { f8 v_; memcpy(&v_, (p), sizeof v_); (acc) += v_; } while (0)

/* dst = the mean of a quantity over (2r + 1)^2 windows, borders reflected (cv2.boxFilter with
 * BORDER_REFLECT): a horizontal sum per row into `tmp`, then a vertical sum of 2r + 1 rows of it.
 * Each sum of eight outputs is built in a register over the taps (one load and one add a tap),
 * four of them at once so the adds' latency is hidden: adding tap by tap into the output row cost
 * a load and a store more per tap, one sum at a time waited on each add (perf), and either was no
 * faster than OpenCV's seventeen calls. */
static void box_mean(int q, const uint8_t *restrict I, ptrdiff_t istride, const float *restrict p, ptrdiff_t pstride,
                     const float *restrict plane, float *restrict dst, ptrdiff_t dstride, int h, int w, int r,
                     float *restrict tmp, float *restrict row, const int *restrict rows) {
    const int taps = 2 * r + 1;
    for (int y = 0; y < h; y++) {
        quantity_row(q, I + y * istride, p + y * pstride, plane + (ptrdiff_t)y * w, row + r, w, r);
        float *restrict t = tmp + (ptrdiff_t)y * w;
        int x = 0;
        for (; x + 32 <= w; x += 32) {     /* four independent sums hide the adds' latency */
            f8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int d = 0; d < taps; d++) {
                ADD8(a0, row + x + d); ADD8(a1, row + x + 8 + d); ADD8(a2, row + x + 16 + d); ADD8(a3, row + x + 24 + d);
            }
            memcpy(t + x, &a0, sizeof a0), memcpy(t + x + 8, &a1, sizeof a1);
            memcpy(t + x + 16, &a2, sizeof a2), memcpy(t + x + 24, &a3, sizeof a3);
        }
        for (; x + 8 <= w; x += 8) {
            f8 acc = {0};
            for (int d = 0; d < taps; d++) ADD8(acc, row + x + d);
            memcpy(t + x, &acc, sizeof acc);
        }
        for (; x < w; x++) {
            float acc = row[x];
            for (int d = 1; d < taps; d++) acc += row[x + d];
            t[x] = acc;
        }
    }
    const float norm = 1.0f / (float)(taps * taps);
    for (int y = 0; y < h; y++) {
        float *restrict o = dst + y * dstride;
        const int *restrict src = rows + y;
        int x = 0;
        for (; x + 32 <= w; x += 32) {
            f8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int d = 0; d < taps; d++) {
                const float *s = tmp + (ptrdiff_t)src[d] * w + x;
                ADD8(a0, s); ADD8(a1, s + 8); ADD8(a2, s + 16); ADD8(a3, s + 24);
            }
            a0 *= norm, a1 *= norm, a2 *= norm, a3 *= norm;
            memcpy(o + x, &a0, sizeof a0), memcpy(o + x + 8, &a1, sizeof a1);
            memcpy(o + x + 16, &a2, sizeof a2), memcpy(o + x + 24, &a3, sizeof a3);
        }
        for (; x + 8 <= w; x += 8) {
            f8 acc = {0};
            for (int d = 0; d < taps; d++) ADD8(acc, tmp + (ptrdiff_t)src[d] * w + x);
            acc *= norm;
            memcpy(o + x, &acc, sizeof acc);
        }
        for (; x < w; x++) {
            float acc = tmp[(ptrdiff_t)src[0] * w + x];
            for (int d = 1; d < taps; d++) acc += tmp[(ptrdiff_t)src[d] * w + x];
            o[x] = acc * norm;
        }
    }
}

/* The fast guided filter's coefficients at its low resolution (He & Sun 2015), with the threshold
 * ramp folded in: from the grey guide I (uint8) and the mask p (float, 0..255),
 *   a = cov(I, p) / (var(I) + eps),  b = mean(p) - a mean(I),
 *   mean_a = scale box(a),  mean_b = scale box(b) + offset,
 * every mean over (2r + 1)^2 windows with reflected borders, as the refiner's OpenCV path computes
 * it in seventeen calls (capture_sink/refine.py). Rows of p, mean_a and mean_b are `fstride` floats
 * apart. Returns 0, or -1 for a bad size or no memory. */
int EXPORT(hc_guided_coeffs)(const uint8_t *restrict I, ptrdiff_t istride, const float *restrict p,
                             ptrdiff_t fstride, int h, int w, int r, float eps, float scale, float offset,
                             float *restrict mean_a, float *restrict mean_b) {
    if (w < 1 || w > MAX_WIDTH || h < 1 || r < 0 || r > 1024) return -1;
    const size_t plane = (size_t)h * (size_t)w;
    float *buf = malloc(sizeof(float) * (5 * plane + (size_t)w + 2 * (size_t)r));
    int *rows = malloc(sizeof(int) * ((size_t)h + 2 * (size_t)r));
    if (buf == NULL || rows == NULL) {
        free(buf), free(rows);
        return -1;
    }
    float *mI = buf, *mP = buf + plane, *mII = buf + 2 * plane, *mIP = buf + 3 * plane, *tmp = buf + 4 * plane;
    float *row = buf + 5 * plane;
    for (int i = 0; i < h + 2 * r; i++) rows[i] = reflect_index(i - r, h);
    box_mean(Q_I, I, istride, p, fstride, NULL, mI, w, h, w, r, tmp, row, rows);
    box_mean(Q_P, I, istride, p, fstride, NULL, mP, w, h, w, r, tmp, row, rows);
    box_mean(Q_II, I, istride, p, fstride, NULL, mII, w, h, w, r, tmp, row, rows);
    box_mean(Q_IP, I, istride, p, fstride, NULL, mIP, w, h, w, r, tmp, row, rows);
    for (size_t i = 0; i < plane; i++) {
        float a = (mIP[i] - mI[i] * mP[i]) / (mII[i] - mI[i] * mI[i] + eps);
        mII[i] = a;                        /* a and b in the planes of the means no longer needed */
        mIP[i] = mP[i] - a * mI[i];
    }
    box_mean(Q_PLANE, I, istride, p, fstride, mII, mean_a, fstride, h, w, r, tmp, row, rows);
    box_mean(Q_PLANE, I, istride, p, fstride, mIP, mean_b, fstride, h, w, r, tmp, row, rows);
    for (int y = 0; y < h; y++) {
        float *restrict ma = mean_a + y * fstride, *restrict mb = mean_b + y * fstride;
        for (int x = 0; x < w; x++) {
            ma[x] *= scale;
            mb[x] = mb[x] * scale + offset;
        }
    }
    free(buf), free(rows);
    return 0;
}

/* BGR -> YUYV (4:2:2) for the v4l2loopback writers: BT.601 limited range, each chroma sample
 * from the average of its pixel pair, as capture_sink/outputs/yuv.py documents. Fixed point in
 * 1/128 of a level through 16-bit high multiplies: Y from each 8-bit channel shifted left by 8,
 * U and V from the pair sums shifted left by 7 (truncation < 3/128 of a level: within 0.52 of
 * the exact float value, OpenCV's cvtColor is within 0.60). Pixels are split out of BGR with
 * byte shuffles, 16 per 128-bit lane (SSSE3; two lanes with AVX2); the scalar pair is the
 * tail and the generic build (where the sink keeps OpenCV, which is faster there). */
#define YR 8414
#define YG 16519
#define YB 3208
#define C112 14392
#define UR 4857
#define UG 9535
#define VG 12051
#define VB 2340

static inline void yuyv_pair(const uint8_t *p, uint8_t *o) {
    uint16_t y0 = (uint16_t)((mulhi16((uint16_t)(p[2] << 8), YR) + mulhi16((uint16_t)(p[1] << 8), YG)
                              + mulhi16((uint16_t)(p[0] << 8), YB) + 2048u + 64u) >> 7);
    uint16_t y1 = (uint16_t)((mulhi16((uint16_t)(p[5] << 8), YR) + mulhi16((uint16_t)(p[4] << 8), YG)
                              + mulhi16((uint16_t)(p[3] << 8), YB) + 2048u + 64u) >> 7);
    uint16_t bs = (uint16_t)((p[0] + p[3]) << 7), gs = (uint16_t)((p[1] + p[4]) << 7), rs = (uint16_t)((p[2] + p[5]) << 7);
    uint16_t u = (uint16_t)((uint16_t)(16384u + 64u + mulhi16(bs, C112) - mulhi16(rs, UR) - mulhi16(gs, UG)) >> 7);
    uint16_t v = (uint16_t)((uint16_t)(16384u + 64u + mulhi16(rs, C112) - mulhi16(gs, VG) - mulhi16(bs, VB)) >> 7);
    o[0] = (uint8_t)y0, o[1] = (uint8_t)u, o[2] = (uint8_t)y1, o[3] = (uint8_t)v;
}

static void bgr_to_yuyv_rows(const uint8_t *restrict bgr, ptrdiff_t bstride, int height, int width,
                             uint8_t *restrict out, ptrdiff_t ostride) {
#if defined(__SSSE3__)
#if defined(__AVX2__)
    const __m128i b0 = SPLIT_B0, b1 = SPLIT_B1, b2 = SPLIT_B2, g0 = SPLIT_G0, g1 = SPLIT_G1, g2 = SPLIT_G2;
    const __m128i r0 = SPLIT_R0, r1 = SPLIT_R1, r2 = SPLIT_R2;
#endif
    const __m128i zero = _mm_setzero_si128(), ones = _mm_set1_epi8(1);
    const __m128i yr = _mm_set1_epi16((short)YR), yg = _mm_set1_epi16((short)YG), yb = _mm_set1_epi16((short)YB);
    const __m128i c112 = _mm_set1_epi16((short)C112), ur = _mm_set1_epi16((short)UR), ug = _mm_set1_epi16((short)UG);
    const __m128i vg = _mm_set1_epi16((short)VG), vb = _mm_set1_epi16((short)VB);
    const __m128i yoff = _mm_set1_epi16(2048 + 64), coff = _mm_set1_epi16(16384 + 64);
#endif
    for (int y = 0; y < height; y++) {
        const uint8_t *restrict p = bgr + y * bstride;
        uint8_t *restrict o = out + y * ostride;
        int x = 0;
#if defined(__AVX2__)
        /* 32 pixels a step: the SSSE3 step below on two 16-pixel halves, one per 128-bit lane */
        for (; x + 32 <= width; x += 32) {
            const uint8_t *q = p + 3 * x;
#define LANES(off) _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(q + (off)))), \
                                           _mm_loadu_si128((const __m128i *)(q + 48 + (off))), 1)
            const __m256i a0 = LANES(0), a1 = LANES(16), a2 = LANES(32);
#undef LANES
#define BOTH(m) _mm256_broadcastsi128_si256(m)
            const __m256i B = _mm256_or_si256(_mm256_or_si256(_mm256_shuffle_epi8(a0, BOTH(b0)), _mm256_shuffle_epi8(a1, BOTH(b1))), _mm256_shuffle_epi8(a2, BOTH(b2)));
            const __m256i G = _mm256_or_si256(_mm256_or_si256(_mm256_shuffle_epi8(a0, BOTH(g0)), _mm256_shuffle_epi8(a1, BOTH(g1))), _mm256_shuffle_epi8(a2, BOTH(g2)));
            const __m256i R = _mm256_or_si256(_mm256_or_si256(_mm256_shuffle_epi8(a0, BOTH(r0)), _mm256_shuffle_epi8(a1, BOTH(r1))), _mm256_shuffle_epi8(a2, BOTH(r2)));
            const __m256i z = _mm256_setzero_si256();
            const __m256i Yr = BOTH(yr), Yg = BOTH(yg), Yb = BOTH(yb), Yoff = BOTH(yoff), Coff = BOTH(coff);
            const __m256i Ylo = _mm256_srli_epi16(_mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(
                _mm256_mulhi_epu16(_mm256_unpacklo_epi8(z, R), Yr), _mm256_mulhi_epu16(_mm256_unpacklo_epi8(z, G), Yg)),
                _mm256_mulhi_epu16(_mm256_unpacklo_epi8(z, B), Yb)), Yoff), 7);
            const __m256i Yhi = _mm256_srli_epi16(_mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(
                _mm256_mulhi_epu16(_mm256_unpackhi_epi8(z, R), Yr), _mm256_mulhi_epu16(_mm256_unpackhi_epi8(z, G), Yg)),
                _mm256_mulhi_epu16(_mm256_unpackhi_epi8(z, B), Yb)), Yoff), 7);
            const __m256i Y = _mm256_packus_epi16(Ylo, Yhi);
            const __m256i one = _mm256_set1_epi8(1);
            const __m256i bs = _mm256_slli_epi16(_mm256_maddubs_epi16(B, one), 7);
            const __m256i gs = _mm256_slli_epi16(_mm256_maddubs_epi16(G, one), 7);
            const __m256i rs = _mm256_slli_epi16(_mm256_maddubs_epi16(R, one), 7);
            const __m256i U = _mm256_srli_epi16(_mm256_sub_epi16(_mm256_sub_epi16(_mm256_add_epi16(Coff,
                _mm256_mulhi_epu16(bs, BOTH(c112))), _mm256_mulhi_epu16(rs, BOTH(ur))), _mm256_mulhi_epu16(gs, BOTH(ug))), 7);
            const __m256i V = _mm256_srli_epi16(_mm256_sub_epi16(_mm256_sub_epi16(_mm256_add_epi16(Coff,
                _mm256_mulhi_epu16(rs, BOTH(c112))), _mm256_mulhi_epu16(gs, BOTH(vg))), _mm256_mulhi_epu16(bs, BOTH(vb))), 7);
#undef BOTH
            const __m256i UV = _mm256_or_si256(U, _mm256_slli_epi16(V, 8));
            const __m256i lo = _mm256_unpacklo_epi8(Y, UV), hi = _mm256_unpackhi_epi8(Y, UV);
            _mm_storeu_si128((__m128i *)(o + 2 * x), _mm256_castsi256_si128(lo));
            _mm_storeu_si128((__m128i *)(o + 2 * x + 16), _mm256_castsi256_si128(hi));
            _mm_storeu_si128((__m128i *)(o + 2 * x + 32), _mm256_extracti128_si256(lo, 1));
            _mm_storeu_si128((__m128i *)(o + 2 * x + 48), _mm256_extracti128_si256(hi, 1));
        }
#endif
#if defined(__SSSE3__)
        for (; x + 16 <= width; x += 16) {
            __m128i B, G, R;
            split_bgr16(p + 3 * x, &B, &G, &R);
            /* x << 8 of each byte as a 16-bit lane: the byte in the high half */
            const __m128i Ylo = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(
                _mm_add_epi16(_mm_mulhi_epu16(_mm_unpacklo_epi8(zero, R), yr), _mm_mulhi_epu16(_mm_unpacklo_epi8(zero, G), yg)),
                _mm_mulhi_epu16(_mm_unpacklo_epi8(zero, B), yb)), yoff), 7);
            const __m128i Yhi = _mm_srli_epi16(_mm_add_epi16(_mm_add_epi16(
                _mm_add_epi16(_mm_mulhi_epu16(_mm_unpackhi_epi8(zero, R), yr), _mm_mulhi_epu16(_mm_unpackhi_epi8(zero, G), yg)),
                _mm_mulhi_epu16(_mm_unpackhi_epi8(zero, B), yb)), yoff), 7);
            const __m128i Y = _mm_packus_epi16(Ylo, Yhi);
            const __m128i bs = _mm_slli_epi16(_mm_maddubs_epi16(B, ones), 7);    /* pair sums << 7 */
            const __m128i gs = _mm_slli_epi16(_mm_maddubs_epi16(G, ones), 7);
            const __m128i rs = _mm_slli_epi16(_mm_maddubs_epi16(R, ones), 7);
            const __m128i U = _mm_srli_epi16(_mm_sub_epi16(_mm_sub_epi16(_mm_add_epi16(coff, _mm_mulhi_epu16(bs, c112)),
                                                                      _mm_mulhi_epu16(rs, ur)), _mm_mulhi_epu16(gs, ug)), 7);
            const __m128i V = _mm_srli_epi16(_mm_sub_epi16(_mm_sub_epi16(_mm_add_epi16(coff, _mm_mulhi_epu16(rs, c112)),
                                                                      _mm_mulhi_epu16(gs, vg)), _mm_mulhi_epu16(bs, vb)), 7);
            const __m128i UV = _mm_or_si128(U, _mm_slli_epi16(V, 8));             /* u0 v0 u1 v1 ... */
            _mm_storeu_si128((__m128i *)(o + 2 * x), _mm_unpacklo_epi8(Y, UV));
            _mm_storeu_si128((__m128i *)(o + 2 * x + 16), _mm_unpackhi_epi8(Y, UV));
        }
#endif
        for (; x < width; x += 2) yuyv_pair(p + 3 * x, o + 2 * x);
    }
}

int EXPORT(hc_bgr_to_yuyv)(const uint8_t *restrict bgr, ptrdiff_t bstride, int height, int width,
                           uint8_t *restrict out, ptrdiff_t ostride) {
    if (width < 2 || (width & 1) || width > MAX_WIDTH || height < 1) return -1;
    bgr_to_yuyv_rows(bgr, bstride, height, width, out, ostride);
    return 0;
}
