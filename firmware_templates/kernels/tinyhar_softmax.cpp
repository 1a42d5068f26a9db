// int8 SOFTMAX (int8 or int16 output), bit-exact with current TFLM's reference kernel (the Python
// tflite-micro runtime) and with CMSIS-NN's arm_softmax_s8 / arm_softmax_s8_s16.
//
// Per row: the difference d = x - max(row) is rescaled (MultiplyByQuantizedMultiplierGreaterThanOne
// with the op's beta * input_scale multiplier) and gemmlowp's exp_on_negative_values turns it into
// exp(d) in Q0.31. The sum of exp(d) / 2^12 gives a fixed-point reciprocal (GetReciprocal), and
// each output is RoundingDivideByPOT(exp(d) * reciprocal, ...) - 128 (or - 32768), clamped.
// Differences below diff_min count as exp = 0, which gives the same sum and output as the
// reference's skip.
//
// The only per-element work the reference spends time on is exp(d), twice per element. d of an
// int8 row is one of 256 values (0 down to -255), and only those at or above diff_min matter, so
// Prepare tabulates exp(d) for them (int32, at most 1 KB per op, persistent) when the tensor has
// at least as many elements as the table has entries; smaller tensors compute exp(d) directly.
// The table holds exactly what the reference computes, with the same functions.

// The firmware compiles at -Os (the Arduino core's flags); this file is worth -O2.
#pragma GCC optimize("O2")

#include <stdint.h>

// The library's headers are not clean under -Wextra (unused parameters in inline functions).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/common.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"
#pragma GCC diagnostic pop
#include "tinyhar_kernels.h"
#include "tinyhar_requantize.h"

namespace tinyhar {
namespace {

constexpr int kScaledDiffIntegerBits = 5;    // Q5.26 rescaled differences, as the reference
constexpr int kAccumulationIntegerBits = 12;  // Q12.19 sum of exps, as the reference
constexpr int kDiffs = 256;                   // an int8 row's differences: 0 down to -255
// The sum is at least 2^19 (exp(0) of the row's maximum); below 512 elements it stays under
// 2^28, so the int8 output's RoundingDivideByPOT exponent (35 - clz(sum)) stays <= 31. Longer
// rows would shift by 32 or more, which the reference leaves undefined.
constexpr int kMaxInt8Row = 511;
// Above 4095 elements the int16 output's sum of exps wraps int32 in the reference.
constexpr int kMaxInt16Row = 4095;

struct OpData {
  int32_t input_multiplier;
  int input_left_shift;
  int diff_min;
  int rows;
  int depth;
  bool int16_output;
  // exp(d) for d = -(table_len - 1) .. 0 at table[d + table_len - 1]; nullptr where not
  // tabulated. Differences below the table are below diff_min.
  int32_t* table;
  int table_len;
};

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

// exp(d) in Q0.31 for one difference d <= 0 as the reference computes it; 0 below diff_min.
int32_t ExpOfDiff(const OpData& data, int32_t diff) {
  if (diff < data.diff_min) return 0;
  using FixedPointScaledDiff = gemmlowp::FixedPoint<int32_t, kScaledDiffIntegerBits>;
  const int32_t rescaled = tflite::MultiplyByQuantizedMultiplierGreaterThanOne(
      diff, data.input_multiplier, data.input_left_shift);
  return gemmlowp::exp_on_negative_values(FixedPointScaledDiff::FromRaw(rescaled)).raw();
}

bool IsPerTensor(const TfLiteTensor* t) {
  if (t->quantization.type != kTfLiteAffineQuantization) return false;
  const TfLiteAffineQuantization* q =
      static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  return q == nullptr || q->scale == nullptr || q->scale->size <= 1;
}

TfLiteStatus PrepareTensors(TfLiteContext* context, const TfLiteSoftmaxParams& params,
                            const TfLiteTensor* input, const TfLiteTensor* output, OpData* data) {
  TF_LITE_ENSURE(context, input != nullptr && output != nullptr);
  if (input->type != kTfLiteInt8 || !IsPerTensor(input) || !IsPerTensor(output) ||
      (output->type != kTfLiteInt8 && output->type != kTfLiteInt16)) {
    MicroPrintf("SOFTMAX (tinyhar): only per-tensor quantized int8 -> int8 or int16, got %s -> %s",
                TfLiteTypeGetName(input->type), TfLiteTypeGetName(output->type));
    return kTfLiteError;
  }
  // The reference's output quantization: [0, 1) over the output type's range.
  data->int16_output = output->type == kTfLiteInt16;
  if (data->int16_output) {
    TF_LITE_ENSURE_EQ(context, output->params.zero_point, -32768);
    TF_LITE_ENSURE_NEAR(context, output->params.scale, 1.f / 65536, (0.001f * 1.f / 65536));
  } else {
    TF_LITE_ENSURE_EQ(context, output->params.zero_point, -128);
    TF_LITE_ENSURE(context, output->params.scale == 1.f / 256);
  }
  const int dims = tflite::NumDimensions(input);
  TF_LITE_ENSURE(context, dims >= 1);
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(input), tflite::NumElements(output));
  TF_LITE_ENSURE_EQ(context, tflite::NumDimensions(output), dims);
  TF_LITE_ENSURE_EQ(context, output->dims->data[dims - 1], input->dims->data[dims - 1]);
  data->depth = input->dims->data[dims - 1];
  data->rows = data->depth > 0 ? tflite::NumElements(input) / data->depth : 0;
  const int max_row = data->int16_output ? kMaxInt16Row : kMaxInt8Row;
  if (data->depth > max_row) {
    MicroPrintf("SOFTMAX (tinyhar): rows of %d elements, at most %d for %s output", data->depth,
                max_row, TfLiteTypeGetName(output->type));
    return kTfLiteError;
  }

