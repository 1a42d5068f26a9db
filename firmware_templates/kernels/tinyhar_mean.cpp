// int8 MEAN, bit-exact with current TFLM's reference kernel (the Python tflite-micro runtime).
//
// As the reference's QuantizedMeanOrSum: the int32 sum of the raw inputs over the reduced axes,
// minus input_zero_point * n (n: the elements per output), requantized with the multiplier of
// input_scale / output_scale (QuantizeMultiplier in double) into which 1 / n is folded:
//   shift = min(floor(log2(n)), 32, 31 + output_shift)
//   multiplier = (multiplier << shift) / n,  output_shift -= shift
// then MultiplyByQuantizedMultiplier + output zero point, clamped to int8. The Arduino TFLM
// libraries (2022) compute the mean in float instead and differ from this by +-1.
//
// Any set of axes, keep_dims or not. The axes are resolved at Prepare (the axis tensor must be
// constant, as the converter writes it); size-1 dimensions are dropped and neighbouring reduced or
// kept dimensions merged. When one block of axes is reduced, the input is [outer, n, inner]
// (GlobalAveragePooling1D: [1, T, C] over axis 1), summed four bytes at a time in 16-bit lanes of
// plain 32-bit words; other layouts take a generic loop. Nothing is allocated in the arena.

// The firmware compiles at -Os (the Arduino core's flags); this file is worth -O2.
#pragma GCC optimize("O2")

#include <stdint.h>
#include <string.h>

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

constexpr int kInputTensor = 0;
constexpr int kAxisTensor = 1;
constexpr int kOutputTensor = 0;
constexpr int kMaxRank = 8;
constexpr int kMaxGroups = kMaxRank / 2;
// A 16-bit lane holds 256 biased bytes (at most 255 each, 65280 in all): flush every 256 rows.
constexpr int kLaneRows = 256;

// The kept and the reduced dimensions (merged) with their input strides. Merged groups alternate
// between the two kinds, so each kind has at most kMaxRank / 2.
struct Generic {
  int kept_rank;
  int kept_dims[kMaxGroups];
  int kept_strides[kMaxGroups];
  int reduced_rank;
  int reduced_dims[kMaxGroups];
  int reduced_strides[kMaxGroups];
};

struct OpData {
  Requantizer requantize;  // with 1 / n folded in
  int32_t input_zero_point;
  int32_t output_zero_point;
  uint32_t count;  // n: input elements per output
  int outputs;
  bool empty;  // a dimension of the input is 0: every output is 0, as in the reference
  // One reduced block: input [outer, count, inner].
  bool simple;
  int outer;
  int inner;
  // Otherwise (allocated only then): the kept and the reduced dimensions, merged.
  Generic* generic;
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

// Which input dimensions are reduced, from the axis tensor (negative axes count from the end,
// repeats are ignored, as the reference's ResolveAxis).
TfLiteStatus ResolveAxes(const TfLiteTensor* axis, int rank, bool* reduced) {
  for (int i = 0; i < rank; ++i) reduced[i] = false;
  const int n = static_cast<int>(tflite::NumElements(axis));
  const int32_t* values = axis->data.i32;
  if (n > 0 && values == nullptr) {
    MicroPrintf("MEAN (tinyhar): the axis tensor has no data");
    return kTfLiteError;
  }
  for (int i = 0; i < n; ++i) {
    const int a = values[i] < 0 ? values[i] + rank : values[i];
    if (a < 0 || a >= rank) {
      MicroPrintf("MEAN (tinyhar): axis %d is outside a rank-%d input", static_cast<int>(values[i]),
                  rank);
      return kTfLiteError;
    }
    reduced[a] = true;
  }
  return kTfLiteOk;
}

// Splits the input into kept and reduced dimensions, merging neighbours of the same kind and
// dropping size-1 dimensions; fills the plan (`generic` is where the generic layout goes).
void PlanLayout(const int* dims, const bool* reduced, int rank, OpData* data, Generic* generic) {
  int group_dims[kMaxRank];
  bool group_reduced[kMaxRank];
  int groups = 0;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] == 1) continue;
    if (groups > 0 && group_reduced[groups - 1] == reduced[i]) {
      group_dims[groups - 1] *= dims[i];
    } else {
      group_dims[groups] = dims[i];
      group_reduced[groups] = reduced[i];
      ++groups;
    }
  }
  int stride = 1;
  int group_strides[kMaxRank];
  for (int g = groups - 1; g >= 0; --g) {
    group_strides[g] = stride;
    stride *= group_dims[g];
  }
  generic->kept_rank = 0;
  generic->reduced_rank = 0;
  for (int g = 0; g < groups; ++g) {
    if (group_reduced[g]) {
      generic->reduced_dims[generic->reduced_rank] = group_dims[g];
      generic->reduced_strides[generic->reduced_rank++] = group_strides[g];
    } else {
      generic->kept_dims[generic->kept_rank] = group_dims[g];
      generic->kept_strides[generic->kept_rank++] = group_strides[g];
    }
  }
  data->simple = generic->reduced_rank <= 1;
  data->outer = 1;
  data->inner = 1;
  for (int g = 0; g < groups; ++g) {
    if (group_reduced[g]) {
      data->inner = 1;  // kept dimensions after the reduced block
      for (int h = g + 1; h < groups; ++h) data->inner *= group_dims[h];
      break;
    }
    data->outer *= group_dims[g];
  }
}

