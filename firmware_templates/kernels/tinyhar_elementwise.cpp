// int8 ADD and MUL with broadcasting, bit-exact with current TFLM's reference kernels (the Python
// tflite-micro runtime) and with the Arduino TFLM libraries' (CMSIS-NN for equal shapes, the
// reference's BroadcastAdd4DSlow / BroadcastMul4DSlow otherwise).
//
// Per element, as the reference's integer ops:
//   ADD: s_i = MultiplyByQuantizedMultiplierSmallerThanOneExp((x_i - zp_i) << 20, m_i, e_i) for
//        both inputs (m_i: scale_i / (2 max(scale_1, scale_2))), then
//        out = MultiplyByQuantizedMultiplierSmallerThanOneExp(s_1 + s_2, m_out, e_out) + zp_out,
//        m_out = 2 max(scale) / (2^20 scale_out); all multipliers from doubles.
//   MUL: out = MultiplyByQuantizedMultiplier((x_1 - zp_1)(x_2 - zp_2), m, e) + zp_out,
//        m = scale_1 scale_2 / scale_out in double.
// then clamped to the fused activation's range.
//
// Broadcasting: both inputs are extended to the output's rank (up to kMaxRank), dimensions of
// size 1 in the output are dropped and neighbours merged where both inputs step through them
// alike, so the batch norm of a [1, 1, T, C] tensor with a [C] constant is T rows of a C-long
// inner loop. The inner loop is specialised by whether the second input steps or repeats (the
// inputs are swapped so that the first one steps). The layout is worked out again at each call
// (some dozens of instructions), so the op keeps no more than the library's in the arena.
// A broadcast input of at most kSmallInput elements (a per-channel constant) has its per-element
// term (ADD: s_i; MUL: x_i - zp_i) computed once per invocation into a stack array.

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

constexpr int kInput1 = 0;
constexpr int kInput2 = 1;
constexpr int kOutput = 0;
constexpr int kMaxRank = 6;
constexpr int kSmallInput = 256;  // int32 per element on the stack: 1 KB
constexpr int kAddLeftShift = 20;  // the reference's for int8

enum class Op { kAdd, kMul };

struct OpData {
  // ADD: both inputs' and the output's requantization; MUL: the output's only.
  Requantizer input1;
  Requantizer input2;
  Requantizer output;
  int32_t input1_offset;  // -zero point
  int32_t input2_offset;
  int32_t output_offset;
  int32_t activation_min;
  int32_t activation_max;
};

