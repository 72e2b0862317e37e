// ggml block formats to float32 (see include/gguf_dequant.h). Each format is one function over whole blocks; the
// inner loops run over 16 or 32 values that share a scale, so the compiler vectorises them. Every product and
// difference is rounded to float32 on its own, in gguf-py's order (no FMA contraction), which is what makes the
// results bit-identical to gguf.quants.dequantize. Block layouts: ggml-common.h (block_q4_0 ... block_q6_K).
#pragma STDC FP_CONTRACT OFF
#include "gguf_dequant.h"
#include <string.h>

float gd_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = h & 0x7fff;
    uint32_t bits;
    if (em >= 0x7c00) {
        bits = sign | 0x7f800000 | ((em & 0x3ff) << 13);  // infinity, NaN (payload kept)
    } else if (em >= 0x0400) {
        bits = sign | ((em << 13) + 0x38000000);  // normal: exponent rebiased by 127 - 15
    } else {
        float f = (float)em * 5.9604644775390625e-08f;  // subnormal or zero: em * 2^-24, exact
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

uint16_t gd_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? (0x200 | ((ax >> 13) & 0x3ff)) : 0);
    if (ax >= 0x477ff000) return sign | 0x7c00;  // 65520 and above round to infinity
    if (ax >= 0x38800000) {                      // a normal half: rebias, round to nearest even at bit 13
        ax += 0xc8000fffu + ((ax >> 13) & 1);
        return sign | (uint16_t)(ax >> 13);
    }
    uint32_t e = ax >> 23;
    if (e < 102) return sign;  // below 2^-25: rounds to zero
    uint32_t m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}

static inline float f16at(const uint8_t *p) { return gd_half_to_float((uint16_t)(p[0] | (p[1] << 8))); }

static inline uint32_t u32at(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void dq_f16(const uint8_t *s, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = f16at(s + 2 * i);
}

static void dq_bf16(const uint8_t *s, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b = ((uint32_t)s[2 * i] | ((uint32_t)s[2 * i + 1] << 8)) << 16;
        memcpy(y + i, &b, 4);
    }
}

static void dq_q8_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 34, y += 32) {
        float d = f16at(b);
        const int8_t *q = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d;
    }
}

static void dq_q4_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 18, y += 32) {
        float d = f16at(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((int)(qs[j] & 0xF) - 8);
            y[j + 16] = d * (float)((int)(qs[j] >> 4) - 8);
        }
    }
}

static void dq_q4_1(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 20, y += 32) {
        float d = f16at(b), m = f16at(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(qs[j] & 0xF) + m;
            y[j + 16] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

static void dq_q5_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 22, y += 32) {
        float d = f16at(b);
        uint32_t qh = u32at(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int x1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(x0 - 16);
            y[j + 16] = d * (float)(x1 - 16);
        }
    }
}

static void dq_q5_1(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 24, y += 32) {
        float d = f16at(b), m = f16at(b + 2);
        uint32_t qh = u32at(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int x1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)x0 + m;
            y[j + 16] = d * (float)x1 + m;
        }
    }
}

// Q2_K, 84 B per 256: scales u8[16] (low nibble scale, high nibble min), qs u8[64], d f16, dmin f16.
// Value i = 128g + 32s + l is (qs[32g + l] >> 2s) & 3, scaled by sub-block i / 16.
static void dq_q2_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 84, y += 256) {
        const uint8_t *sc = b, *qs = b + 16;
        float d = f16at(b + 80), dmin = f16at(b + 82);
        for (int g = 0; g < 2; g++)
            for (int s = 0; s < 4; s++)
                for (int h = 0; h < 2; h++) {
                    int j = 8 * g + 2 * s + h;  // sub-block of 16
                    float dl = d * (float)(sc[j] & 0xF), ml = dmin * (float)(sc[j] >> 4);
                    float *o = y + 16 * j;
                    const uint8_t *q = qs + 32 * g + 16 * h;
                    for (int l = 0; l < 16; l++) o[l] = dl * (float)((q[l] >> (2 * s)) & 3) - ml;
                }
    }
}

// Q3_K, 110 B per 256: hmask u8[32], qs u8[64], scales u8[12] (sixteen 6-bit scales), d f16.
// Value i = 128g + 32s + l: low bits (qs[32g + l] >> 2s) & 3, minus 4 unless bit i / 32 of hmask[l] is set.
static void dq_q3_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 110, y += 256) {
        const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
        float d = f16at(b + 108);
        float dl[16];
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
            int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            dl[j] = d * (float)((int8_t)(lo | (hi << 4)) - 32);
        }
        for (int g = 0; g < 2; g++)
            for (int sh = 0; sh < 4; sh++) {
                int bit = 4 * g + sh;  // i / 32
                float *o = y + 32 * bit;
                const uint8_t *q = qs + 32 * g;
                for (int h = 0; h < 2; h++) {
                    float dd = dl[2 * bit + h];
                    for (int l = 16 * h; l < 16 * h + 16; l++) {
                        int v = ((q[l] >> (2 * sh)) & 3) - ((((hm[l] >> bit) & 1) ^ 1) << 2);
                        o[l] = dd * (float)v;
                    }
                }
            }
    }
}

