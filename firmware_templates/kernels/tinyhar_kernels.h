// tinyhar's own TFLM kernels for ops the Arduino TFLM libraries lack.
#ifndef TINYHAR_KERNELS_H_
#define TINYHAR_KERNELS_H_

#include "tensorflow/lite/c/common.h"

namespace tinyhar {

// int8 BATCH_MATMUL: adj_x / adj_y, broadcast batch dimensions, ranks 2 to 5.
// Bit-exact with current TFLM's reference kernel (the Python tflite-micro runtime).
TfLiteRegistration Register_BATCH_MATMUL();

}  // namespace tinyhar

#endif  // TINYHAR_KERNELS_H_
