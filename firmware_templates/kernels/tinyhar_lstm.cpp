// int8 UNIDIRECTIONAL_SEQUENCE_LSTM for the Arduino TFLM libraries: int8 input, output and
// weights, int32 bias, int16 cell state (what tf_keras' LSTM converts to).
//
// It computes what current TFLM's reference kernel computes (lstm_eval.h / lstm_eval_common.cc,
// the Python tflite-micro interpreter), per timestep and unit:
//   gate = act(sat16(fc(x, W_gate, bias_gate)) + sat16(fc(h, U_gate)))   fc: int32 sum, then
//     MultiplyByQuantizedMultiplier to the gate scale 2^-12, clamped to int16
//   act: sigmoid (input, forget, output gates), tanh (cell gate), int16 Q3.12 -> Q0.15
//   c = sat16(mul(f, c) + mul(i, g)), clipped to +-cell_clip when it is set
//   h = int8(h_zp + mul(tanh(c), o)), written to the output sequence and the hidden state
// The Arduino libraries' own 2022 kernel right-shifts the persistent cell state in place when
// the cell scale is finer than 2^-12, losing a bit per timestep; this one never writes it there.
//
// Speed: the gate matmuls are nearly all the work. With the DSP extension (TINYHAR_SIMD) the
// input and hidden state are widened once per timestep to int16 with their zero points added,
// into two scratch buffers; each pass over them computes four rows (two gates of two units), so
// one load of the input serves four rows, read four weights at a time: SXTB16 splits them into
// int16 pairs, SMLAD multiplies and adds two pairs. Integer sums do not depend on their order,
// so this is bit-exact. When the two buffers would need more arena than the reference kernel
// takes, or without the DSP extension, a scalar path reads the int8 values directly.
//
// Compiler flags (GCC 12, the width-64 op of `tiny`, 1.64 M multiply-adds, on the emulated M4):
// -Os, the Arduino core's level, 4.30 M instructions; -O2 4.84 M (its scheduling before
// register allocation hoists loads and the inner loop spills); -O2 without that pass 3.59 M.
#pragma GCC optimize("O2", "no-schedule-insns")

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
#include "tinyhar_simd.h"

namespace tinyhar {
namespace {

// The op's 24 inputs (TFLite's lstm_shared.h numbering) and its output.
constexpr int kInput = 0;
constexpr int kInputWeights = 1;      // 1..4: input -> input, forget, cell, output gate
constexpr int kRecurrentWeights = 5;  // 5..8: hidden state -> the four gates
constexpr int kBias = 12;             // 12..15: the four gates' biases
constexpr int kHiddenState = 18;
constexpr int kCellState = 19;
constexpr int kNumInputs = 24;
constexpr int kOutput = 0;
constexpr int kGates = 4;  // input, forget, cell, output: the order of the weight tensors
constexpr int kInputGate = 0;
constexpr int kForgetGate = 1;
constexpr int kCellGate = 2;
constexpr int kOutputGate = 3;
// sizeof(tflite::OpDataLSTM), the reference kernel's persistent data: 688 bytes on 32- and
// 64-bit targets (lstm_shared.h with these libraries' types.h).
constexpr int kReferenceOpDataBytes = 688;

// MultiplyByQuantizedMultiplier's parameters: the shift split into its two directions, and for
// right shifts (e >= 1) the rounding of both its steps as one 64-bit constant (see Requantize).
struct Requant {
  int64_t rounding;  // 2^30 + 2^(30 + e)
  int32_t multiplier;
  int32_t left_shift;
  int32_t right_shift;  // e
  int32_t high_shift;   // e - 1
};

struct OpData {
  int32_t batches;
  int32_t steps;
  int32_t inputs;  // input width
  int32_t units;   // state width
  int32_t time_major;
  int32_t input_offset;   // -input zero point
  int32_t hidden_offset;  // -hidden state zero point
  int32_t hidden_zero_point;
  int32_t input_weight_offset[kGates];  // -zero point of each weight tensor
  int32_t recurrent_weight_offset[kGates];
  Requant input_fc[kGates];      // input x weights + bias -> gate scale 2^-12
  Requant recurrent_fc[kGates];  // hidden x weights -> gate scale 2^-12
  Requant forget_cell;           // f (2^-15) x c -> c
  Requant input_cell;            // i (2^-15) x g (2^-15) -> c
  Requant hidden;                // tanh(c) (2^-15) x o (2^-15) -> h
  int32_t cell_clip;             // 0: no clipping
  int32_t cell_tanh_multiplier;  // tanh(c) input rescaling: (c * m + round) >> shift
  int32_t cell_tanh_shift;
  int32_t cell_tanh_round;
  int input_buffer;   // scratch buffer indices of the widened input and hidden state,
  int hidden_buffer;  // -1 on the scalar path
};
static_assert(sizeof(OpData) <= kReferenceOpDataBytes, "OpData outgrew the reference's");

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

Requant MakeRequant(double real_multiplier) {
  int32_t multiplier = 0;
  int shift = 0;
  tflite::QuantizeMultiplier(real_multiplier, &multiplier, &shift);
  Requant q;
  q.multiplier = multiplier;
  q.left_shift = shift > 0 ? shift : 0;
  q.right_shift = shift > 0 ? 0 : -shift;
  q.high_shift = q.right_shift > 0 ? q.right_shift - 1 : 0;
  q.rounding = (INT64_C(1) << 30) + (q.right_shift > 0 ? INT64_C(1) << (30 + q.right_shift) : 0);
  return q;
}

const char* TypeName(const TfLiteTensor* t) {
  return t == nullptr ? "none" : TfLiteTypeGetName(t->type);
}

bool IsPerTensor(const TfLiteTensor* t) {
  if (t->quantization.type != kTfLiteAffineQuantization || !(t->params.scale > 0.0f)) {
    return false;
  }
  const TfLiteAffineQuantization* q =
      static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  return q == nullptr || q->scale == nullptr || q->scale->size <= 1;
}

bool HasShape(const TfLiteTensor* t, int rank, int d0, int d1) {
  if (t->dims->size != rank || t->dims->data[0] != d0) return false;
  return rank < 2 || t->dims->data[1] == d1;
}

// The tensors of one node, fetched for Prepare and released when it returns.
class Tensors {
 public:
  Tensors(TfLiteContext* context, TfLiteNode* node)
      : micro_context_(tflite::GetMicroContext(context)) {
    for (int i = 0; i < kNumInputs; ++i) {
      inputs_[i] = micro_context_->AllocateTempInputTensor(node, i);
    }
    output_ = micro_context_->AllocateTempOutputTensor(node, kOutput);
  }
  ~Tensors() {
    for (int i = 0; i < kNumInputs; ++i) {
      if (inputs_[i] != nullptr) micro_context_->DeallocateTempTfLiteTensor(inputs_[i]);
    }
    if (output_ != nullptr) micro_context_->DeallocateTempTfLiteTensor(output_);
  }
  Tensors(const Tensors&) = delete;
  Tensors& operator=(const Tensors&) = delete;