// The eight 6-bit (scale, min) pairs of Q4_K and Q5_K (get_scale_min_k4 in ggml-quants.c).
static inline void scale_min_k4(const uint8_t *s, int sc[8], int m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
        m[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
}

// Q4_K, 144 B per 256: d f16, dmin f16, scales u8[12], qs u8[128]; value 64c + 32h + l is (qs[32c + l] >> 4h) & 0xF
// in sub-block 2c + h.
static void dq_q4_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 144, y += 256) {
        float d = f16at(b), dmin = f16at(b + 2);
        int sc[8], m[8];
        scale_min_k4(b + 4, sc, m);
        const uint8_t *qs = b + 16;
        for (int c = 0; c < 4; c++) {
            float d0 = d * (float)sc[2 * c], m0 = dmin * (float)m[2 * c];
            float d1 = d * (float)sc[2 * c + 1], m1 = dmin * (float)m[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            float *o = y + 64 * c;
            for (int l = 0; l < 32; l++) o[l] = d0 * (float)(q[l] & 0xF) - m0;
            for (int l = 0; l < 32; l++) o[32 + l] = d1 * (float)(q[l] >> 4) - m1;
        }
    }
}

// Q5_K, 176 B per 256: d, dmin, scales u8[12], qh u8[32], qs u8[128]; value i = 64c + 32h + l has low bits
// (qs[32c + l] >> 4h) & 0xF and high bit (qh[l] >> (i / 32)) & 1.
static void dq_q5_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 176, y += 256) {
        float d = f16at(b), dmin = f16at(b + 2);
        int sc[8], m[8];
        scale_min_k4(b + 4, sc, m);
        const uint8_t *qh = b + 16, *qs = b + 48;
        for (int c = 0; c < 4; c++) {
            int j0 = 2 * c, j1 = 2 * c + 1;
            float d0 = d * (float)sc[j0], m0 = dmin * (float)m[j0];
            float d1 = d * (float)sc[j1], m1 = dmin * (float)m[j1];
            const uint8_t *q = qs + 32 * c;
            float *o = y + 64 * c;
            for (int l = 0; l < 32; l++) o[l] = d0 * (float)((q[l] & 0xF) | (((qh[l] >> j0) & 1) << 4)) - m0;
            for (int l = 0; l < 32; l++) o[32 + l] = d1 * (float)((q[l] >> 4) | (((qh[l] >> j1) & 1) << 4)) - m1;
        }
    }
}

// Q6_K, 210 B per 256: ql u8[128], qh u8[64], scales i8[16], d f16 (last). Half n covers values 128n..: four runs
// of 32 take ql low/high nibbles and successive 2-bit fields of qh; each run of 16 has its own scale.
static void dq_q6_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t k = 0; k < nb; k++, b += 210, y += 256) {
        float d = f16at(b + 208);
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
            const int8_t *s = sc + 8 * n;
            float *o = y + 128 * n;
            for (int h = 0; h < 2; h++) {
                float d0 = d * (float)s[h], d1 = d * (float)s[h + 2], d2 = d * (float)s[h + 4], d3 = d * (float)s[h + 6];
                for (int l = 16 * h; l < 16 * h + 16; l++) {
                    o[l] = d0 * (float)((int)((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                    o[l + 32] = d1 * (float)((int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    o[l + 64] = d2 * (float)((int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    o[l + 96] = d3 * (float)((int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                }
            }
        }
    }
}

int gd_dequantize(int type, const uint8_t *src, float *dst, size_t n_blocks) {
    switch (type) {
    case GD_F32: memcpy(dst, src, n_blocks * 4); return 0;
    case GD_F16: dq_f16(src, dst, n_blocks); return 0;
    case GD_BF16: dq_bf16(src, dst, n_blocks); return 0;
    case GD_Q8_0: dq_q8_0(src, dst, n_blocks); return 0;
    case GD_Q4_0: dq_q4_0(src, dst, n_blocks); return 0;
    case GD_Q4_1: dq_q4_1(src, dst, n_blocks); return 0;
    case GD_Q5_0: dq_q5_0(src, dst, n_blocks); return 0;
    case GD_Q5_1: dq_q5_1(src, dst, n_blocks); return 0;
    case GD_Q2_K: dq_q2_k(src, dst, n_blocks); return 0;
    case GD_Q3_K: dq_q3_k(src, dst, n_blocks); return 0;
    case GD_Q4_K: dq_q4_k(src, dst, n_blocks); return 0;
    case GD_Q5_K: dq_q5_k(src, dst, n_blocks); return 0;
    case GD_Q6_K: dq_q6_k(src, dst, n_blocks); return 0;
    default: return -1;
    }
}

void gd_quantize_q8_0(const float *src, uint8_t *dst, size_t n_blocks) {
    for (size_t k = 0; k < n_blocks; k++, src += 32, dst += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            float a = src[j] < 0 ? -src[j] : src[j];
            if (a > amax) amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = gd_float_to_half(d);
        dst[0] = (uint8_t)(h & 0xFF);
        dst[1] = (uint8_t)(h >> 8);
        for (int j = 0; j < 32; j++) {
            float x = src[j] * id;
            // roundf: half away from zero (gguf-py's np_roundf), then to int8.
            float a = x < 0 ? -x : x;
            if (!(a <= 127.0f)) a = a != a ? 0.0f : 127.0f;  // NaN or beyond int8 (non-finite input): no UB
            float r = (float)(int32_t)a;
            if (a - r >= 0.5f) r += 1.0f;
            int32_t q = (int32_t)r;
            if (x < 0) q = -q;
            dst[2 + j] = (uint8_t)(int8_t)q;
        }
    }
}
