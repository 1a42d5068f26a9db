// int8 BATCH_MATMUL for the Arduino TFLM libraries, which have no such kernel.
//
// output[..., m, n] = sum_k (lhs[..., m, k] - lhs_zp) * (rhs[..., k, n] - rhs_zp) in int32, then
// requantized as TFLM's reference kernel does: the real multiplier
// double(lhs_scale) * double(rhs_scale) / double(out_scale) becomes a fixed-point multiplier and
// shift (QuantizeMultiplier), MultiplyByQuantizedMultiplier, + output zero point, clamp to int8.
// adj_x / adj_y are read through strides, so no scratch buffer in the arena is needed.
//
// With the DSP extension (TINYHAR_SIMD, tinyhar_simd.h) every layout whose lhs rows are
// contiguous in k (no adj_x: both attention matmuls, scores q k^T with adj_y and probs v without)
// takes SIMD inner products, two products per SMLAD. The rhs is packed four columns at a time
// into a stack buffer of int16 pairs, (b[k][n], b[k+2][n]) and (b[k+1][n], b[k+3][n]) per
// column, which meet the pairs SXTB16 makes of four lhs bytes; each lhs row then takes 8 SMLADs
// per 16 products against the packed block. Packing reads the rhs through its strides, so adj_y
// and none cost the same, and it is done once per block for all rows (in pieces of
// 4 * kPackedGroups = 128 k when the depth is larger, then once per row).
// The zero points stay out of the inner loop: with a, b the raw int8 values, oa = -lhs_zp and
// ob = -rhs_zp, the block holds b + ob (int16), and
//   sum_k (a_k + oa)(b_k + ob) = sum_k a_k (b_k + ob) + oa sum_k (b_k + ob),
// the second term once per column. All of it is modulo 2^32, which gives the exact int32 the
// reference computes since that fits (kMaxDepth). adj_x, and every layout without the DSP
// extension, takes the scalar loop.

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
// Groups of four k of a packed block of four rhs columns (8 words each): 1 KB of stack.
constexpr int kPackedGroups = 32;

struct OpData {
  Requantizer requantize;
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
        "BATCH_MATMUL (tinyhar): only per-tensor quantized int8 inputs and output, got %s x %s "
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
  int32_t multiplier;
  int shift;
  tflite::QuantizeMultiplier(real_multiplier, &multiplier, &shift);
  data->requantize = Requantizer::Make(multiplier, shift);
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

inline int8_t Requantize(const OpData& data, int32_t acc) {
  int32_t v = data.requantize(acc) + data.output_offset;
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
      out[m * data.cols + n] = Requantize(data, acc);
    }
  }
}

#if TINYHAR_SIMD

// oa * sum_k (b[k][n] + ob) for one rhs column.
uint32_t ColumnTerm(const OpData& data, const int8_t* column) {
  const uint32_t oa = static_cast<uint32_t>(data.lhs_offset);
  if (oa == 0) return 0;
  uint32_t sum = static_cast<uint32_t>(data.depth) * static_cast<uint32_t>(data.rhs_offset);
  for (int k = 0; k < data.depth; ++k) {
    sum += static_cast<uint32_t>(column[k * data.rhs_depth_stride]);
  }
  return oa * sum;
}

inline uint32_t Halves(int32_t lo, int32_t hi) {
  return static_cast<uint32_t>(static_cast<uint16_t>(lo)) | (static_cast<uint32_t>(hi) << 16);
}

// Packs `groups` groups of four k (from k0) of `count` <= 4 columns starting at `column`: per
// group 8 words, column j's (k, k+2) pair at 2j and (k+1, k+3) at 2j + 1, each value + ob.
// Missing columns are 0.
void PackBlock(const OpData& data, const int8_t* column, int count, int k0, int groups,
               uint32_t* words) {
  const int ds = data.rhs_depth_stride;
  const int32_t ob = data.rhs_offset;
  for (int j = 0; j < 4; ++j) {
    uint32_t* w = words + 2 * j;
    if (j >= count) {
      for (int g = 0; g < groups; ++g, w += 8) w[0] = w[1] = 0;
      continue;
    }
    const int8_t* b = column + j * data.rhs_col_stride + k0 * ds;
    for (int g = 0; g < groups; ++g, w += 8, b += 4 * ds) {
      w[0] = Halves(b[0] + ob, b[2 * ds] + ob);
      w[1] = Halves(b[ds] + ob, b[3 * ds] + ob);
    }
  }
}