  const TfLiteTensor* in(int i) const { return inputs_[i]; }
  const TfLiteTensor* out() const { return output_; }

 private:
  tflite::MicroContext* micro_context_;
  TfLiteTensor* inputs_[kNumInputs];
  TfLiteTensor* output_;
};

// One line naming what the kernel does not support, or kTfLiteOk.
TfLiteStatus CheckSupported(const Tensors& t, const TfLiteUnidirectionalSequenceLSTMParams& p) {
  const char* missing = nullptr;
  if (t.in(kInput) == nullptr) missing = "input";
  if (t.in(kHiddenState) == nullptr) missing = "hidden state";
  if (t.in(kCellState) == nullptr) missing = "cell state";
  if (t.out() == nullptr) missing = "output";
  for (int g = 0; g < kGates; ++g) {
    if (t.in(kInputWeights + g) == nullptr || t.in(kRecurrentWeights + g) == nullptr) {
      missing = g == kInputGate ? "input gate weights (CIFG LSTM)" : "gate weights";
    }
    if (t.in(kBias + g) == nullptr) missing = "gate bias";
  }
  if (missing != nullptr) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): no %s tensor, which it needs", missing);
    return kTfLiteError;
  }
  const char* variant = nullptr;
  for (int i = 9; i <= 11; ++i) {
    if (t.in(i) != nullptr) variant = "peephole";
  }
  for (int i = 16; i <= 17; ++i) {
    if (t.in(i) != nullptr) variant = "projection";
  }
  for (int i = 20; i <= 23; ++i) {
    if (t.in(i) != nullptr) variant = "layer norm";
  }
  if (variant != nullptr) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): %s LSTMs are not supported", variant);
    return kTfLiteError;
  }

  bool types_ok = t.in(kInput)->type == kTfLiteInt8 && t.in(kHiddenState)->type == kTfLiteInt8 &&
                  t.out()->type == kTfLiteInt8 && t.in(kCellState)->type == kTfLiteInt16;
  for (int g = 0; g < kGates; ++g) {
    types_ok = types_ok && t.in(kInputWeights + g)->type == kTfLiteInt8 &&
               t.in(kRecurrentWeights + g)->type == kTfLiteInt8 &&
               t.in(kBias + g)->type == kTfLiteInt32;
  }
  if (!types_ok) {
    MicroPrintf(
        "UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): only int8 input/output, int8 weights, int32 "
        "bias, int16 cell state; got input %s, weights %s, bias %s, cell %s, hidden %s, output %s",
        TypeName(t.in(kInput)), TypeName(t.in(kInputWeights + 1)), TypeName(t.in(kBias + 1)),
        TypeName(t.in(kCellState)), TypeName(t.in(kHiddenState)), TypeName(t.out()));
    return kTfLiteError;
  }
  bool quantized = IsPerTensor(t.in(kInput)) && IsPerTensor(t.in(kHiddenState)) &&
                   IsPerTensor(t.in(kCellState));
  for (int g = 0; g < kGates; ++g) {
    quantized = quantized && IsPerTensor(t.in(kInputWeights + g)) &&
                IsPerTensor(t.in(kRecurrentWeights + g));
  }
  if (!quantized) {
    MicroPrintf(
        "UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): weights, input and states need one scale per "
        "tensor (per-channel weights are not supported)");
    return kTfLiteError;
  }
  if (!t.in(kHiddenState)->is_variable || !t.in(kCellState)->is_variable) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): the state tensors must be variables");
    return kTfLiteError;
  }
  // The reference also takes a sigmoid, which a flatbuffer cannot ask for (its
  // ActivationFunctionType has no SIGMOID); it aborts on any other.
  if (p.activation != kTfLiteActTanh) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): cell gate activation %d, supported is "
                "tanh (%d)", static_cast<int>(p.activation), static_cast<int>(kTfLiteActTanh));
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus PrepareShapes(const Tensors& t, bool time_major, OpData* data) {
  const TfLiteTensor* input = t.in(kInput);
  if (input->dims->size != 3) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): input of rank %d, it needs 3",
                input->dims->size);
    return kTfLiteError;
  }
  data->time_major = time_major ? 1 : 0;
  data->batches = input->dims->data[time_major ? 1 : 0];
  data->steps = input->dims->data[time_major ? 0 : 1];
  data->inputs = input->dims->data[2];
  data->units = t.in(kHiddenState)->dims->data[t.in(kHiddenState)->dims->size - 1];
  const int n = data->units;
  bool ok = t.in(kHiddenState)->dims->size == 2 && data->inputs > 0 && n > 0;
  for (int g = 0; g < kGates; ++g) {
    ok = ok && HasShape(t.in(kInputWeights + g), 2, n, data->inputs) &&
         HasShape(t.in(kRecurrentWeights + g), 2, n, n) && HasShape(t.in(kBias + g), 1, n, 0);
  }
  const int state = data->batches * n;
  ok = ok && tflite::NumElements(t.in(kHiddenState)) == state &&
       tflite::NumElements(t.in(kCellState)) == state && t.out()->dims->size == 3 &&
       t.out()->dims->data[0] == input->dims->data[0] &&
       t.out()->dims->data[1] == input->dims->data[1] && t.out()->dims->data[2] == n;
  if (!ok) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): tensor shapes do not agree with %d "
                "units and %d inputs", n, data->inputs);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

