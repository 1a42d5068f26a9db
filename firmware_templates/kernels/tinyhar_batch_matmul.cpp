// int8 BATCH_MATMUL for the Arduino TFLM libraries, which have no such kernel.
//
// output[..., m, n] = sum_k (lhs[..., m, k] - lhs_zp) * (rhs[..., k, n] - rhs_zp) in int32, then
// requantised as TFLM's reference kernel does: the real multiplier
// double(lhs_scale) * double(rhs_scale) / double(out_scale) becomes a fixed-point multiplier and
// shift (QuantizeMultiplier), MultiplyByQuantizedMultiplier, + output zero point, clamp to int8.
// adj_x / adj_y are read through strides, so no scratch buffer is needed.
//
// With the DSP extension (TINYHAR_SIMD, tinyhar_simd.h) the two layouts of attention take SIMD
// inner products, two int8 products per SMLAD:
//   - adj_y (scores q k^T): lhs rows and rhs columns are both contiguous in k; one lhs row
//     against two rhs columns at a time.
//   - no adjoint (probs v): rhs columns have stride N; four rows of four columns are read as four
//     words and regrouped into k-pairs per column with SXTB16 and PKHBT/PKHTB, one lhs row
//     against four columns at a time.
// The zero points are taken out of the inner loop: with a = lhs - lhs_zp, b = rhs - rhs_zp and
// oa = -lhs_zp, ob = -rhs_zp,
//   sum_k (a_k + oa)(b_k + ob) = sum_k a_k b_k + ob sum_k a_k + oa sum_k b_k + K oa ob,
// the row sums once per row and the column sums once per block of kColumnBlock columns (on the
// stack). All of it is modulo 2^32, which gives the exact int32 the reference computes since that
// fits (kMaxDepth). adj_x, and every layout without the DSP extension, takes the scalar loop.

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
#include "tinyhar_simd.h"

namespace tinyhar {
namespace {

constexpr int kLhsTensor = 0;
constexpr int kRhsTensor = 1;
constexpr int kOutputTensor = 0;
constexpr int kMaxRank = 5;
constexpr int kMaxBatchDims = kMaxRank - 2;
// |q - zero_point| <= 255 for int8, so one product is at most 255 * 255.
constexpr int32_t kMaxDepth = INT32_MAX / (255 * 255);
// Columns whose sums are kept on the stack at a time (4 bytes each).
constexpr int kColumnBlock = 64;

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

int8_t Requantise(const OpData& data, int32_t acc) {
  int32_t v = tflite::MultiplyByQuantizedMultiplier(acc, data.output_multiplier, data.output_shift);
  v += data.output_offset;
  v = v < data.activation_min ? data.activation_min : v;
  v = v > data.activation_max ? data.activation_max : v;
  return static_cast<int8_t>(v);
}

void MatMulScalar(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
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
      out[m * data.cols + n] = Requantise(data, acc);
    }
  }
}

#if TINYHAR_SIMD

// sum_k x[k * stride] for k < depth, modulo 2^32.
uint32_t SumInt8(const int8_t* x, int depth, int stride) {
  uint32_t sum = 0;
  for (int k = 0; k < depth; ++k) sum += static_cast<uint32_t>(x[k * stride]);
  return sum;
}

// ob * sum_k a[m][k] + K * oa * ob for the lhs row at `row` (contiguous in k).
uint32_t RowTerm(const OpData& data, const int8_t* row) {
  const uint32_t ob = static_cast<uint32_t>(data.rhs_offset);
  const uint32_t oa = static_cast<uint32_t>(data.lhs_offset);
  if (ob == 0) return 0;
  return ob * SumInt8(row, data.depth, 1) + static_cast<uint32_t>(data.depth) * oa * ob;
}

// oa * sum_k b[k][n] for columns n0 .. n0 + count - 1.
void ColumnTerms(const OpData& data, const int8_t* rhs, int n0, int count, uint32_t* terms) {
  const uint32_t oa = static_cast<uint32_t>(data.lhs_offset);
  for (int j = 0; j < count; ++j) {
    terms[j] = oa == 0 ? 0
                       : oa * SumInt8(rhs + (n0 + j) * data.rhs_col_stride, data.depth,
                                      data.rhs_depth_stride);
  }
}

