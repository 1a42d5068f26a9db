// int8 BATCH_MATMUL for the Arduino TFLM libraries, which have no such kernel.
//
// output[..., m, n] = sum_k (lhs[..., m, k] - lhs_zp) * (rhs[..., k, n] - rhs_zp) in int32, then
// requantised as TFLM's reference kernel does: the real multiplier
// double(lhs_scale) * double(rhs_scale) / double(out_scale) becomes a fixed-point multiplier and
// shift (QuantizeMultiplier), MultiplyByQuantizedMultiplier, + output zero point, clamp to int8.
// adj_x / adj_y are read through strides, so no scratch buffer is needed.
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

namespace tinyhar {
namespace {

constexpr int kLhsTensor = 0;
constexpr int kRhsTensor = 1;
constexpr int kOutputTensor = 0;
constexpr int kMaxRank = 5;
constexpr int kMaxBatchDims = kMaxRank - 2;
// |q - zero_point| <= 255 for int8, so one product is at most 255 * 255.
constexpr int32_t kMaxDepth = INT32_MAX / (255 * 255);

struct OpData {
  int32_t output_multiplier;
  int output_shift;
  int32_t lhs_offset;  // -lhs zero point
  int32_t rhs_offset;  // -rhs zero point
  int32_t output_offset;
  int32_t activation_min;
  int32_t activation_max;
  int rows;   // M
  int cols;   // N
  int depth;  // K
  // Element strides inside one matrix, adj_x / adj_y already applied.
  int lhs_row_stride;
  int lhs_depth_stride;
  int rhs_depth_stride;
  int rhs_col_stride;
  // Broadcast batch dimensions of the output; an operand's stride is 0 where it broadcasts.
  int batch_dims;
  int batch_size[kMaxBatchDims];
  int lhs_batch_stride[kMaxBatchDims];
  int rhs_batch_stride[kMaxBatchDims];
};

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

bool IsPerTensorInt8(const TfLiteTensor* t) {
  if (t->type != kTfLiteInt8 || t->quantization.type != kTfLiteAffineQuantization ||
      !(t->params.scale > 0.0f)) {
    return false;
  }
  const TfLiteAffineQuantization* q =
      static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  return q == nullptr || q->scale == nullptr || q->scale->size <= 1;
}

// Extends `t`'s shape with leading 1s to `rank` dimensions.
void ExtendedDims(const TfLiteTensor* t, int rank, int* dims) {
  const int pad = rank - t->dims->size;
  for (int i = 0; i < rank; ++i) {
    dims[i] = i < pad ? 1 : t->dims->data[i - pad];
  }
}

TfLiteStatus PrepareShapes(TfLiteContext* context, const TfLiteBatchMatMulParams& params,
                           const TfLiteTensor* lhs, const TfLiteTensor* rhs,
                           const TfLiteTensor* output, OpData* data) {
  const int lhs_rank = lhs->dims->size;
  const int rhs_rank = rhs->dims->size;
  if (lhs_rank < 2 || lhs_rank > kMaxRank || rhs_rank < 2 || rhs_rank > kMaxRank) {
    MicroPrintf("BATCH_MATMUL (tinyhar): ranks %d and %d, supported are 2 to %d", lhs_rank,
                rhs_rank, kMaxRank);
    return kTfLiteError;
  }
  const int rank = lhs_rank > rhs_rank ? lhs_rank : rhs_rank;
  int l[kMaxRank];
  int r[kMaxRank];
  ExtendedDims(lhs, rank, l);
  ExtendedDims(rhs, rank, r);

  data->rows = params.adj_x ? l[rank - 1] : l[rank - 2];
  data->depth = params.adj_x ? l[rank - 2] : l[rank - 1];
  const int rhs_depth = params.adj_y ? r[rank - 1] : r[rank - 2];
  data->cols = params.adj_y ? r[rank - 2] : r[rank - 1];
  if (data->depth != rhs_depth) {
    MicroPrintf("BATCH_MATMUL (tinyhar): inner dimensions differ (%d vs %d)", data->depth,
                rhs_depth);
    return kTfLiteError;
  }
  if (data->depth > kMaxDepth) {
    MicroPrintf("BATCH_MATMUL (tinyhar): inner dimension %d overflows int32", data->depth);
    return kTfLiteError;
  }
  data->lhs_row_stride = params.adj_x ? 1 : l[rank - 1];
  data->lhs_depth_stride = params.adj_x ? l[rank - 1] : 1;
  data->rhs_depth_stride = params.adj_y ? 1 : r[rank - 1];
  data->rhs_col_stride = params.adj_y ? r[rank - 1] : 1;

  data->batch_dims = rank - 2;
  int lhs_block = l[rank - 2] * l[rank - 1];
  int rhs_block = r[rank - 2] * r[rank - 1];
  int64_t expected = static_cast<int64_t>(data->rows) * data->cols;
  for (int i = rank - 3; i >= 0; --i) {
    if (l[i] != r[i] && l[i] != 1 && r[i] != 1) {
      MicroPrintf("BATCH_MATMUL (tinyhar): batch dimension %d does not broadcast (%d vs %d)", i,
                  l[i], r[i]);
      return kTfLiteError;
    }
    data->batch_size[i] = l[i] == 1 ? r[i] : l[i];
    data->lhs_batch_stride[i] = l[i] == 1 ? 0 : lhs_block;
    data->rhs_batch_stride[i] = r[i] == 1 ? 0 : rhs_block;
    lhs_block *= l[i];
    rhs_block *= r[i];
    expected *= data->batch_size[i];
  }
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(output), expected);
  return kTfLiteOk;
}

TfLiteStatus PrepareTensors(TfLiteContext* context, const TfLiteBatchMatMulParams& params,
                            const TfLiteTensor* lhs, const TfLiteTensor* rhs,
                            const TfLiteTensor* output, OpData* data) {
  TF_LITE_ENSURE(context, lhs != nullptr && rhs != nullptr && output != nullptr);
  if (!IsPerTensorInt8(lhs) || !IsPerTensorInt8(rhs) || !IsPerTensorInt8(output)) {
    MicroPrintf(
        "BATCH_MATMUL (tinyhar): only per-tensor quantised int8 inputs and output, got %s x %s "
        "-> %s",
        TfLiteTypeGetName(lhs->type), TfLiteTypeGetName(rhs->type),
        TfLiteTypeGetName(output->type));
    return kTfLiteError;
  }
  TF_LITE_ENSURE_STATUS(PrepareShapes(context, params, lhs, rhs, output, data));

  // The scale product in double, as current TFLM (the Python tflite-micro runtime) takes it.
  // TFLite 2.21 and these libraries' GetQuantizedConvolutionMultipler (no bias) take it in
  // float, which moves a few outputs by one.
  const double real_multiplier = static_cast<double>(lhs->params.scale) *
                                 static_cast<double>(rhs->params.scale) /
                                 static_cast<double>(output->params.scale);
  tflite::QuantizeMultiplier(real_multiplier, &data->output_multiplier, &data->output_shift);
  data->lhs_offset = -lhs->params.zero_point;
  data->rhs_offset = -rhs->params.zero_point;
  data->output_offset = output->params.zero_point;
  // BATCH_MATMUL has no fused activation: the range is int8's.
  data->activation_min = INT8_MIN;
  data->activation_max = INT8_MAX;
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE(context, node->builtin_data != nullptr);
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), 2);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  const TfLiteBatchMatMulParams* params =
      static_cast<const TfLiteBatchMatMulParams*>(node->builtin_data);
  OpData* data = static_cast<OpData*>(node->user_data);

  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* lhs = micro_context->AllocateTempInputTensor(node, kLhsTensor);
  TfLiteTensor* rhs = micro_context->AllocateTempInputTensor(node, kRhsTensor);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kOutputTensor);
  const TfLiteStatus status = PrepareTensors(context, *params, lhs, rhs, output, data);
  if (lhs != nullptr) micro_context->DeallocateTempTfLiteTensor(lhs);
  if (rhs != nullptr) micro_context->DeallocateTempTfLiteTensor(rhs);
  if (output != nullptr) micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

