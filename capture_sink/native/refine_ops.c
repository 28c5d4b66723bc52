/* The refiner's native passes (capture_sink/refine.py): the guide's grey at the working size,
 * the fast guided filter's coefficients and their apply, and the alpha scaled up to the frame's
 * size. Built and chosen like frame_ops.c (capture_sink/native/build.py, choice.py); each pass
 * matches the OpenCV calls it replaces exactly or within a level, as its comment says. */
#include "frame_passes.h"

/* out (k h x k w) = src (h x w) scaled up by a whole factor k (2..4), bilinear with pixel centres
 * aligned and borders repeated (OpenCV's INTER_LINEAR): each row as upsample_row_at makes it
 * (frame_passes.h; the fused passes of frame_ops.c scale an alpha at the working size the same
 * way, row by row). At 2x exactly rounded; at 3x and 4x within a level of exact. The refiner's last
 * step, alpha at work size to the frame's size, where OpenCV's 1-channel resize took 0.65 ms at
 * 720p (2x) and 1.3 ms at 1080p (3x). Returns 0, or -1 for a bad size or factor, or no memory. */
int EXPORT(hc_upsample)(const uint8_t *restrict src, ptrdiff_t sstride, int height, int width, int k,
                        uint8_t *restrict out, ptrdiff_t ostride) {
    if (width < 1 || width > MAX_WIDTH || height < 1 || k < 2 || k > 4) return -1;
    uint16_t *v = malloc(sizeof(uint16_t) * ((size_t)width + 2));
    if (v == NULL) return -1;
    upsampler u;
    upsampler_init(&u, k);
    for (int y = 0; y < k * height; y++) upsample_row_at(&u, src, sstride, height, width, y, v, out + y * ostride);
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

/* One row of the model's input taken with the guide: every f-th pixel of a frame row, BGR -> RGB
 * (what shared/resize.py's whole-factor stretch, INTER_NEAREST then BGR2RGB, makes of that row). */
static void sample_row(const uint8_t *restrict p, int f, int width, uint8_t *restrict o) {
    for (int j = 0; j < width; j++) {
        const uint8_t *q = p + 3 * f * j;
        o[3 * j] = q[2], o[3 * j + 1] = q[1], o[3 * j + 2] = q[0];
    }
}

/* `sample` (NULL for none): also the model's input, the frame subsampled by the whole factor f
 * (sh x sw RGB pixels, rows `sstride` apart; f sh = height, f sw = width), each of its rows
 * taken while the guide's pass has that frame row in cache: the frame is read once for both. */
int EXPORT(hc_guide_gray)(const uint8_t *restrict frame, ptrdiff_t fstride, int height, int width, int k,
                          uint8_t *restrict out, ptrdiff_t ostride,
                          uint8_t *restrict sample, ptrdiff_t sstride, int f) {
    if (k < 2 || width < k || height < k || width / k > MAX_WIDTH) return -1;
    if (sample != NULL && (f < 1 || height % f || width % f)) return -1;
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
        for (int r = y * k; sample != NULL && r < (y + 1) * k; r++) {
            if (r % f == 0) sample_row(frame + (ptrdiff_t)r * fstride, f, width / f, sample + (r / f) * sstride);
        }
    }
    for (int r = oh * k; sample != NULL && r < height; r++) {          /* rows below the guide's last */
        if (r % f == 0) sample_row(frame + (ptrdiff_t)r * fstride, f, width / f, sample + (r / f) * sstride);
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