  // As the reference's CalculateSoftmaxParams.
  int input_left_shift;
  tflite::PreprocessSoftmaxScaling(static_cast<double>(params.beta),
                                   static_cast<double>(input->params.scale),
                                   kScaledDiffIntegerBits, &data->input_multiplier,
                                   &input_left_shift);
  data->input_left_shift = input_left_shift;
  data->diff_min = -tflite::CalculateInputRadius(kScaledDiffIntegerBits, input_left_shift);

  // Differences at or above diff_min: 0 down to max(diff_min, -255).
  const int table_len = data->diff_min <= -(kDiffs - 1) ? kDiffs : 1 - data->diff_min;
  data->table = nullptr;
  data->table_len = 0;
  if (tflite::NumElements(input) >= table_len) {
    data->table = static_cast<int32_t*>(
        context->AllocatePersistentBuffer(context, sizeof(int32_t) * table_len));
    TF_LITE_ENSURE(context, data->table != nullptr);
    for (int i = 0; i < table_len; ++i) data->table[i] = ExpOfDiff(*data, i - (table_len - 1));
    data->table_len = table_len;
  }
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE(context, node->builtin_data != nullptr);
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), 1);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  const TfLiteSoftmaxParams* params = static_cast<const TfLiteSoftmaxParams*>(node->builtin_data);
  OpData* data = static_cast<OpData*>(node->user_data);

  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, 0);
  const TfLiteStatus status = PrepareTensors(context, *params, input, output, data);
  if (input != nullptr) micro_context->DeallocateTempTfLiteTensor(input);
  if (output != nullptr) micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

int8_t RowMax(const int8_t* x, int n) {
  int32_t m = INT8_MIN;
  for (int c = 0; c < n; ++c) m = x[c] > m ? x[c] : m;
  return static_cast<int8_t>(m);
}

// exp(x - max) from the table: for a row's max the table covers x from max - (len - 1) up.
struct TableExp {
  const int32_t* table;
  int32_t len;
  struct Row {
    const int32_t* table;
    int32_t low;  // the smallest x the table covers; anything below is under diff_min
    int32_t operator()(int32_t x) const {
      const int32_t i = x - low;
      return i >= 0 ? table[i] : 0;
    }
  };
  Row ForMax(int32_t max) const { return Row{table, max - (len - 1)}; }
};

struct DirectExp {
  const OpData* data;
  struct Row {
    const OpData* data;
    int32_t max;
    int32_t operator()(int32_t x) const { return ExpOfDiff(*data, x - max); }
  };
  Row ForMax(int32_t max) const { return Row{data, max}; }
};

// One row: the reference's sum, reciprocal and outputs. All exp values are >= 0 and the
// reciprocal is in (0.5, 1], so gemmlowp's roundings take their non-negative forms.
template <typename OutT, typename Exp>
void SoftmaxRow(const int8_t* x, OutT* out, int n, Exp exps) {
  const typename Exp::Row exp = exps.ForMax(RowMax(x, n));
  // The reference's Rescale<kAccumulationIntegerBits>: RoundingDivideByPOT(e, 12).
  uint32_t sum = 0;
  for (int c = 0; c < n; ++c) {
    sum += RoundingDivideByPOTNonNegative(static_cast<uint32_t>(exp(x[c])),
                                          kAccumulationIntegerBits);
  }
  int num_bits_over_unit;
  const int32_t scale = tflite::GetReciprocal(static_cast<int32_t>(sum), kAccumulationIntegerBits,
                                              &num_bits_over_unit);
  // RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(scale, e), exponent).
  const int exponent = num_bits_over_unit + 31 - static_cast<int>(sizeof(OutT) * 8);
  constexpr int32_t kMin = sizeof(OutT) == 1 ? INT8_MIN : INT16_MIN;
  constexpr int32_t kMax = sizeof(OutT) == 1 ? INT8_MAX : INT16_MAX;
  for (int c = 0; c < n; ++c) {
    const uint32_t high = DoublingHighMulNonNegative(scale, exp(x[c]));
    int32_t v = static_cast<int32_t>(RoundingDivideByPOTNonNegative(high, exponent)) + kMin;
    v = v > kMax ? kMax : v;
    out[c] = static_cast<OutT>(v);
  }
}

template <typename OutT, typename Exp>
void SoftmaxRows(const OpData& data, const int8_t* in, OutT* out, Exp exp) {
  for (int r = 0; r < data.rows; ++r) {
    SoftmaxRow(in, out, data.depth, exp);
    in += data.depth;
    out += data.depth;
  }
}

template <typename OutT>
void Softmax(const OpData& data, const int8_t* in, OutT* out) {
  if (data.table != nullptr) {
    SoftmaxRows(data, in, out, TableExp{data.table, data.table_len});
  } else {
    SoftmaxRows(data, in, out, DirectExp{&data});
  }
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const OpData& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  TF_LITE_ENSURE(context, input != nullptr && output != nullptr);
  const int8_t* in = tflite::micro::GetTensorData<int8_t>(input);
  if (data.int16_output) {
    Softmax(data, in, tflite::micro::GetTensorData<int16_t>(output));
  } else {
    Softmax(data, in, tflite::micro::GetTensorData<int8_t>(output));
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_SOFTMAX() { return tflite::micro::RegisterOp(Init, Prepare, Eval); }

}  // namespace tinyhar