// One lhs row against two rhs columns, all three contiguous in k: raw sums of products.
void Dot1x2(const int8_t* a, const int8_t* b0, const int8_t* b1, int depth, uint32_t* acc) {
  int32_t acc0 = 0;
  int32_t acc1 = 0;
  int k = 0;
  for (; k + 4 <= depth; k += 4) {
    const uint32_t wa = tinyhar_read_s8x4(a + k);
    const uint32_t a02 = tinyhar_sxtb16(wa);
    const uint32_t a13 = tinyhar_sxtb16_ror8(wa);
    const uint32_t w0 = tinyhar_read_s8x4(b0 + k);
    acc0 = tinyhar_smlad(a02, tinyhar_sxtb16(w0), acc0);
    acc0 = tinyhar_smlad(a13, tinyhar_sxtb16_ror8(w0), acc0);
    const uint32_t w1 = tinyhar_read_s8x4(b1 + k);
    acc1 = tinyhar_smlad(a02, tinyhar_sxtb16(w1), acc1);
    acc1 = tinyhar_smlad(a13, tinyhar_sxtb16_ror8(w1), acc1);
  }
  uint32_t s0 = static_cast<uint32_t>(acc0);
  uint32_t s1 = static_cast<uint32_t>(acc1);
  for (; k < depth; ++k) {
    s0 += static_cast<uint32_t>(a[k] * b0[k]);
    s1 += static_cast<uint32_t>(a[k] * b1[k]);
  }
  acc[0] = s0;
  acc[1] = s1;
}

// adj_y: out[m][n] = sum_k lhs[m][k] rhs[n][k], both contiguous in k.
void MatMulAdjY(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
  uint32_t col_terms[kColumnBlock];
  const int depth = data.depth;
  for (int n0 = 0; n0 < data.cols; n0 += kColumnBlock) {
    const int block = data.cols - n0 < kColumnBlock ? data.cols - n0 : kColumnBlock;
    ColumnTerms(data, rhs, n0, block, col_terms);
    for (int m = 0; m < data.rows; ++m) {
      const int8_t* a = lhs + m * data.lhs_row_stride;
      const uint32_t row_term = RowTerm(data, a);
      int8_t* o = out + m * data.cols + n0;
      const int8_t* b = rhs + n0 * data.rhs_col_stride;
      int j = 0;
      for (; j + 2 <= block; j += 2, b += 2 * data.rhs_col_stride) {
        uint32_t acc[2];
        Dot1x2(a, b, b + data.rhs_col_stride, depth, acc);
        o[j] = Requantise(data, static_cast<int32_t>(acc[0] + row_term + col_terms[j]));
        o[j + 1] = Requantise(data, static_cast<int32_t>(acc[1] + row_term + col_terms[j + 1]));
      }
      if (j < block) {
        uint32_t acc[2];
        Dot1x2(a, b, b, depth, acc);
        o[j] = Requantise(data, static_cast<int32_t>(acc[0] + row_term + col_terms[j]));
      }
    }
  }
}