// The broadcast layout: merged dimensions, outermost first; the last is the inner loop.
// `swapped`: the loops' input 1 is the model's second input (so that input 1 steps through the
// inner loop and, where both do, input 2 has no more elements).
struct Layout {
  int groups;
  int size[kMaxRank];
  int stride1[kMaxRank];  // 0 where input 1 repeats
  int stride2[kMaxRank];
  int elements1;  // elements of each input
  int elements2;
  bool swapped;
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

const char* Name(Op op) { return op == Op::kAdd ? "ADD" : "MUL"; }

// The layout of input1 op input2 -> output (see the top of the file); false, and `bad` the
// dimension, when the shapes do not broadcast.
bool PlanBroadcast(const TfLiteIntArray* dims1, const TfLiteIntArray* dims2,
                   const TfLiteIntArray* dims_out, Layout* layout, int* bad) {
  const int rank = dims_out->size;
  *bad = -1;
  if (rank > kMaxRank || dims1->size > rank || dims2->size > rank) return false;
  int size[kMaxRank];
  int stride1[kMaxRank];
  int stride2[kMaxRank];
  int step1 = 1;
  int step2 = 1;
  for (int i = rank - 1; i >= 0; --i) {
    const int pad1 = rank - dims1->size;
    const int pad2 = rank - dims2->size;
    const int d1 = i < pad1 ? 1 : dims1->data[i - pad1];
    const int d2 = i < pad2 ? 1 : dims2->data[i - pad2];
    const int d = dims_out->data[i];
    if ((d1 != d && d1 != 1) || (d2 != d && d2 != 1)) {
      *bad = i;
      return false;
    }
    size[i] = d;
    stride1[i] = d1 == 1 ? 0 : step1;
    stride2[i] = d2 == 1 ? 0 : step2;
    step1 *= d1;
    step2 *= d2;
  }
  // Merge from the inside out: dimension i joins the group inside it when each input either
  // repeats through both or steps through both contiguously.
  int groups = 0;
  int g_size[kMaxRank];
  int g_stride1[kMaxRank];
  int g_stride2[kMaxRank];
  for (int i = rank - 1; i >= 0; --i) {
    if (size[i] == 1) continue;
    if (groups > 0) {
      const int g = groups - 1;
      const bool merge1 = (stride1[i] == 0 && g_stride1[g] == 0) ||
                          (stride1[i] != 0 && g_stride1[g] != 0 &&
                           stride1[i] == g_stride1[g] * g_size[g]);
      const bool merge2 = (stride2[i] == 0 && g_stride2[g] == 0) ||
                          (stride2[i] != 0 && g_stride2[g] != 0 &&
                           stride2[i] == g_stride2[g] * g_size[g]);
      if (merge1 && merge2) {
        g_size[g] *= size[i];
        continue;
      }
    }
    g_size[groups] = size[i];
    g_stride1[groups] = stride1[i];
    g_stride2[groups] = stride2[i];
    ++groups;
  }
  if (groups == 0) {  // a single element
    g_size[0] = 1;
    g_stride1[0] = 1;
    g_stride2[0] = 1;
    groups = 1;
  }
  // Input 1 steps through the inner loop; where both do, input 2 is the smaller.
  layout->swapped = g_stride1[0] == 0 || (g_stride2[0] != 0 && step2 > step1);
  layout->groups = groups;
  layout->elements1 = layout->swapped ? step2 : step1;
  layout->elements2 = layout->swapped ? step1 : step2;
  for (int g = 0; g < groups; ++g) {  // outermost first
    const int from = groups - 1 - g;
    layout->size[g] = g_size[from];
    layout->stride1[g] = layout->swapped ? g_stride2[from] : g_stride1[from];
    layout->stride2[g] = layout->swapped ? g_stride1[from] : g_stride2[from];
  }
  return true;
}

TfLiteStatus PrepareTensors(TfLiteContext* context, Op op, TfLiteFusedActivation activation,
                            const TfLiteTensor* input1, const TfLiteTensor* input2,
                            TfLiteTensor* output, OpData* data) {
  TF_LITE_ENSURE(context, input1 != nullptr && input2 != nullptr && output != nullptr);
  if (!IsPerTensorInt8(input1) || !IsPerTensorInt8(input2) || !IsPerTensorInt8(output)) {
    MicroPrintf("%s (tinyhar): only per-tensor quantized int8 inputs and output, got %s, %s -> %s",
                Name(op), TfLiteTypeGetName(input1->type), TfLiteTypeGetName(input2->type),
                TfLiteTypeGetName(output->type));
    return kTfLiteError;
  }
  Layout layout;
  int bad;
  if (!PlanBroadcast(input1->dims, input2->dims, output->dims, &layout, &bad)) {
    if (bad < 0) {
      MicroPrintf("%s (tinyhar): ranks %d, %d -> %d, at most %d", Name(op), input1->dims->size,
                  input2->dims->size, output->dims->size, kMaxRank);
    } else {
      MicroPrintf("%s (tinyhar): the inputs do not broadcast to the output in dimension %d",
                  Name(op), bad);
    }
    return kTfLiteError;
  }
  data->input1_offset = -input1->params.zero_point;
  data->input2_offset = -input2->params.zero_point;
  data->output_offset = output->params.zero_point;
  TF_LITE_ENSURE_STATUS(tflite::CalculateActivationRangeQuantized(
      context, activation, output, &data->activation_min, &data->activation_max));
  const double scale1 = static_cast<double>(input1->params.scale);
  const double scale2 = static_cast<double>(input2->params.scale);
  const double scale_out = static_cast<double>(output->params.scale);
  int32_t multiplier;
  int shift;
  if (op == Op::kAdd) {
    // As the reference's CalculateOpDataAdd.
    const double twice_max_input_scale =
        2 * static_cast<double>(input1->params.scale > input2->params.scale
                                    ? input1->params.scale
                                    : input2->params.scale);
    tflite::QuantizeMultiplierSmallerThanOneExp(scale1 / twice_max_input_scale, &multiplier,
                                                &shift);
    data->input1 = Requantizer::Make(multiplier, shift);
    tflite::QuantizeMultiplierSmallerThanOneExp(scale2 / twice_max_input_scale, &multiplier,
                                                &shift);
    data->input2 = Requantizer::Make(multiplier, shift);
    tflite::QuantizeMultiplierSmallerThanOneExp(
        twice_max_input_scale / ((1 << kAddLeftShift) * scale_out), &multiplier, &shift);
    data->output = Requantizer::Make(multiplier, shift);
  } else {
    // As the reference's CalculateOpDataMul.
    tflite::QuantizeMultiplier(scale1 * scale2 / scale_out, &multiplier, &shift);
    data->output = Requantizer::Make(multiplier, shift);
  }
  return kTfLiteOk;
}

template <Op kOp>
TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE(context, node->builtin_data != nullptr);
  TF_LITE_ENSURE_EQ(context, tflite::NumInputs(node), 2);
  TF_LITE_ENSURE_EQ(context, tflite::NumOutputs(node), 1);
  const TfLiteFusedActivation activation =
      kOp == Op::kAdd ? static_cast<const TfLiteAddParams*>(node->builtin_data)->activation
                      : static_cast<const TfLiteMulParams*>(node->builtin_data)->activation;
  OpData* data = static_cast<OpData*>(node->user_data);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input1 = micro_context->AllocateTempInputTensor(node, kInput1);
  TfLiteTensor* input2 = micro_context->AllocateTempInputTensor(node, kInput2);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, kOutput);
  const TfLiteStatus status =
      PrepareTensors(context, kOp, activation, input1, input2, output, data);
  if (input1 != nullptr) micro_context->DeallocateTempTfLiteTensor(input1);
  if (input2 != nullptr) micro_context->DeallocateTempTfLiteTensor(input2);
  if (output != nullptr) micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

