/* The sink's compositing passes: the hologram fused with the composite, the composite alone
 * (either writing BGR or, for the virtual camera, YUYV) and BGR -> YUYV. The refiner's passes are
 * in refine_ops.c; both are linked into one library (capture_sink/native/build.py).
 *
 * Why native: at 1280x720 each OpenCV call is one full pass over 2.7 MB of pixels, and the
 * hologram plus the composite take eleven of them. Here each output byte is computed once from
 * its inputs: the tint of the few rows the ghost reads lives in a small ring that stays in
 * cache, and a row's pixels where the mask is 0 are a copy of the background. The loops are
 * written so GCC vectorises them (flat byte loops, restrict pointers, 16-bit lanes); each source is
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
#include "frame_passes.h"

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

/* Fixed point of the hologram, all in 16-bit lanes (16 bytes per AVX2 multiply, mulhi16):
 * a byte x is held as X = x << 7 and a weight w < 1 as W = round(w 65536), so
 * mulhi(X, W) = (X W) >> 16 is x w in 1/128 of a level (truncation error < 1/128 per term).
 * The sum of the four terms stays below 36000 (0.5 + 0.6 of 255, in 1/128), inside 16 bits. */
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

/* [*c0, *c1): the columns of a row whose output is made as BGR first. All of them, unless the
 * background's YUYV is at hand: then only the pixel pairs that hold a pixel of the span [x0, x1)
 * (the mask above 0), the rest of the row being the background's YUYV as it is. */
static void bgr_columns(int x0, int x1, int width, int have_bg_yuyv, int *c0, int *c1) {
    if (!have_bg_yuyv) {
        *c0 = 0, *c1 = width;
    } else if (x1 <= x0) {
        *c0 = *c1 = 0;
    } else {
        *c0 = x0 & ~1;
        *c1 = (x1 + 1) & ~1;                                          /* <= width: widths are even */
    }
}

/* One output row as YUYV: the BGR columns [c0, c1) of `rowbuf` converted, the others copied
 * from the background's YUYV row `bgy` (NULL when [c0, c1) is the whole row). With `span` (a
 * reused output frame, see hc_hologram_composite) the row already holds `bgy` outside the columns
 * [span[0], span[1]): only those are copied, and the row's new [c0, c1) is stored there. */
static void yuyv_row(const uint8_t *restrict rowbuf, int c0, int c1, int width, const uint8_t *restrict bgy,
                     uint8_t *restrict out, int32_t *restrict span) {
    if (bgy != NULL && span != NULL) {
        const int p0 = span[0], p1 = span[1];
        const int left = p1 < c0 ? p1 : c0, right = p0 > c1 ? p0 : c1;  /* [p0, left), [right, p1) */
        if (left > p0) memcpy(out + 2 * p0, bgy + 2 * p0, (size_t)2 * (left - p0));
        if (p1 > right) memcpy(out + 2 * right, bgy + 2 * right, (size_t)2 * (p1 - right));
        span[0] = c0, span[1] = c1;
    } else if (bgy != NULL) {
        memcpy(out, bgy, (size_t)2 * c0);
        memcpy(out + 2 * c1, bgy + 2 * c1, (size_t)2 * (width - c1));
    }
    if (c1 > c0) bgr_to_yuyv_rows(rowbuf + 3 * c0, 0, 1, c1 - c0, out + 2 * c0, 0);
}

/* The alpha given at 1/k of the frame (the refiner's working size, k = 2..4), scaled up row by
 * row inside the passes (upsample_row_at, frame_passes.h): the frame-sized alpha is never stored,
 * written and read back. Before the rows are made, the columns each output row can show are
 * bounded from the small alpha: an output pixel above 0 needs one above 0 among the source rows
 * y / k - 1 .. y / k + 1 and columns x / k - 1 .. x / k + 1 (every bilinear weight is positive,
 * none reaches past a neighbour). `bound` gets [x0, x1) per output row, or an empty span. */