// The rescaling of a cell state at scale 2^power to the tanh table's Q3.12 input, as the
// reference's lstm_internal::Tanh sets it: 3 << s for a left shift s = 15 + power - 3 >= 0,
// else (3 c + 2^(-s-1)) >> -s.
void CellTanhRescale(int power, OpData* data) {
  const int left_shift = 15 + power - 3;
  if (left_shift >= 0) {
    data->cell_tanh_multiplier = 3 << left_shift;
    data->cell_tanh_shift = 0;
    data->cell_tanh_round = 0;
  } else {
    data->cell_tanh_multiplier = 3;
    data->cell_tanh_shift = -left_shift;
    data->cell_tanh_round = 1 << (-left_shift - 1);
  }
}

// The reference's quantization parameters (lstm_eval_common.cc: CreateGateParams,
// CreateInterGateMulParams, CreateLstmCellStateInfo; fully_connected_common.cc).
void PrepareQuantization(const Tensors& t, const TfLiteUnidirectionalSequenceLSTMParams& p,
                         OpData* data) {
  const float gate_scale = 0.000244140625f;      // 2^-12: the gates' int16 input, Q3.12
  const float activation_scale = 0.000030517578125f;  // 2^-15: their output, Q0.15
  const TfLiteTensor* input = t.in(kInput);
  const TfLiteTensor* hidden = t.in(kHiddenState);
  const float cell_scale = t.in(kCellState)->params.scale;
  data->input_offset = -input->params.zero_point;
  data->hidden_offset = -hidden->params.zero_point;
  data->hidden_zero_point = hidden->params.zero_point;
  for (int g = 0; g < kGates; ++g) {
    const TfLiteTensor* w = t.in(kInputWeights + g);
    const TfLiteTensor* u = t.in(kRecurrentWeights + g);
    data->input_weight_offset[g] = -w->params.zero_point;
    data->recurrent_weight_offset[g] = -u->params.zero_point;
    // GetQuantizedConvolutionMultipler without a bias: the scale product in double (a float
    // product gives another multiplier for some scales, and an LSB off in rare windows).
    data->input_fc[g] = MakeRequant(static_cast<double>(input->params.scale) *
                                    static_cast<double>(w->params.scale) /
                                    static_cast<double>(gate_scale));
    data->recurrent_fc[g] = MakeRequant(static_cast<double>(hidden->params.scale) *
                                        static_cast<double>(u->params.scale) /
                                        static_cast<double>(gate_scale));
  }
  const double act = static_cast<double>(activation_scale);
  data->forget_cell = MakeRequant(act * static_cast<double>(cell_scale) /
                                  static_cast<double>(cell_scale));
  data->input_cell = MakeRequant(act * act / static_cast<double>(cell_scale));
  data->hidden = MakeRequant(act * act / static_cast<double>(hidden->params.scale));

  // Clipping applies when cell_clip > 0, to the clip in cell units truncated to int16.
  data->cell_clip = 0;
  if (p.cell_clip > 0.0f) {
    double clip = static_cast<double>(p.cell_clip) / static_cast<double>(cell_scale);
    clip = clip < -32768.0 ? -32768.0 : (clip > 32767.0 ? 32767.0 : clip);
    data->cell_clip = static_cast<int16_t>(clip);
  }
  // tanh(c): the cell scale as a power of two, rounded (the reference ignores CheckedLog2's
  // verdict).
  int power = 0;
  tflite::CheckedLog2(cell_scale, &power);
  CellTanhRescale(power, data);
}