// One lhs row (contiguous in k) against four neighbouring rhs columns of a row-major [K, N]
// rhs (`stride` = N): raw sums of products. Four rows k..k+3 of the four columns are four words;
// SXTB16 takes columns 0 and 2 (bytes 0, 2) or 1 and 3 (ror 8), and PKHBT/PKHTB pair rows
// k and k+2 (or k+1 and k+3) of one column to meet the lhs pairs SXTB16 makes.
void Dot1x4(const int8_t* a, const int8_t* b, int depth, int stride, uint32_t* acc) {
  int32_t c0 = 0;
  int32_t c1 = 0;
  int32_t c2 = 0;
  int32_t c3 = 0;
  int k = 0;
  for (; k + 4 <= depth; k += 4, b += 4 * stride) {
    const uint32_t wa = tinyhar_read_s8x4(a + k);
    const uint32_t a02 = tinyhar_sxtb16(wa);       // a[k], a[k+2]
    const uint32_t a13 = tinyhar_sxtb16_ror8(wa);  // a[k+1], a[k+3]
    const uint32_t r0 = tinyhar_read_s8x4(b);
    const uint32_t r1 = tinyhar_read_s8x4(b + stride);
    const uint32_t r2 = tinyhar_read_s8x4(b + 2 * stride);
    const uint32_t r3 = tinyhar_read_s8x4(b + 3 * stride);
    // Columns 0 and 2.
    uint32_t x0 = tinyhar_sxtb16(r0);  // b[k][0], b[k][2]
    uint32_t x2 = tinyhar_sxtb16(r2);  // b[k+2][0], b[k+2][2]
    c0 = tinyhar_smlad(a02, tinyhar_pkhbt(x0, x2), c0);
    c2 = tinyhar_smlad(a02, tinyhar_pkhtb(x2, x0), c2);
    uint32_t x1 = tinyhar_sxtb16(r1);
    uint32_t x3 = tinyhar_sxtb16(r3);
    c0 = tinyhar_smlad(a13, tinyhar_pkhbt(x1, x3), c0);
    c2 = tinyhar_smlad(a13, tinyhar_pkhtb(x3, x1), c2);
    // Columns 1 and 3.
    x0 = tinyhar_sxtb16_ror8(r0);
    x2 = tinyhar_sxtb16_ror8(r2);
    c1 = tinyhar_smlad(a02, tinyhar_pkhbt(x0, x2), c1);
    c3 = tinyhar_smlad(a02, tinyhar_pkhtb(x2, x0), c3);
    x1 = tinyhar_sxtb16_ror8(r1);
    x3 = tinyhar_sxtb16_ror8(r3);
    c1 = tinyhar_smlad(a13, tinyhar_pkhbt(x1, x3), c1);
    c3 = tinyhar_smlad(a13, tinyhar_pkhtb(x3, x1), c3);
  }
  uint32_t s[4] = {static_cast<uint32_t>(c0), static_cast<uint32_t>(c1),
                   static_cast<uint32_t>(c2), static_cast<uint32_t>(c3)};
  for (; k < depth; ++k, b += stride) {
    const int32_t x = a[k];
    for (int j = 0; j < 4; ++j) s[j] += static_cast<uint32_t>(x * b[j]);
  }
  for (int j = 0; j < 4; ++j) acc[j] = s[j];
}

// No adjoint: out[m][n] = sum_k lhs[m][k] rhs[k][n], rhs row-major.
void MatMulNoAdj(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
  uint32_t col_terms[kColumnBlock];
  const int depth = data.depth;
  const int stride = data.rhs_depth_stride;
  for (int n0 = 0; n0 < data.cols; n0 += kColumnBlock) {
    const int block = data.cols - n0 < kColumnBlock ? data.cols - n0 : kColumnBlock;
    ColumnTerms(data, rhs, n0, block, col_terms);
    for (int m = 0; m < data.rows; ++m) {
      const int8_t* a = lhs + m * data.lhs_row_stride;
      const uint32_t row_term = RowTerm(data, a);
      int8_t* o = out + m * data.cols + n0;
      int j = 0;
      for (; j + 4 <= block; j += 4) {
        uint32_t acc[4];
        Dot1x4(a, rhs + n0 + j, depth, stride, acc);
        for (int i = 0; i < 4; ++i) {
          o[j + i] = Requantise(data, static_cast<int32_t>(acc[i] + row_term + col_terms[j + i]));
        }
      }
      for (; j < block; ++j) {
        const int8_t* b = rhs + n0 + j;
        uint32_t acc = 0;
        for (int k = 0; k < depth; ++k) acc += static_cast<uint32_t>(a[k] * b[k * stride]);
        o[j] = Requantise(data, static_cast<int32_t>(acc + row_term + col_terms[j]));
      }
    }
  }
}

#endif  // TINYHAR_SIMD

void MatMul(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
#if TINYHAR_SIMD
  if (data.lhs_depth_stride == 1 && data.rhs_depth_stride == 1) {
    MatMulAdjY(data, lhs, rhs, out);
    return;
  }
  if (data.lhs_depth_stride == 1 && data.rhs_col_stride == 1) {
    MatMulNoAdj(data, lhs, rhs, out);
    return;
  }
#endif
  MatMulScalar(data, lhs, rhs, out);
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