static void bound_scaled_rows(const uint8_t *restrict alpha, ptrdiff_t astride, int ah, int aw, int k,
                              int32_t *restrict low, int32_t *restrict bound, int width) {
    for (int i = 0; i < ah; i++) {
        int x0, x1;
        alpha_span(alpha + i * astride, aw, &x0, &x1);
        low[2 * i] = x0, low[2 * i + 1] = x1;
    }
    for (int y = 0; y < ah * k; y++) {
        const int i = y / k;
        int lo = aw, hi = 0;
        for (int n = i - 1; n <= i + 1; n++) {
            if (n < 0 || n >= ah || low[2 * n + 1] <= low[2 * n]) continue;
            lo = low[2 * n] < lo ? low[2 * n] : lo;
            hi = low[2 * n + 1] > hi ? low[2 * n + 1] : hi;
        }
        if (hi > lo) {
            const int x0 = k * (lo - 1), x1 = k * (hi + 1);
            bound[2 * y] = x0 > 0 ? x0 : 0, bound[2 * y + 1] = x1 < width ? x1 : width;
        } else {
            bound[2 * y] = bound[2 * y + 1] = width;                  /* nothing shows in this row */
        }
    }
}

/* The alpha row y of a pass and its span [*x0, *x1) of values above 0: the frame-sized row, or with
 * k > 1 the row made from the small alpha into `abuf` where `bound` says it can show anything. */
static const uint8_t *alpha_row(const uint8_t *restrict alpha, ptrdiff_t astride, int k, const upsampler *u,
                                int ah, int aw, int y, const int32_t *restrict bound, uint16_t *restrict v,
                                uint8_t *restrict abuf, int width, int *x0, int *x1) {
    if (k == 1) {
        alpha_span(alpha + y * astride, width, x0, x1);
        return alpha + y * astride;
    }
    if (bound[2 * y + 1] <= bound[2 * y]) {
        *x0 = *x1 = width;
        return abuf;
    }
    upsample_row_at(u, alpha, astride, ah, aw, y, v, abuf);
    alpha_span(abuf, width, x0, x1);
    return abuf;
}

/* A reused frame's spans must lie in the row, in pixel pairs: anything else is refused (-2),
 * never trusted as an index. */
static int spans_ok(const int32_t *spans, int height, int width) {
    for (int y = 0; spans != NULL && y < height; y++) {
        const int32_t p0 = spans[2 * y], p1 = spans[2 * y + 1];
        if (p0 < 0 || p1 < p0 || p1 > width || (p0 & 1) || (p1 & 1)) return 0;
    }
    return 1;
}

/* Asks for the cache lines of [p, p + n) before the pass gets there (`write`: they are about to be
 * stored). The hologram pass touches each row only over the person's span: a new short stream
 * every row, which the hardware prefetchers pick up a few lines late, and on a core that comes back
 * cold after the frame gap (docs/sink-performance.md, stop 29) those lines come from memory. */
static inline void prefetch_bytes(const uint8_t *p, size_t n, int write) {
    const uint8_t *end = p + n;
    for (const uint8_t *q = (const uint8_t *)((uintptr_t)p & ~(uintptr_t)63); q < end; q += 64) {
        if (write) __builtin_prefetch(q, 1, 3);
        else __builtin_prefetch(q, 0, 3);
    }
}

/* The lines the hologram pass's next step blends: the background row over the span [x0, x1) of
 * BGR pixels, and the output row written there (2 bytes a pixel for YUYV). */
static void prefetch_blend(const uint8_t *restrict bg, uint8_t *restrict out, int out_yuyv, int x0, int x1) {
    if (x1 <= x0) return;
    if (bg != NULL) prefetch_bytes(bg + 3 * x0, (size_t)3 * (x1 - x0), 0);
    const int bpp = out_yuyv ? 2 : 3;
    prefetch_bytes(out + bpp * x0, (size_t)bpp * (x1 - x0), 1);
}

