// tinyhar_lstm.cpp's arithmetic against the reference functions it replaces, as the TFLM
// library's headers have them: MultiplyByQuantizedMultiplier (gemmlowp's two roundings, what the
// Python interpreter's kernels compute too), and the int16 Logistic and Tanh (the same code as
// current TFLM's). For tests/firmware/test_kernel_lstm.py, via ctypes. The kernel's source is included so that its internal functions can be called; its
// registration function is renamed, as the harness links the kernel itself too.
#include <cmath>

#define Register_UNIDIRECTIONAL_SEQUENCE_LSTM Register_UNIDIRECTIONAL_SEQUENCE_LSTM_included
#include "tinyhar_lstm.cpp"
#undef Register_UNIDIRECTIONAL_SEQUENCE_LSTM

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/tanh.h"
#pragma GCC diagnostic pop

namespace {

uint32_t g_state = 1;

uint32_t Next() {  // xorshift32
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return g_state;
}

const int32_t kEdges[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -65536, -32769,
                          -32768, -4097, -4096, -2, -1, 0, 1, 2, 4095, 4096, 32767, 32768,
                          65535, 1 << 30, INT32_MAX - 1, INT32_MAX};

// Mismatches of Requantize(x, MakeRequant(real)) against the reference for one multiplier.
long CheckMultiplier(double real, long values, long* checked) {
  const tinyhar::Requant q = tinyhar::MakeRequant(real);
  int32_t multiplier = 0;
  int shift = 0;
  tflite::QuantizeMultiplier(real, &multiplier, &shift);
  long bad = 0;
  for (long i = 0; i < values; ++i) {
    int32_t x;
    if (i < static_cast<long>(sizeof(kEdges) / sizeof(kEdges[0]))) {
      x = kEdges[i];
    } else {
      // mostly magnitudes a matmul sum or a product of two Q0.15 values takes
      x = static_cast<int32_t>(Next()) >> (Next() % 32);
    }
    // A left shift must not overflow in the reference (its int32 product would be undefined).
    if (shift > 0 && (x > (INT32_MAX >> shift) || x < (INT32_MIN >> shift))) continue;
    ++*checked;
    bad += tinyhar::Requantize(x, q) != tflite::MultiplyByQuantizedMultiplier(x, multiplier, shift);
  }
  return bad;
}

}  // namespace

extern "C" {

// Mismatches over `multipliers` real multipliers from 2^-40 to 2^8 (log-uniform, and the powers
// of two the LSTM's own multipliers are), `values` inputs each; *checked counts the comparisons.
long lstm_check_requantize(long multipliers, long values, unsigned seed, long* checked) {
  g_state = seed != 0 ? seed : 1;
  *checked = 0;
  long bad = 0;
  for (int p = -40; p <= 8; ++p) bad += CheckMultiplier(std::ldexp(1.0, p), values, checked);
  for (long m = 0; m < multipliers; ++m) {
    const double unit = (Next() >> 8) * (1.0 / (1 << 24));  // [0, 1)
    bad += CheckMultiplier(std::exp2(-40.0 + 48.0 * unit), values, checked);
  }
  return bad;
}

// Mismatches of Sigmoid against reference_integer_ops::Logistic(0, 0, ...) over every int16.
long lstm_check_sigmoid(void) {
  long bad = 0;
  for (int32_t x = INT16_MIN; x <= INT16_MAX; ++x) {
    const int16_t in = static_cast<int16_t>(x);
    int16_t want = 0;
    tflite::reference_integer_ops::Logistic(0, 0, 1, &in, &want);
    bad += tinyhar::Sigmoid(x) != want;
  }
  return bad;
}

// Mismatches of Tanh against reference_integer_ops::Tanh over every int16, with the rescaling
// lstm_internal::Tanh gives a cell state at scale 2^power (-12 is the cell gate's).
long lstm_check_tanh(int power) {
  tinyhar::OpData d;
  tinyhar::CellTanhRescale(power, &d);
  int32_t shift = 15 + power - 3;  // lstm_internal::Tanh
  int32_t multiplier = 0;
  if (shift < 0) {
    shift = -shift;
    multiplier = 3;
  }
  const tflite::RuntimeShape shape(1, 1);  // one element
  long bad = 0;
  for (int32_t x = INT16_MIN; x <= INT16_MAX; ++x) {
    const int16_t in = static_cast<int16_t>(x);
    int16_t want = 0;
    tflite::reference_integer_ops::Tanh(multiplier, shift, shape, &in, shape, &want);
    bad += tinyhar::Tanh(x, d.cell_tanh_multiplier, d.cell_tanh_shift, d.cell_tanh_round) != want;
  }
  return bad;
}

}  // extern "C"