#if TINYHAR_SIMD
// Words of the widened values v[k] + offset: each group of four as (v0, v2), (v1, v3) int16
// halves, which pair with SXTB16 and SXTB16 ROR 8 of four weights; then the last n % 4, one
// int32 each.
inline int WidenedWords(int n) { return (n & ~3) / 2 + (n & 3); }

#endif

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE(context, node->builtin_data != nullptr);
  if (node->inputs->size != kNumInputs || node->outputs->size != 1) {
    MicroPrintf("UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): %d inputs and %d outputs, it needs 24 "
                "and 1", node->inputs->size, node->outputs->size);
    return kTfLiteError;
  }
  const TfLiteUnidirectionalSequenceLSTMParams& params =
      *static_cast<const TfLiteUnidirectionalSequenceLSTMParams*>(node->builtin_data);
  OpData* data = static_cast<OpData*>(node->user_data);
  const Tensors tensors(context, node);
  TF_LITE_ENSURE_STATUS(CheckSupported(tensors, params));
  TF_LITE_ENSURE_STATUS(PrepareShapes(tensors, params.time_major, data));
  PrepareQuantization(tensors, params, data);

  data->input_buffer = -1;
  data->hidden_buffer = -1;
#if TINYHAR_SIMD
  // The widened input and hidden state (one batch at a time) take the SIMD path when they need
  // no more arena than the reference kernel: its four int16 scratch buffers of batches x units,
  // and what its OpDataLSTM takes over this OpData. (Scratch buffers are 16-byte aligned.)
  const auto Align16 = [](int bytes) { return (bytes + 15) & ~15; };
  const int input_bytes = 4 * WidenedWords(data->inputs);
  const int hidden_bytes = 4 * WidenedWords(data->units);
  const int reference = 4 * Align16(2 * data->batches * data->units) + kReferenceOpDataBytes -
                        static_cast<int>(sizeof(OpData));
  if (Align16(input_bytes) + Align16(hidden_bytes) <= reference) {
    TF_LITE_ENSURE_STATUS(
        context->RequestScratchBufferInArena(context, input_bytes, &data->input_buffer));
    TF_LITE_ENSURE_STATUS(
        context->RequestScratchBufferInArena(context, hidden_bytes, &data->hidden_buffer));
  }
#endif
  return kTfLiteOk;
}

// --- arithmetic, as TFLM's reference computes it ------------------------------------------------

inline int32_t Saturate16(int32_t x) {
#if TINYHAR_SIMD
  return tinyhar_ssat16(x);
#else
  return x < INT16_MIN ? INT16_MIN : (x > INT16_MAX ? INT16_MAX : x);
#endif
}

// MultiplyByQuantizedMultiplier (gemmlowp's two roundings): x << left_shift, then
// SaturatingRoundingDoublingHighMul h = floor((x m + 2^30) / 2^31) (for a multiplier m >= 0, as
// QuantizeMultiplier's are: the saturating case needs m = INT32_MIN), then RoundingDivideByPOT,
// h / 2^e rounded half away from zero = floor((h + 2^(e-1) - [h < 0]) / 2^e).
// For e >= 1 the left shift is 0 and the two floors nest into one:
//   floor((x m + 2^30 + 2^(30+e) - [h < 0] 2^31) / 2^(31+e)),
// with [h < 0] = [x < 0] (m >= 2^30; x = -1, m = 2^30 gives 0 either way): one SMLAL onto a
// constant, and the high word shifted. RequantizeInSteps follows the reference's steps.
inline int32_t RequantizeInSteps(int32_t x, const Requant& q) {
  const int32_t shifted = static_cast<int32_t>(static_cast<uint32_t>(x) << q.left_shift);
  const int32_t high = static_cast<int32_t>(
      (static_cast<int64_t>(shifted) * q.multiplier + (INT64_C(1) << 30)) >> 31);
  const int32_t mask = static_cast<int32_t>((UINT32_C(1) << q.right_shift) - 1);
  const int32_t remainder = high & mask;
  const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> q.right_shift) + (remainder > threshold ? 1 : 0);
}