// One input's per-element term: ADD s_i, MUL x_i - zp_i.
template <Op kOp>
inline int32_t Term(const Requantizer& r, int32_t offset, int8_t x) {
  const int32_t v = x + offset;
  return kOp == Op::kAdd ? r(v * (1 << kAddLeftShift)) : v;
}

// The output from both terms, clamped.
template <Op kOp>
inline int8_t Combine(const Requantizer& r, int32_t offset, int32_t lo, int32_t hi, int32_t t1,
                      int32_t t2) {
  int32_t v = r(kOp == Op::kAdd ? t1 + t2 : t1 * t2) + offset;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return static_cast<int8_t>(v);
}

// Input 2's terms: computed per element from its int8 values, or read from an array.
struct Direct {
  const int8_t* x;
  Direct At(int offset) const { return Direct{x + offset}; }
};
struct Precomputed {
  const int32_t* terms;
  Precomputed At(int offset) const { return Precomputed{terms + offset}; }
};

template <Op kOp>
inline int32_t TermAt(const Direct& in, const Requantizer& r, int32_t offset, int i) {
  return Term<kOp>(r, offset, in.x[i]);
}
template <Op kOp>
inline int32_t TermAt(const Precomputed& in, const Requantizer&, int32_t, int i) {
  return in.terms[i];
}