/* The hologram of `frame` composited over `bg` through `alpha` into `out`; with `bg` NULL the
 * hologram alone (alpha unused). `lut` is the 256 x 3 BGR tint of each grey level; `weights`
 * holds three uint16 per output row, the weights (in 1/65536) of the tint at (y-s, x-s),
 * (y, x) and (y+s, x+s). Only what the mask shows is computed: the tint of the rows and columns
 * that output pixels with a mask above 0 read (the person's rows +-s, columns +-s); the rest of
 * each row is a copy of the background. With `out_yuyv` set, `out` takes YUYV (2 bytes a pixel,
 * even widths only), each row converted as hc_bgr_to_yuyv does while it is still in L1: the frame
 * is never stored as BGR and the v4l2 writer has nothing left to convert. `bg_yuyv` (YUYV output
 * only; NULL for none) is `bg` already converted (hc_bgr_to_yuyv): the pixel pairs the mask leaves
 * at 0 are then copied from it, 2 bytes a pixel, and only the pairs the person touches are
 * converted (a still background's YUYV is made once, not every frame). `spans` (with `bg_yuyv`
 * only; NULL for none) marks `out` as a reused frame that already holds `bg_yuyv` except in the
 * columns [spans[2y], spans[2y + 1]) of each row y: only what changed is written then (a person
 * who moves a little rewrites a sliver of the background, not the whole), and `spans` is updated.
 * Returns 0, -1 for a bad size or no memory, -2 for bad spans. */