TfLiteStatus PrepareTensors(TfLiteContext* context, const TfLiteTensor* input,
                            const TfLiteTensor* axis, const TfLiteTensor* output, OpData* data) {
  TF_LITE_ENSURE(context, input != nullptr && axis != nullptr && output != nullptr);
  if (!IsPerTensorInt8(input) || !IsPerTensorInt8(output)) {
    MicroPrintf("MEAN (tinyhar): only per-tensor quantized int8 input and output, got %s -> %s",
                TfLiteTypeGetName(input->type), TfLiteTypeGetName(output->type));
    return kTfLiteError;
  }
  if (axis->type != kTfLiteInt32 || !tflite::IsConstantTensor(axis)) {
    MicroPrintf("MEAN (tinyhar): the axis must be a constant int32 tensor");
    return kTfLiteError;
  }
  const int rank = input->dims->size;
  if (rank > kMaxRank) {
    MicroPrintf("MEAN (tinyhar): rank %d, at most %d", rank, kMaxRank);
    return kTfLiteError;
  }
  bool reduced[kMaxRank];
  TF_LITE_ENSURE_STATUS(ResolveAxes(axis, rank, reduced));

  int64_t count = 1;
  int64_t kept = 1;
  data->empty = false;
  for (int i = 0; i < rank; ++i) {
    const int d = input->dims->data[i];
    if (d == 0) data->empty = true;
    if (reduced[i]) {
      count *= d;
    } else {
      kept *= d;
    }
  }
  data->outputs = static_cast<int>(tflite::NumElements(output));
  if (!data->empty) TF_LITE_ENSURE_EQ(context, static_cast<int64_t>(data->outputs), kept);
  data->count = static_cast<uint32_t>(count);
  Generic generic;
  PlanLayout(input->dims->data, reduced, rank, data, &generic);
  data->generic = nullptr;
  if (!data->simple) {
    data->generic =
        static_cast<Generic*>(context->AllocatePersistentBuffer(context, sizeof(Generic)));
    TF_LITE_ENSURE(context, data->generic != nullptr);
    *data->generic = generic;
  }

  // The reference's requantization (reduce_common.cc, reference/reduce.h QuantizedMeanOrSum).
  const double real_multiplier =
      static_cast<double>(input->params.scale) / static_cast<double>(output->params.scale);
  int32_t multiplier;
  int shift;
  tflite::QuantizeMultiplier(real_multiplier, &multiplier, &shift);
  if (count > 0) {
    // floor(log2(n)); the 2022 libraries' CountLeadingZeros<uint64_t> counts in 32 bits.
    int log2 = 0;
    while ((count >> (log2 + 1)) != 0) ++log2;
    log2 = log2 < 32 ? log2 : 32;
    log2 = log2 < 31 + shift ? log2 : 31 + shift;
    multiplier = static_cast<int32_t>((static_cast<int64_t>(multiplier) << log2) / count);
    shift -= log2;
  }
  data->requantize = Requantizer::Make(multiplier, shift);
  data->input_zero_point = input->params.zero_point;
  data->output_zero_point = output->params.zero_point;
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), 2);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  OpData* data = static_cast<OpData*>(node->user_data);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kInputTensor);
  TfLiteTensor* axis = micro_context->AllocateTempInputTensor(node, kAxisTensor);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kOutputTensor);
  const TfLiteStatus status = PrepareTensors(context, input, axis, output, data);
  if (input != nullptr) micro_context->DeallocateTempTfLiteTensor(input);
  if (axis != nullptr) micro_context->DeallocateTempTfLiteTensor(axis);
  if (output != nullptr) micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

// sum - input_zero_point * n, modulo 2^32 as the reference's int32 arithmetic, requantized.
inline int8_t Requantize(const OpData& data, uint32_t sum) {
  const int32_t shifted =
      static_cast<int32_t>(sum - static_cast<uint32_t>(data.input_zero_point) * data.count);
  int32_t v = data.requantize(shifted) + data.output_zero_point;
  v = v < INT8_MIN ? INT8_MIN : v;
  v = v > INT8_MAX ? INT8_MAX : v;
  return static_cast<int8_t>(v);
}