void MatMul(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
  for (int m = 0; m < data.rows; ++m) {
    const int8_t* lhs_row = lhs + m * data.lhs_row_stride;
    for (int n = 0; n < data.cols; ++n) {
      const int8_t* rhs_col = rhs + n * data.rhs_col_stride;
      int32_t acc = 0;
      for (int k = 0; k < data.depth; ++k) {
        const int32_t a = lhs_row[k * data.lhs_depth_stride];
        const int32_t b = rhs_col[k * data.rhs_depth_stride];
        acc += (a + data.lhs_offset) * (b + data.rhs_offset);
      }
      int32_t v =
          tflite::MultiplyByQuantizedMultiplier(acc, data.output_multiplier, data.output_shift);
      v += data.output_offset;
      v = v < data.activation_min ? data.activation_min : v;
      v = v > data.activation_max ? data.activation_max : v;
      out[m * data.cols + n] = static_cast<int8_t>(v);
    }
  }
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const OpData& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* lhs = tflite::micro::GetEvalInput(context, node, kLhsTensor);
  const TfLiteEvalTensor* rhs = tflite::micro::GetEvalInput(context, node, kRhsTensor);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, kOutputTensor);
  TF_LITE_ENSURE(context, lhs != nullptr && rhs != nullptr && output != nullptr);
  const int8_t* lhs_data = tflite::micro::GetTensorData<int8_t>(lhs);
  const int8_t* rhs_data = tflite::micro::GetTensorData<int8_t>(rhs);
  int8_t* out = tflite::micro::GetTensorData<int8_t>(output);

  int index[kMaxBatchDims] = {0, 0, 0};
  int batches = 1;
  for (int i = 0; i < data.batch_dims; ++i) batches *= data.batch_size[i];
  for (int b = 0; b < batches; ++b) {
    int lhs_start = 0;
    int rhs_start = 0;
    for (int i = 0; i < data.batch_dims; ++i) {
      lhs_start += index[i] * data.lhs_batch_stride[i];
      rhs_start += index[i] * data.rhs_batch_stride[i];
    }
    MatMul(data, lhs_data + lhs_start, rhs_data + rhs_start, out);
    out += data.rows * data.cols;
    for (int i = data.batch_dims - 1; i >= 0; --i) {
      if (++index[i] < data.batch_size[i]) break;
      index[i] = 0;
    }
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_BATCH_MATMUL() {
  return tflite::micro::RegisterOp(Init, Prepare, Eval);
}

}  // namespace tinyhar