int EXPORT(hc_hologram_composite)(const uint8_t *restrict frame, ptrdiff_t fstride, int height, int width,
                                  const uint8_t *restrict lut, int shift, const uint16_t *restrict weights,
                                  const uint8_t *restrict bg, ptrdiff_t bstride,
                                  const uint8_t *restrict alpha, ptrdiff_t astride, int alpha_k,
                                  uint8_t *restrict out, ptrdiff_t ostride, int out_yuyv,
                                  const uint8_t *restrict bg_yuyv, ptrdiff_t ystride, int32_t *restrict spans) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || shift < 0 || (out_yuyv && (width & 1))) return -1;
    if (bg_yuyv != NULL && (!out_yuyv || bg == NULL)) return -1;
    if (alpha_k < 1 || alpha_k > 4 || height % alpha_k || width % alpha_k) return -1;
    if (spans != NULL && (bg_yuyv == NULL || !spans_ok(spans, height, width))) return -2;
    const int slots = 2 * shift + 1, s3 = 3 * shift;
    const size_t row_bytes = (size_t)3 * (size_t)(width + 2 * shift);   /* tint row with a zero border */
    /* The tint of rows y-s .. y+s, each at slot (row mod slots), plus one zero row for rows
     * outside the frame (the seed's zero fill of the shifted copies). */
    uint8_t *ring = calloc((size_t)(slots + 1) * row_bytes, 1);
    uint8_t *a3 = malloc((size_t)3 * (size_t)width);
    uint8_t *gray = malloc((size_t)width);
    uint8_t *rowbuf = malloc((size_t)3 * (size_t)width);                /* a BGR row before YUYV */
    int32_t *row_spans = malloc(sizeof(int32_t) * 2 * (size_t)height);      /* x0, x1 of each row */
    int32_t *shown = malloc(sizeof(int32_t) * ((size_t)height + 1));    /* rows with a span, prefix sums */
    const int ah = height / alpha_k, aw = width / alpha_k;
    int32_t *low = malloc(sizeof(int32_t) * 2 * (size_t)ah);            /* spans of a small alpha's rows */
    uint8_t *abuf = malloc((size_t)width);                              /* a scaled alpha row */
    uint16_t *v = malloc(sizeof(uint16_t) * ((size_t)aw + 2));
    uint32_t lut4[256];
    if (ring == NULL || a3 == NULL || gray == NULL || rowbuf == NULL || row_spans == NULL || shown == NULL
            || low == NULL || abuf == NULL || v == NULL) {
        free(ring), free(a3), free(gray), free(rowbuf), free(row_spans), free(shown), free(low), free(abuf), free(v);
        return -1;
    }
    upsampler u;
    upsampler_init(&u, alpha_k > 1 ? alpha_k : 2);
    /* Each row's span: exact for a frame-sized alpha, bounded for a small one (then made exact
     * row by row below); the tint rows and columns computed follow these. */
    if (bg != NULL && alpha_k > 1) bound_scaled_rows(alpha, astride, ah, aw, alpha_k, low, row_spans, width);
    shown[0] = 0;
    for (int y = 0; y < height; y++) {
        int32_t *span = row_spans + 2 * y;
        if (bg == NULL) span[0] = 0, span[1] = width;                  /* the hologram alone: every pixel */
        else if (alpha_k == 1) alpha_span(alpha + y * astride, width, &span[0], &span[1]);
        shown[y + 1] = shown[y] + (span[1] > span[0]);
    }
    const uint8_t *zero = ring + (size_t)slots * row_bytes;
    make_lut4(lut, lut4);
    for (int y = -shift; y < height; y++) {
        int r = y + shift;                                             /* the tint row this step adds */
        if (r < height) {
            int lo = r - shift > 0 ? r - shift : 0, hi = r + shift + 1 < height ? r + shift + 1 : height;
            if (shown[hi] - shown[lo] > 0) {                           /* some shown row reads it */
                /* Only the columns those rows read: their spans +-s (the ghost's offsets), not the
                 * whole person's width (a head's rows read far less than the shoulders'). */
                int c0 = width, c1 = 0;
                for (int n = lo; n < hi; n++) {
                    if (row_spans[2 * n + 1] <= row_spans[2 * n]) continue;
                    c0 = row_spans[2 * n] < c0 ? row_spans[2 * n] : c0;
                    c1 = row_spans[2 * n + 1] > c1 ? row_spans[2 * n + 1] : c1;
                }
                c0 = c0 - shift > 0 ? c0 - shift : 0;
                c1 = c1 + shift < width ? c1 + shift : width;
                tint_row(frame + r * fstride + 3 * c0, lut4, gray,
                         ring + (size_t)(r % slots) * row_bytes + s3 + 3 * c0, c1 - c0);
            }
        }
        if (y < 0) continue;
        if (r + 1 < height && row_spans[2 * (r + 1) + 1] > row_spans[2 * (r + 1)]) {
            /* the frame row the next step tints, over that row's own span +-s: the tint may reach
             * a little wider (the neighbouring rows' spans), but this is only a hint */
            int p0 = row_spans[2 * (r + 1)] - shift, p1 = row_spans[2 * (r + 1) + 1] + shift;
            p0 = p0 > 0 ? p0 : 0, p1 = p1 < width ? p1 : width;
            prefetch_bytes(frame + (r + 1) * fstride + 3 * p0, (size_t)3 * (p1 - p0), 0);
        }
        if (y + 1 < height)                                            /* the next step's blend */
            prefetch_blend(bg != NULL ? bg + (y + 1) * bstride : NULL, out + (y + 1) * ostride, out_yuyv,
                           row_spans[2 * (y + 1)], row_spans[2 * (y + 1) + 1]);
        const uint8_t *b = bg != NULL ? bg + y * bstride : NULL;
        uint8_t *o = out_yuyv ? rowbuf : out + y * ostride;
        int x0 = row_spans[2 * y], x1 = row_spans[2 * y + 1];
        const uint8_t *arow = NULL;
        if (b != NULL && alpha_k == 1) arow = alpha + y * astride;
        if (b != NULL && alpha_k > 1) arow = alpha_row(alpha, astride, alpha_k, &u, ah, aw, y, row_spans, v, abuf,
                                                        width, &x0, &x1);
        int c0, c1;                                                    /* the columns made as BGR */
        bgr_columns(x0, x1, width, bg_yuyv != NULL, &c0, &c1);
        if (b != NULL && c1 > c0) {                                    /* c0 <= x0 <= x1 <= c1 then */
            memcpy(o + 3 * c0, b + 3 * c0, (size_t)3 * (x0 - c0));     /* mask 0: the background */
            memcpy(o + 3 * x1, b + 3 * x1, (size_t)3 * (c1 - x1));
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
                spread_alpha(arow + x0, a3, x1 - x0);
                holo_blend_row(f + i0, pa + i0, pc + i0, pb + i0, b + i0, a3, o + i0, n, w[0], w[1], w[2]);
            }
        }
        if (out_yuyv) yuyv_row(rowbuf, c0, c1, width, bg_yuyv != NULL ? bg_yuyv + y * ystride : NULL, out + y * ostride,
                               spans != NULL ? spans + 2 * y : NULL);
    }
    free(ring), free(a3), free(gray), free(rowbuf), free(row_spans), free(shown), free(low), free(abuf), free(v);
    return 0;
}

