// tinyhar's own TFLM kernels for ops the Arduino TFLM libraries lack.
#ifndef TINYHAR_KERNELS_H_
#define TINYHAR_KERNELS_H_

#include "tensorflow/lite/c/common.h"

namespace tinyhar {

// int8 BATCH_MATMUL: adj_x / adj_y, broadcast batch dimensions, ranks 2 to 5.
// Bit-exact with current TFLM's reference kernel (the Python tflite-micro runtime).
TfLiteRegistration Register_BATCH_MATMUL();

// int8 UNIDIRECTIONAL_SEQUENCE_LSTM: int8 input, output and weights, int32 bias, int16 cell
// state, no peephole, projection or layer norm. Bit-exact with current TFLM's reference kernel.
TfLiteRegistration Register_UNIDIRECTIONAL_SEQUENCE_LSTM();

}  // namespace tinyhar

#endif  // TINYHAR_KERNELS_H_