// acc[j] += sum over the packed groups of a[k] * (b[k][j] + ob), a contiguous.
void DotPacked(const int8_t* a, const uint32_t* w, int groups, int32_t* acc) {
  int32_t c0 = acc[0];
  int32_t c1 = acc[1];
  int32_t c2 = acc[2];
  int32_t c3 = acc[3];
  for (int g = 0; g < groups; ++g, a += 4, w += 8) {
    const uint32_t wa = tinyhar_read_s8x4(a);
    const uint32_t a02 = tinyhar_sxtb16(wa);       // a[k], a[k+2]
    const uint32_t a13 = tinyhar_sxtb16_ror8(wa);  // a[k+1], a[k+3]
    c0 = tinyhar_smlad(a02, w[0], c0);
    c0 = tinyhar_smlad(a13, w[1], c0);
    c1 = tinyhar_smlad(a02, w[2], c1);
    c1 = tinyhar_smlad(a13, w[3], c1);
    c2 = tinyhar_smlad(a02, w[4], c2);
    c2 = tinyhar_smlad(a13, w[5], c2);
    c3 = tinyhar_smlad(a02, w[6], c3);
    c3 = tinyhar_smlad(a13, w[7], c3);
  }
  acc[0] = c0;
  acc[1] = c1;
  acc[2] = c2;
  acc[3] = c3;
}

// Requantizes `count` accumulators into o[0 .. count - 1]. Not inlined: its own registers hold
// the requantization constants, which the packed loop would spill.
__attribute__((noinline)) void Store(const OpData& data, const uint32_t* sums, int count,
                                     int8_t* o) {
  // Locals: the int8 stores may alias `data` as far as the compiler knows.
  const Requantizer requantize = data.requantize;
  const int32_t output_offset = data.output_offset;
  for (int j = 0; j < count; ++j) {
    int32_t v = requantize(static_cast<int32_t>(sums[j])) + output_offset;
    v = v < INT8_MIN ? INT8_MIN : v;  // BATCH_MATMUL has no fused activation
    v = v > INT8_MAX ? INT8_MAX : v;
    o[j] = static_cast<int8_t>(v);
  }
}

// lhs rows contiguous in k, rhs through its strides.
void MatMulPacked(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
  uint32_t words[8 * kPackedGroups];
  const int rows = data.rows;
  const int cols = data.cols;
  const int depth = data.depth;
  const int groups = depth / 4;
  const int k_tail = 4 * groups;
  const bool whole = groups <= kPackedGroups;
  const int ds = data.rhs_depth_stride;
  const int cs = data.rhs_col_stride;
  const int row_stride = data.lhs_row_stride;
  const int32_t ob = data.rhs_offset;
  for (int n0 = 0; n0 < cols; n0 += 4) {
    const int count = cols - n0 < 4 ? cols - n0 : 4;
    const int8_t* column = rhs + n0 * cs;
    uint32_t terms[4] = {0, 0, 0, 0};
    for (int j = 0; j < count; ++j) terms[j] = ColumnTerm(data, column + j * cs);
    if (whole) PackBlock(data, column, count, 0, groups, words);
    const int8_t* a = lhs;
    int8_t* o = out + n0;
    for (int m = 0; m < rows; ++m, a += row_stride, o += cols) {
      int32_t acc[4] = {0, 0, 0, 0};
      if (whole) {
        DotPacked(a, words, groups, acc);
      } else {
        for (int g0 = 0; g0 < groups; g0 += kPackedGroups) {
          const int n = groups - g0 < kPackedGroups ? groups - g0 : kPackedGroups;
          PackBlock(data, column, count, 4 * g0, n, words);
          DotPacked(a + 4 * g0, words, n, acc);
        }
      }
      uint32_t sums[4];
      for (int j = 0; j < count; ++j) {
        uint32_t sum = static_cast<uint32_t>(acc[j]) + terms[j];
        const int8_t* b = column + j * cs;
        for (int k = k_tail; k < depth; ++k) {
          sum += static_cast<uint32_t>(a[k] * (b[k * ds] + ob));
        }
        sums[j] = sum;
      }
      Store(data, sums, count, o);
    }
  }
}

#endif  // TINYHAR_SIMD

void MatMul(const OpData& data, const int8_t* lhs, const int8_t* rhs, int8_t* out) {
#if TINYHAR_SIMD
  if (data.lhs_depth_stride == 1) {
    MatMulPacked(data, lhs, rhs, out);
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