inline int32_t Requantize(int32_t x, const Requant& q) {
  if (q.right_shift == 0) return RequantizeInSteps(x, q);
  const int64_t rounding =
      q.rounding - static_cast<int64_t>(static_cast<uint32_t>(x) & UINT32_C(0x80000000));
  const int64_t acc = rounding + static_cast<int64_t>(x) * q.multiplier;
  return static_cast<int32_t>(acc >> 32) >> q.high_shift;
}

// reference_integer_ops::Logistic for int16 with input_multiplier 0 and shift 0 (Q3.12 in,
// Q0.15 out): the 256-entry sigmoid table, interpolated. For an int16 x, |3 x| >> 9 <= 192: the
// reference's saturation above entry 255 never applies.
inline int32_t Sigmoid(int32_t x) {
  const int32_t v = x * 3;
  const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
  const uint32_t uh = a >> 9;
  const uint32_t ua = tflite::sigmoid_table_uint16[uh];
  const uint32_t ub = tflite::sigmoid_table_uint16[uh + 1];
  uint32_t r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
  // v >= 0: r + 2^9; else 2^25 - r + 2^9 - 1 = ~r + 2^9 + 2^25
  const uint32_t negative = static_cast<uint32_t>(v >> 31);
  r = (r ^ negative) + (1u << 9) + (negative & (1u << 25));
  return static_cast<int16_t>(r >> 10);
}

// reference_integer_ops::Tanh for int16: the input rescaled by (x * multiplier + round) >> shift.
inline int32_t Tanh(int32_t x, int32_t multiplier, int32_t shift, int32_t round) {
  const int32_t v = (x * multiplier + round) >> shift;
  const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
  const uint32_t uh = a >> 8;
  uint32_t r;
  if (uh >= 255) {
    r = 0xFFFFu << 8;
  } else {
    const uint32_t ua = tflite::sigmoid_table_uint16[uh];
    const uint32_t ub = tflite::sigmoid_table_uint16[uh + 1];
    r = (ua << 8) + (a & 0xFFu) * (ub - ua);
  }
  // v >= 0: r - 2^23 + 2^7; else -r + 2^23 + 2^7 - 1 = ~r + 2^23 + 2^7; then an arithmetic shift
  const uint32_t negative = static_cast<uint32_t>(v >> 31);
  r = (r ^ negative) + (1u << 7) - (1u << 23) + (negative & (1u << 24));
  return static_cast<int16_t>(static_cast<int32_t>(r) >> 8);
}

// One gate's input: its two matmul sums requantized to Q3.12 and added, each saturated.
inline int32_t GateInput(const OpData& d, int g, int32_t in_sum, int32_t rec_sum) {
  return Saturate16(Saturate16(Requantize(in_sum, d.input_fc[g])) +
                    Saturate16(Requantize(rec_sum, d.recurrent_fc[g])));
}

// The gates, cell and hidden state of one unit from its eight matmul sums (input and recurrent,
// gate g's at [g * stride], biases included). Updates the cell state; returns the new hidden
// state. (The gates are written out: GCC 7, the board's compiler, has no #pragma GCC unroll.)
inline int8_t UnitStep(const OpData& d, const int32_t* in_sum, const int32_t* rec_sum, int stride,
                       int16_t* cell) {
  const int32_t i = Sigmoid(GateInput(d, kInputGate, in_sum[0], rec_sum[0]));
  const int32_t f = Sigmoid(GateInput(d, kForgetGate, in_sum[stride], rec_sum[stride]));
  const int32_t g =  // Q3.12 in: (3 x) >> 0
      Tanh(GateInput(d, kCellGate, in_sum[2 * stride], rec_sum[2 * stride]), 3, 0, 0);
  const int32_t o = Sigmoid(GateInput(d, kOutputGate, in_sum[3 * stride], rec_sum[3 * stride]));
  int32_t c = Saturate16(Saturate16(Requantize(f * *cell, d.forget_cell)) +
                         Saturate16(Requantize(i * g, d.input_cell)));
  if (d.cell_clip > 0) {
    c = c > d.cell_clip ? d.cell_clip : (c < -d.cell_clip ? -d.cell_clip : c);
  }
  *cell = static_cast<int16_t>(c);
  const int32_t t = Tanh(c, d.cell_tanh_multiplier, d.cell_tanh_shift, d.cell_tanh_round);
  int32_t h = d.hidden_zero_point + Requantize(t * o, d.hidden);
  h = h < INT8_MIN ? INT8_MIN : (h > INT8_MAX ? INT8_MAX : h);
  return static_cast<int8_t>(h);
}

