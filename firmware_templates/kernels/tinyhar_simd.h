// The Cortex-M4 DSP instructions tinyhar's kernels use, and the same arithmetic in portable C.
//
// On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33) TINYHAR_SIMD is 1 and the
// functions are single instructions. With -DTINYHAR_EMULATE_DSP a host build runs the SIMD code
// paths on these C equivalents, so the host tests exercise the exact arithmetic the board runs.
// Elsewhere TINYHAR_SIMD is 0 and kernels take their scalar path.
#ifndef TINYHAR_SIMD_H_
#define TINYHAR_SIMD_H_

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TINYHAR_SIMD 1

// Two int8 lanes (bytes 0 and 2) sign-extended into two int16 halves.
static inline uint32_t tinyhar_sxtb16(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}

// Bytes 1 and 3, sign-extended into two int16 halves.
static inline uint32_t tinyhar_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

// acc + lo(a) * lo(b) + hi(a) * hi(b), halves as int16.
static inline int32_t tinyhar_smlad(uint32_t a, uint32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}

// Low half of a, high half of b << 16 ... (a & 0xFFFF) | (b << 16).
static inline uint32_t tinyhar_pkhbt(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

// High half of a, low half of b: (a & 0xFFFF0000) | (b >> 16).
static inline uint32_t tinyhar_pkhtb(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

// x clamped to the int16 range.
static inline int32_t tinyhar_ssat16(int32_t x) {
  int32_t r;
  __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(x));
  return r;
}

#elif defined(TINYHAR_EMULATE_DSP)
#define TINYHAR_SIMD 1

static inline uint32_t tinyhar_halves(int32_t lo, int32_t hi) {
  return (uint32_t)(uint16_t)(int16_t)lo | ((uint32_t)(uint16_t)(int16_t)hi << 16);
}

static inline int32_t tinyhar_lo(uint32_t x) { return (int16_t)(uint16_t)(x & 0xFFFFu); }

static inline int32_t tinyhar_hi(uint32_t x) { return (int16_t)(uint16_t)(x >> 16); }

static inline uint32_t tinyhar_sxtb16(uint32_t x) {
  return tinyhar_halves((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}

static inline uint32_t tinyhar_sxtb16_ror8(uint32_t x) {
  return tinyhar_sxtb16((x >> 8) | (x << 24));
}

static inline int32_t tinyhar_smlad(uint32_t a, uint32_t b, int32_t acc) {
  // SMLAD wraps modulo 2^32 (it only sets the Q flag on overflow).
  const int64_t sum = (int64_t)acc + (int64_t)tinyhar_lo(a) * tinyhar_lo(b) +
                      (int64_t)tinyhar_hi(a) * tinyhar_hi(b);
  return (int32_t)(uint32_t)(uint64_t)sum;
}

static inline uint32_t tinyhar_pkhbt(uint32_t a, uint32_t b) {
  return (a & 0xFFFFu) | (b << 16);
}

static inline uint32_t tinyhar_pkhtb(uint32_t a, uint32_t b) {
  return (a & 0xFFFF0000u) | (b >> 16);
}

static inline int32_t tinyhar_ssat16(int32_t x) {
  return x < -32768 ? -32768 : (x > 32767 ? 32767 : x);
}

#else
#define TINYHAR_SIMD 0
#endif

// Four int8 values from any address as one word (an unaligned LDR on the Cortex-M4).
static inline uint32_t tinyhar_read_s8x4(const int8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
// tinyhar_read_s8x4 at *p, then *p += 4: one post-indexed LDR (a compiler may pick an offset LDR
// and a separate ADD instead).
static inline uint32_t tinyhar_read_s8x4_ia(const int8_t** p) {
  uint32_t v;
  __asm__("ldr %0, [%1], #4" : "=r"(v), "+r"(*p) : "m"(*(const int8_t(*)[4]) * p));
  return v;
}

// Two words from a word-aligned *p, then *p += 2: one post-indexed LDRD.
static inline void tinyhar_read_u32x2_ia(const uint32_t** p, uint32_t* lo, uint32_t* hi) {
  __asm__("ldrd %0, %1, [%2], #8"
          : "=r"(*lo), "=r"(*hi), "+r"(*p)
          : "m"(*(const uint32_t(*)[2]) * p));
}
#else
static inline uint32_t tinyhar_read_s8x4_ia(const int8_t** p) {
  const uint32_t v = tinyhar_read_s8x4(*p);
  *p += 4;
  return v;
}

static inline void tinyhar_read_u32x2_ia(const uint32_t** p, uint32_t* lo, uint32_t* hi) {
  *lo = (*p)[0];
  *hi = (*p)[1];
  *p += 2;
}
#endif

#endif  // TINYHAR_SIMD_H_
