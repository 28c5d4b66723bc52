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