/* out = fg over bg through alpha (uint8, 255 = fg), exact rounding; YUYV with `out_yuyv`, and
 * `bg_yuyv` and `spans`, as above. Returns 0, or -1 as above. */
int EXPORT(hc_composite)(const uint8_t *restrict fg, ptrdiff_t fstride, int height, int width,
                         const uint8_t *restrict bg, ptrdiff_t bstride,
                         const uint8_t *restrict alpha, ptrdiff_t astride, int alpha_k,
                         uint8_t *restrict out, ptrdiff_t ostride, int out_yuyv,
                         const uint8_t *restrict bg_yuyv, ptrdiff_t ystride, int32_t *restrict spans) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || (out_yuyv && (width & 1))) return -1;
    if (bg_yuyv != NULL && !out_yuyv) return -1;
    if (alpha_k < 1 || alpha_k > 4 || height % alpha_k || width % alpha_k) return -1;
    if (spans != NULL && (bg_yuyv == NULL || !spans_ok(spans, height, width))) return -2;
    const int ah = height / alpha_k, aw = width / alpha_k;
    uint8_t *a3 = malloc((size_t)3 * (size_t)width);
    uint8_t *rowbuf = malloc((size_t)3 * (size_t)width);                /* a BGR row before YUYV */
    int32_t *low = malloc(sizeof(int32_t) * 2 * (size_t)ah);
    int32_t *bound = malloc(sizeof(int32_t) * 2 * (size_t)height);
    uint8_t *abuf = malloc((size_t)width);
    uint16_t *v = malloc(sizeof(uint16_t) * ((size_t)aw + 2));
    if (a3 == NULL || rowbuf == NULL || low == NULL || bound == NULL || abuf == NULL || v == NULL) {
        free(a3), free(rowbuf), free(low), free(bound), free(abuf), free(v);
        return -1;
    }
    upsampler u;
    upsampler_init(&u, alpha_k > 1 ? alpha_k : 2);
    if (alpha_k > 1) bound_scaled_rows(alpha, astride, ah, aw, alpha_k, low, bound, width);
    for (int y = 0; y < height; y++) {
        const uint8_t *f = fg + y * fstride, *b = bg + y * bstride;
        uint8_t *o = out_yuyv ? rowbuf : out + y * ostride;
        int x0, x1, c0, c1;
        const uint8_t *arow = alpha_row(alpha, astride, alpha_k, &u, ah, aw, y, bound, v, abuf, width, &x0, &x1);
        bgr_columns(x0, x1, width, bg_yuyv != NULL, &c0, &c1);
        if (c1 > c0) {                                                 /* c0 <= x0 <= x1 <= c1 then */
            memcpy(o + 3 * c0, b + 3 * c0, (size_t)3 * (x0 - c0));
            memcpy(o + 3 * x1, b + 3 * x1, (size_t)3 * (c1 - x1));
        }
        if (x1 > x0) {
            spread_alpha(arow + x0, a3, x1 - x0);
            int i0 = 3 * x0;
            blend_row(f + i0, b + i0, a3, o + i0, 3 * (x1 - x0));
        }
        if (out_yuyv) yuyv_row(rowbuf, c0, c1, width, bg_yuyv != NULL ? bg_yuyv + y * ystride : NULL, out + y * ostride,
                               spans != NULL ? spans + 2 * y : NULL);
    }
    free(a3), free(rowbuf), free(low), free(bound), free(abuf), free(v);
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