// sum(v + offset) over n int8 values, for weight tensors with a zero point.
inline int32_t OffsetSum(const int8_t* v, int n, int32_t offset) {
  int32_t s = 0;
  for (int k = 0; k < n; ++k) s += v[k] + offset;
  return s;
}

// --- the scalar path: int8 values read directly -------------------------------------------------

// sum[g] += w[g][k] * (v[k] + offset) over one row of each gate; w[g] move to the next row.
inline void Dot4Scalar(const int8_t** w, const int8_t* v, int n, int32_t offset, int32_t* sum) {
  uint32_t s0 = static_cast<uint32_t>(sum[0]), s1 = static_cast<uint32_t>(sum[1]);
  uint32_t s2 = static_cast<uint32_t>(sum[2]), s3 = static_cast<uint32_t>(sum[3]);
  const int8_t* w0 = w[0];
  const int8_t* w1 = w[1];
  const int8_t* w2 = w[2];
  const int8_t* w3 = w[3];
  for (int k = 0; k < n; ++k) {
    const int32_t x = v[k] + offset;
    s0 += static_cast<uint32_t>(w0[k] * x);
    s1 += static_cast<uint32_t>(w1[k] * x);
    s2 += static_cast<uint32_t>(w2[k] * x);
    s3 += static_cast<uint32_t>(w3[k] * x);
  }
  w[0] = w0 + n;
  w[1] = w1 + n;
  w[2] = w2 + n;
  w[3] = w3 + n;
  sum[0] = static_cast<int32_t>(s0);
  sum[1] = static_cast<int32_t>(s1);
  sum[2] = static_cast<int32_t>(s2);
  sum[3] = static_cast<int32_t>(s3);
}

#if TINYHAR_SIMD
// --- the SIMD path: values widened to int16 once per timestep ----------------------------------

// The widened values v[k] + offset (WidenedWords).
inline void Widen(const int8_t* v, int n, int32_t offset, uint32_t* out) {
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    *out++ = static_cast<uint16_t>(v[k] + offset) |
             static_cast<uint32_t>(static_cast<uint16_t>(v[k + 2] + offset)) << 16;
    *out++ = static_cast<uint16_t>(v[k + 1] + offset) |
             static_cast<uint32_t>(static_cast<uint16_t>(v[k + 3] + offset)) << 16;
  }
  for (; k < n; ++k) *out++ = static_cast<uint32_t>(v[k] + offset);
}

// One group of four widened values x times four weights of each of the rows a, a + stride
// (next = stride - 4 after a's post-increment), b and b + stride.
#define TINYHAR_LSTM_DOT2X2_GROUP()                     \
  do {                                                  \
    uint32_t even, odd;                                 \
    tinyhar_read_u32x2_ia(&x, &even, &odd);             \
    uint32_t q = tinyhar_read_s8x4_ia(&a);              \
    s0 = tinyhar_smlad(tinyhar_sxtb16(q), even, s0);    \
    s0 = tinyhar_smlad(tinyhar_sxtb16_ror8(q), odd, s0); \
    q = tinyhar_read_s8x4(a + next);                    \
    s1 = tinyhar_smlad(tinyhar_sxtb16(q), even, s1);    \
    s1 = tinyhar_smlad(tinyhar_sxtb16_ror8(q), odd, s1); \
    q = tinyhar_read_s8x4_ia(&b);                       \
    s2 = tinyhar_smlad(tinyhar_sxtb16(q), even, s2);    \
    s2 = tinyhar_smlad(tinyhar_sxtb16_ror8(q), odd, s2); \
    q = tinyhar_read_s8x4(b + next);                    \
    s3 = tinyhar_smlad(tinyhar_sxtb16(q), even, s3);    \
    s3 = tinyhar_smlad(tinyhar_sxtb16_ror8(q), odd, s3); \
  } while (0)

