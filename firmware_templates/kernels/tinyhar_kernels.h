// tinyhar's own TFLM kernels for ops the Arduino TFLM libraries lack or run slowly. Each is
// registered through tinyhar::OpResolver::AddOwn with its op's parser: tflite::ParseBatchMatMul,
// ParseUnidirectionalSequenceLSTM, ParseSoftmax, ParseReducer (MEAN), ParseAdd, ParseMul.
#ifndef TINYHAR_KERNELS_H_
#define TINYHAR_KERNELS_H_

#include "tensorflow/lite/c/common.h"

namespace tinyhar {

// int8 BATCH_MATMUL: adj_x / adj_y, broadcast batch dimensions, ranks 2 to 5; SMLAD inner
// products on a core with the DSP extension (1 KB of stack for a packed rhs block).
// Bit-exact with current TFLM's reference kernel (the Python tflite-micro runtime).
TfLiteRegistration Register_BATCH_MATMUL();

// int8 UNIDIRECTIONAL_SEQUENCE_LSTM: int8 input, output and weights, int32 bias, int16 cell
// state, no peephole, projection or layer norm. Bit-exact with current TFLM's reference kernel.
TfLiteRegistration Register_UNIDIRECTIONAL_SEQUENCE_LSTM();

// int8 SOFTMAX with int8 or int16 output; the exp of each row's differences from a table built at
// Prepare (persistent, <= 1 KB) when the tensor has at least as many elements as the table.
// Bit-exact with current TFLM's reference kernel and with CMSIS-NN's arm_softmax_s8(_s16).
TfLiteRegistration Register_SOFTMAX();

// int8 MEAN over any constant axes, keep_dims or not, with int32 sums and current TFLM's integer
// requantization (the 2022 Arduino libraries' float mean differs by +-1).
TfLiteRegistration Register_MEAN();

// int8 ADD and MUL, elementwise and broadcast (up to 6 dimensions), fused activations; the
// reference's arithmetic, with a broadcast per-channel constant's terms computed once per call.
TfLiteRegistration Register_ADD();
TfLiteRegistration Register_MUL();

}  // namespace tinyhar

#endif  // TINYHAR_KERNELS_H_
