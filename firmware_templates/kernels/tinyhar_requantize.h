// TFLM's MultiplyByQuantizedMultiplier (double rounding, as the Python tflite-micro runtime and
// the Arduino TFLM libraries build it) in a few instructions, with the same result for every
// input:
//
//   SaturatingRoundingDoublingHighMul(a, m) = trunc((a * m + nudge) / 2^31), nudge = 2^30 for
//   a * m >= 0 and 1 - 2^30 below. For a * m < 0 the truncation is a ceiling, and
//   ceil((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31), so both signs are (p + 2^30) >> 31.
//   It saturates only for a = m = INT32_MIN, and m >= 0 here (QuantizeMultiplier).
//
//   RoundingDivideByPOT(x, e) = (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)), mask = 2^e - 1.
//
// The left shift of a multiplier above 1 wraps modulo 2^32 as the reference's int32 product does.
#ifndef TINYHAR_REQUANTISE_H_
#define TINYHAR_REQUANTISE_H_

#include <stdint.h>

namespace tinyhar {

// 8 bytes: kernels keep one per op in the arena. Copy it into a local before a loop, so the
// compiler keeps the derived mask in a register.
struct Requantizer {
  int32_t multiplier;  // >= 0, from QuantizeMultiplier
  int8_t left_shift;   // max(shift, 0)
  int8_t right_shift;  // max(-shift, 0), at most 31

  // From QuantizeMultiplier's (multiplier, shift).
  static Requantizer Make(int32_t multiplier, int shift) {
    Requantizer r;
    r.multiplier = multiplier;
    r.left_shift = static_cast<int8_t>(shift > 0 ? shift : 0);
    r.right_shift = static_cast<int8_t>(shift > 0 ? 0 : -shift);
    return r;
  }

  // MultiplyByQuantizedMultiplier(x, multiplier, shift).
  int32_t operator()(int32_t x) const {
    const int32_t a = static_cast<int32_t>(static_cast<uint32_t>(x) << left_shift);
    const int32_t high = static_cast<int32_t>(
        (static_cast<int64_t>(a) * multiplier + (static_cast<int64_t>(1) << 30)) >> 31);
    const int32_t mask = static_cast<int32_t>((static_cast<uint32_t>(1) << right_shift) - 1u);
    const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right_shift) + ((high & mask) > threshold ? 1 : 0);
  }
};

// gemmlowp's SaturatingRoundingDoublingHighMul(a, b) for a, b >= 0 (no saturation there).
inline uint32_t DoublingHighMulNonNegative(int32_t a, int32_t b) {
  return static_cast<uint32_t>((static_cast<int64_t>(a) * b + (static_cast<int64_t>(1) << 30)) >>
                               31);
}

// gemmlowp's RoundingDivideByPOT(x, e) for 0 <= x < 2^31 and 1 <= e <= 31: round half up.
inline uint32_t RoundingDivideByPOTNonNegative(uint32_t x, int e) {
  return (x + (static_cast<uint32_t>(1) << (e - 1))) >> e;
}

}  // namespace tinyhar

#endif  // TINYHAR_REQUANTISE_H_