// s[0..3] = s0..s3 + the rows a, a + stride, b, b + stride of int8 weights times the n widened
// values x.
// Four rows share each load of x, and two row pointers and a stride leave the loop the registers
// it needs: 23 instructions per 16 multiply-adds. (Unrolled, GCC 12 spills two registers.)
__attribute__((always_inline)) inline void Dot2x2(const int8_t* a, const int8_t* b, int stride,
                                                  const uint32_t* x, int n, int32_t s0, int32_t s1,
                                                  int32_t s2, int32_t s3, int32_t* s) {
  const int next = stride - 4;  // from a row's word just read to the next row's
  for (int k = n >> 2; k != 0; --k) TINYHAR_LSTM_DOT2X2_GROUP();
  for (int k = 0; k < (n & 3); ++k) {  // in uint32: sums wrap as the reference's int32 ones do
    const uint32_t v = x[k];
    s0 = static_cast<int32_t>(static_cast<uint32_t>(s0) + static_cast<uint32_t>(a[k]) * v);
    s1 = static_cast<int32_t>(static_cast<uint32_t>(s1) +
                              static_cast<uint32_t>(a[stride + k]) * v);
    s2 = static_cast<int32_t>(static_cast<uint32_t>(s2) + static_cast<uint32_t>(b[k]) * v);
    s3 = static_cast<int32_t>(static_cast<uint32_t>(s3) +
                              static_cast<uint32_t>(b[stride + k]) * v);
  }
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
}
#undef TINYHAR_LSTM_DOT2X2_GROUP
#endif  // TINYHAR_SIMD

// The weights and biases of the op, for Eval.
struct Operands {
  const int8_t* input_weights[kGates];
  const int8_t* recurrent_weights[kGates];
  const int32_t* bias[kGates];
};

// What the gate sums start from besides the bias: for weights with a zero point zw (0 for the
// converter's symmetric weights), sum (w - zw)(v - zv) = sum w (v - zv) - zw sum (v - zv), the
// second sum taken once per timestep.
struct Bases {
  uint32_t input[kGates];  // uint32: sums wrap as the reference's int32 ones do
  uint32_t recurrent[kGates];
};

Bases MakeBases(const OpData& d, const int8_t* x, const int8_t* h) {
  const uint32_t x_sum = static_cast<uint32_t>(OffsetSum(x, d.inputs, d.input_offset));
  const uint32_t h_sum = static_cast<uint32_t>(OffsetSum(h, d.units, d.hidden_offset));
  Bases b;
  for (int g = 0; g < kGates; ++g) {
    b.input[g] = static_cast<uint32_t>(d.input_weight_offset[g]) * x_sum;
    b.recurrent[g] = static_cast<uint32_t>(d.recurrent_weight_offset[g]) * h_sum;
  }
  return b;
}

// One timestep of one batch on the scalar path: x and the state (h, c) -> the new h in out and h.
void StepScalar(const OpData& d, const Operands& ops, const int8_t* x, int8_t* h, int16_t* c,
                int8_t* out) {
  const Bases base = MakeBases(d, x, h);
  const int8_t* w[kGates];
  const int8_t* u[kGates];
  for (int g = 0; g < kGates; ++g) {
    w[g] = ops.input_weights[g];
    u[g] = ops.recurrent_weights[g];
  }
  for (int r = 0; r < d.units; ++r) {
    int32_t in_sum[kGates];
    int32_t rec_sum[kGates];
    for (int g = 0; g < kGates; ++g) {
      in_sum[g] = static_cast<int32_t>(base.input[g] + static_cast<uint32_t>(ops.bias[g][r]));
      rec_sum[g] = static_cast<int32_t>(base.recurrent[g]);
    }
    Dot4Scalar(w, x, d.inputs, d.input_offset, in_sum);
    Dot4Scalar(u, h, d.units, d.hidden_offset, rec_sum);
    out[r] = UnitStep(d, in_sum, rec_sum, 1, c + r);
  }
  memcpy(h, out, static_cast<size_t>(d.units));  // h was read to the end: update it now
}

#if TINYHAR_SIMD
// The matmul sums of gates g and g + 1 for units r and r + next ([gate][unit]).
__attribute__((always_inline)) inline void GatePairSums(const Operands& ops, const Bases& base,
                                                        int g, int r, int next,
                                                        const uint32_t* x_wide, int ni,
                                                        const uint32_t* h_wide, int nu,
                                                        int32_t (*in_sum)[2],
                                                        int32_t (*rec_sum)[2]) {
  const int32_t* bias_a = ops.bias[g] + r;
  const int32_t* bias_b = ops.bias[g + 1] + r;
  const uint32_t in_a = base.input[g];
  const uint32_t in_b = base.input[g + 1];
  Dot2x2(ops.input_weights[g] + r * ni, ops.input_weights[g + 1] + r * ni, next * ni, x_wide, ni,
         static_cast<int32_t>(in_a + static_cast<uint32_t>(bias_a[0])),
         static_cast<int32_t>(in_a + static_cast<uint32_t>(bias_a[next])),
         static_cast<int32_t>(in_b + static_cast<uint32_t>(bias_b[0])),
         static_cast<int32_t>(in_b + static_cast<uint32_t>(bias_b[next])), in_sum[g]);
  const int32_t rec_a = static_cast<int32_t>(base.recurrent[g]);
  const int32_t rec_b = static_cast<int32_t>(base.recurrent[g + 1]);
  Dot2x2(ops.recurrent_weights[g] + r * nu, ops.recurrent_weights[g + 1] + r * nu, next * nu,
         h_wide, nu, rec_a, rec_a, rec_b, rec_b, rec_sum[g]);
}

