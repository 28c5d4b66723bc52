/* What the sink's native passes share (frame_ops.c, refine_ops.c): the build's symbol names, the
 * width limit, a 16-bit high multiply and the byte shuffles that split BGR pixels into channels. */
#ifndef HOLOCAM_FRAME_PASSES_H
#define HOLOCAM_FRAME_PASSES_H

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

/* (x w) >> 16: the fixed-point multiply of the hologram, the YUYV conversion and the 3x/4x
 * upsample (a weight w < 1 held as round(w 65536)); GCC turns it into 16-bit high multiplies. */
static inline uint16_t mulhi16(uint16_t x, uint16_t w) {
    return (uint16_t)(((uint32_t)x * (uint32_t)w) >> 16);
}

/* The alpha scaled up by a whole factor k (2..4), one output row at a time: hc_upsample
 * (refine_ops.c) is these rows, and the fused passes (frame_ops.c) make each row of an alpha
 * given at the working size as they need it, so the frame-sized alpha is never stored. Each output
 * pixel sits at (p + 0.5) / k - 0.5 of its source pixel along each axis (p its phase) and is
 * blended with the neighbour on that side by that distance: at 2x (9 n + 3 h + 3 v + d) / 16,
 * exactly rounded; at 3x and 4x within a level of exact. */
typedef struct {
    int k;
    int side[4];                            /* -1 or +1: the neighbour of each phase */
    uint16_t w8[4], wn[4], wf[4];           /* vertical far weight in 1/256; horizontal in 1/65536 */
} upsampler;

static inline void upsampler_init(upsampler *u, int k) {
    u->k = k;
    for (int p = 0; p < k; p++) {
        int d = 2 * p + 1 - k;             /* the distance to the source pixel, in 1/(2k) */
        u->side[p] = d < 0 ? -1 : 1;
        u->w8[p] = (uint16_t)((abs(d) * 256 + k) / (2 * k));
        uint32_t far = (uint32_t)((abs(d) * 65536 + k) / (2 * k));
        u->wf[p] = (uint16_t)far;
        u->wn[p] = (uint16_t)(65536u - far > 65535u ? 65535u : 65536u - far);
    }
}

/* One output row at 2x: `v` is 3 near + far of each source pixel (the vertical blend in quarters,
 * one repeated pixel at each end, v[-1] and v[width]); output 2j and 2j + 1 are
 * (3 v[j] + v[j -+ 1] + 8) / 16. All in 16-bit lanes. */
static inline void upsample2_row(const uint16_t *restrict v, uint8_t *restrict o, int width) {
    for (int j = 0; j < width; j++) {
        uint16_t c = (uint16_t)(3u * v[j] + 8u);
        o[2 * j] = (uint8_t)((uint16_t)(c + v[j - 1]) >> 4);
        o[2 * j + 1] = (uint8_t)((uint16_t)(c + v[j + 1]) >> 4);
    }
}

/* One output row at k = 3 or 4: `v` is the vertical blend in 1/256 of a level (<= 65280); output
 * k j + p is near v[j] + far v[j + side], each weight in 1/65536 through a 16-bit high multiply
 * (truncating below 1/256 of a level), then rounded. Inlined with k a constant. */
static inline void upsamplek_row(const uint16_t *restrict v, uint8_t *restrict o, int width, const int k,
                                 const int *restrict side, const uint16_t *restrict wn,
                                 const uint16_t *restrict wf) {
    for (int j = 0; j < width; j++) {
        for (int p = 0; p < k; p++) {
            uint16_t sum = (uint16_t)(mulhi16(v[j], wn[p]) + mulhi16(v[j + side[p]], wf[p]) + 128u);
            o[k * j + p] = (uint8_t)(sum >> 8);
        }
    }
}

/* Output row y (k width pixels) of `src` (height x width) scaled up by u->k; `v` holds width + 2
 * uint16 of scratch. */
static inline void upsample_row_at(const upsampler *u, const uint8_t *restrict src, ptrdiff_t sstride,
                                   int height, int width, int y, uint16_t *restrict v, uint8_t *restrict o) {
    const int k = u->k, i = y / k, p = y % k;
    int j = i + u->side[p];
    j = j < 0 ? 0 : (j >= height ? height - 1 : j);
    const uint8_t *restrict near = src + i * sstride, *restrict far = src + j * sstride;
    uint16_t *restrict row = v + 1;
    if (k == 2) {
        for (int x = 0; x < width; x++) row[x] = (uint16_t)(3u * near[x] + far[x]);
    } else {
        const uint16_t f8 = u->w8[p], n8 = (uint16_t)(256u - u->w8[p]);
        for (int x = 0; x < width; x++) row[x] = (uint16_t)(n8 * near[x] + f8 * far[x]);
    }
    v[0] = row[0], row[width] = row[width - 1];
    if (k == 2) upsample2_row(row, o, width);
    else if (k == 3) upsamplek_row(row, o, width, 3, u->side, u->wn, u->wf);
    else upsamplek_row(row, o, width, 4, u->side, u->wn, u->wf);
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

#endif

#endif