// The inner loop: n outputs; input 1 steps, input 2 steps (kStep2 = 1) or repeats (0). Not
// inlined: the loop gets the registers to itself.
template <Op kOp, int kStep2, typename In2>
__attribute__((noinline)) void Inner(const OpData& d, bool swapped, const int8_t* x1, In2 in2,
                                     int8_t* out, int n) {
  // Locals: the int8 stores may alias `d` as far as the compiler knows.
  const Requantizer r1 = swapped ? d.input2 : d.input1;
  const Requantizer r2 = swapped ? d.input1 : d.input2;
  const Requantizer ro = d.output;
  const int32_t o1 = swapped ? d.input2_offset : d.input1_offset;
  const int32_t o2 = swapped ? d.input1_offset : d.input2_offset;
  const int32_t oo = d.output_offset;
  const int32_t lo = d.activation_min;
  const int32_t hi = d.activation_max;
  if (kStep2 == 0) {
    const int32_t t2 = TermAt<kOp>(in2, r2, o2, 0);
    for (int i = 0; i < n; ++i) out[i] = Combine<kOp>(ro, oo, lo, hi, Term<kOp>(r1, o1, x1[i]), t2);
  } else {
    for (int i = 0; i < n; ++i) {
      out[i] = Combine<kOp>(ro, oo, lo, hi, Term<kOp>(r1, o1, x1[i]), TermAt<kOp>(in2, r2, o2, i));
    }
  }
}

// The outer groups (an odometer), each a call of the inner loop.
template <Op kOp, int kStep2, typename In2>
void Loops(const OpData& d, const Layout& l, const int8_t* x1, In2 in2, int8_t* out) {
  const int inner = l.size[l.groups - 1];
  int outer = 1;
  for (int g = 0; g + 1 < l.groups; ++g) outer *= l.size[g];
  int index[kMaxRank] = {0};
  int offset1 = 0;
  int offset2 = 0;
  for (int o = 0; o < outer; ++o, out += inner) {
    Inner<kOp, kStep2>(d, l.swapped, x1 + offset1, in2.At(offset2), out, inner);
    for (int g = l.groups - 2; g >= 0; --g) {
      offset1 += l.stride1[g];
      offset2 += l.stride2[g];
      if (++index[g] < l.size[g]) break;
      offset1 -= l.stride1[g] * l.size[g];
      offset2 -= l.stride2[g] * l.size[g];
      index[g] = 0;
    }
  }
}

template <Op kOp, typename In2>
void Run(const OpData& d, const Layout& l, const int8_t* x1, In2 in2, int8_t* out) {
  if (l.stride2[l.groups - 1] != 0) {
    Loops<kOp, 1>(d, l, x1, in2, out);
  } else {
    Loops<kOp, 0>(d, l, x1, in2, out);
  }
}

template <Op kOp>
TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const OpData& d = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input1 = tflite::micro::GetEvalInput(context, node, kInput1);
  const TfLiteEvalTensor* input2 = tflite::micro::GetEvalInput(context, node, kInput2);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, kOutput);
  TF_LITE_ENSURE(context, input1 != nullptr && input2 != nullptr && output != nullptr);
  Layout l;
  int bad;
  TF_LITE_ENSURE(context, PlanBroadcast(input1->dims, input2->dims, output->dims, &l, &bad));
  const int8_t* x1 = tflite::micro::GetTensorData<int8_t>(l.swapped ? input2 : input1);
  const int8_t* x2 = tflite::micro::GetTensorData<int8_t>(l.swapped ? input1 : input2);
  int8_t* out = tflite::micro::GetTensorData<int8_t>(output);
  if (l.elements2 <= kSmallInput && l.elements2 < l.elements1) {
    const Requantizer r2 = l.swapped ? d.input1 : d.input2;
    const int32_t o2 = l.swapped ? d.input1_offset : d.input2_offset;
    int32_t terms[kSmallInput];
    for (int i = 0; i < l.elements2; ++i) terms[i] = Term<kOp>(r2, o2, x2[i]);
    Run<kOp>(d, l, x1, Precomputed{terms}, out);
  } else {
    Run<kOp>(d, l, x1, Direct{x2}, out);
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_ADD() {
  return tflite::micro::RegisterOp(Init, Prepare<Op::kAdd>, Eval<Op::kAdd>);
}

TfLiteRegistration Register_MUL() {
  return tflite::micro::RegisterOp(Init, Prepare<Op::kMul>, Eval<Op::kMul>);
}

}  // namespace tinyhar