// One timestep of one batch on the SIMD path, two units at a time. x and h are widened first, so
// the new h can be written as it comes.
__attribute__((noinline)) void StepSimd(const OpData& d, const Operands& ops, const int8_t* x,
                                        int8_t* h, int16_t* c, int8_t* out, uint32_t* x_wide,
                                        uint32_t* h_wide) {
  const Bases base = MakeBases(d, x, h);
  Widen(x, d.inputs, d.input_offset, x_wide);
  Widen(h, d.units, d.hidden_offset, h_wide);
  const int ni = d.inputs;
  const int nu = d.units;
  for (int r = 0; r < nu; r += 2) {
    // An odd last unit is computed twice (stride 0), its copy dropped.
    const int next = r + 1 < nu ? 1 : 0;
    // [gate][unit]: Dot2x2 fills two gates' rows of two units
    int32_t in_sum[kGates][2];
    int32_t rec_sum[kGates][2];
    // Gates i and f, then c and o (written out: GCC 7 has no #pragma GCC unroll).
    GatePairSums(ops, base, kInputGate, r, next, x_wide, ni, h_wide, nu, in_sum, rec_sum);
    GatePairSums(ops, base, kCellGate, r, next, x_wide, ni, h_wide, nu, in_sum, rec_sum);
    h[r] = out[r] = UnitStep(d, &in_sum[0][0], &rec_sum[0][0], 2, c + r);
    if (next) {
      h[r + 1] = out[r + 1] = UnitStep(d, &in_sum[0][1], &rec_sum[0][1], 2, c + r + 1);
    }
  }
}
#endif  // TINYHAR_SIMD

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  const OpData& d = *static_cast<const OpData*>(node->user_data);
  Operands ops;
  for (int g = 0; g < kGates; ++g) {
    const TfLiteEvalTensor* w = tflite::micro::GetEvalInput(context, node, kInputWeights + g);
    const TfLiteEvalTensor* u =
        tflite::micro::GetEvalInput(context, node, kRecurrentWeights + g);
    const TfLiteEvalTensor* b = tflite::micro::GetEvalInput(context, node, kBias + g);
    TF_LITE_ENSURE(context, w != nullptr && u != nullptr && b != nullptr);
    ops.input_weights[g] = tflite::micro::GetTensorData<int8_t>(w);
    ops.recurrent_weights[g] = tflite::micro::GetTensorData<int8_t>(u);
    ops.bias[g] = tflite::micro::GetTensorData<int32_t>(b);
  }
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, kInput);
  TfLiteEvalTensor* hidden = tflite::micro::GetMutableEvalInput(context, node, kHiddenState);
  TfLiteEvalTensor* cell = tflite::micro::GetMutableEvalInput(context, node, kCellState);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, kOutput);
  TF_LITE_ENSURE(context,
                 input != nullptr && hidden != nullptr && cell != nullptr && output != nullptr);
  const int8_t* x = tflite::micro::GetTensorData<int8_t>(input);
  int8_t* h = tflite::micro::GetTensorData<int8_t>(hidden);
  int16_t* c = tflite::micro::GetTensorData<int16_t>(cell);
  int8_t* out = tflite::micro::GetTensorData<int8_t>(output);
  uint32_t* x_wide = nullptr;
  uint32_t* h_wide = nullptr;
  if (d.input_buffer >= 0) {
    x_wide = static_cast<uint32_t*>(context->GetScratchBuffer(context, d.input_buffer));
    h_wide = static_cast<uint32_t*>(context->GetScratchBuffer(context, d.hidden_buffer));
    TF_LITE_ENSURE(context, x_wide != nullptr && h_wide != nullptr);
  }

  // Batches are independent sequences: each runs through its timesteps with its own state.
  for (int b = 0; b < d.batches; ++b) {
    for (int t = 0; t < d.steps; ++t) {
      const int row = d.time_major ? t * d.batches + b : b * d.steps + t;
      const int8_t* xt = x + row * d.inputs;
      int8_t* ot = out + row * d.units;
      int8_t* hb = h + b * d.units;
      int16_t* cb = c + b * d.units;
#if TINYHAR_SIMD
      if (x_wide != nullptr) {
        StepSimd(d, ops, xt, hb, cb, ot, x_wide, h_wide);
        continue;
      }
#endif
      StepScalar(d, ops, xt, hb, cb, ot);
    }
  }
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_UNIDIRECTIONAL_SEQUENCE_LSTM() {
  return tflite::micro::RegisterOp(Init, Prepare, Eval);
}

}  // namespace tinyhar