uint32_t Read4(const int8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

// Sums of four neighbouring columns c..c+3 over `rows` rows `stride` bytes apart. Each byte is
// biased by 128 (x ^ 0x80 as unsigned) and bytes 0/2 and 1/3 add up in two words of 16-bit lanes.
void SumColumns4(const int8_t* p, int rows, int stride, uint32_t* sums) {
  while (rows > 0) {
    const int n = rows < kLaneRows ? rows : kLaneRows;
    uint32_t even = 0;  // lanes: columns 0 and 2
    uint32_t odd = 0;   // lanes: columns 1 and 3
    for (int r = 0; r < n; ++r) {
      const uint32_t w = Read4(p) ^ 0x80808080u;
      even += w & 0x00FF00FFu;
      odd += (w >> 8) & 0x00FF00FFu;
      p += stride;
    }
    const uint32_t bias = 128u * static_cast<uint32_t>(n);
    sums[0] += (even & 0xFFFFu) - bias;
    sums[1] += (odd & 0xFFFFu) - bias;
    sums[2] += (even >> 16) - bias;
    sums[3] += (odd >> 16) - bias;
    rows -= n;
  }
}

// The sum of n contiguous bytes.
uint32_t SumContiguous(const int8_t* p, uint32_t n) {
  uint32_t sum = 0;
  while (n >= 4) {
    // Each 16-bit lane adds two bytes per word: flush every kLaneRows / 2 words.
    const uint32_t most = kLaneRows / 2;
    uint32_t words = n / 4 < most ? n / 4 : most;
    uint32_t lanes = 0;
    const uint32_t bytes = words * 4;
    for (; words > 0; --words, p += 4) {
      const uint32_t w = Read4(p) ^ 0x80808080u;
      lanes += (w & 0x00FF00FFu) + ((w >> 8) & 0x00FF00FFu);
    }
    sum += (lanes & 0xFFFFu) + (lanes >> 16) - 128u * bytes;
    n -= bytes;
  }
  for (; n > 0; --n) sum += static_cast<uint32_t>(*p++);
  return sum;
}

void MeanSimple(const OpData& data, const int8_t* in, int8_t* out) {
  const int count = static_cast<int>(data.count);
  const int inner = data.inner;
  for (int o = 0; o < data.outer; ++o) {
    const int8_t* block = in + static_cast<size_t>(o) * count * inner;
    if (inner == 1) {
      *out++ = Requantize(data, SumContiguous(block, data.count));
      continue;
    }
    int c = 0;
    for (; c + 4 <= inner; c += 4) {
      uint32_t sums[4] = {0, 0, 0, 0};
      SumColumns4(block + c, count, inner, sums);
      for (int j = 0; j < 4; ++j) *out++ = Requantize(data, sums[j]);
    }
    for (; c < inner; ++c) {
      uint32_t sum = 0;
      const int8_t* p = block + c;
      for (int r = 0; r < count; ++r, p += inner) sum += static_cast<uint32_t>(*p);
      *out++ = Requantize(data, sum);
    }
  }
}

void MeanGeneric(const OpData& data, const int8_t* in, int8_t* out) {
  const Generic& g = *data.generic;
  int kept_index[kMaxGroups] = {0};
  int kept_back[kMaxGroups];  // how far a wrap of dimension i moves back
  int reduced_back[kMaxGroups];
  for (int i = 0; i < g.kept_rank; ++i) {
    kept_back[i] = (g.kept_dims[i] - 1) * g.kept_strides[i];
  }
  for (int i = 0; i < g.reduced_rank; ++i) {
    reduced_back[i] = (g.reduced_dims[i] - 1) * g.reduced_strides[i];
  }
  int base = 0;
  for (int o = 0; o < data.outputs; ++o) {
    int reduced_index[kMaxGroups] = {0};
    int offset = base;
    uint32_t sum = 0;
    for (uint32_t k = 0; k < data.count; ++k) {
      sum += static_cast<uint32_t>(in[offset]);
      for (int i = g.reduced_rank - 1; i >= 0; --i) {
        if (++reduced_index[i] < g.reduced_dims[i]) {
          offset += g.reduced_strides[i];
          break;
        }
        reduced_index[i] = 0;
        offset -= reduced_back[i];
      }
    }
    out[o] = Requantize(data, sum);
    for (int i = g.kept_rank - 1; i >= 0; --i) {
      if (++kept_index[i] < g.kept_dims[i]) {
        base += g.kept_strides[i];
        break;
      }
      kept_index[i] = 0;
      base -= kept_back[i];
    }
  }
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const OpData& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, kInputTensor);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, kOutputTensor);
  TF_LITE_ENSURE(context, input != nullptr && output != nullptr);
  int8_t* out = tflite::micro::GetTensorData<int8_t>(output);
  if (data.empty) {
    memset(out, 0, static_cast<size_t>(data.outputs));
    return kTfLiteOk;
  }
  const int8_t* in = tflite::micro::GetTensorData<int8_t>(input);
  if (data.simple) {
    MeanSimple(data, in, out);
  } else {
    MeanGeneric(data, in, out);
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_MEAN() { return tflite::micro::RegisterOp(Init, Prepare, Eval); }

}  // namespace tinyhar
