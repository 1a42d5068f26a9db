// tests/c/lstm_harness.cpp's interface (ctypes on the host, lstm_qemu_main.cpp on the M4F).
#ifndef TINYHAR_TESTS_LSTM_HARNESS_H_
#define TINYHAR_TESTS_LSTM_HARNESS_H_

#include <stddef.h>
#include <stdint.h>

// lstm_run's flags
enum LstmFlags {
  kLstmLibraryKernel = 1,  // the TFLM library's UNIDIRECTIONAL_SEQUENCE_LSTM, not tinyhar's
  kLstmKeepState = 2,      // no interpreter.Reset() between runs: the state carries over
};

// lstm_run's return codes
enum LstmStatus {
  kLstmOk = 0,
  kLstmBadModel = 1,
  kLstmRegisterFailed = 2,
  kLstmAllocateFailed = 3,
  kLstmWrongSizes = 4,
  kLstmInvokeFailed = 5,
};

// When set, the LSTM op's invoke is timed with it, a 24-bit up-counter (SysTick on the M4F):
// lstm_op_ticks() sums (end - start) mod 2^24 over the invokes of a run.
extern uint32_t (*lstm_clock)(void);

extern "C" {
// Runs `runs` invocations of the 16-byte aligned flatbuffer `model`. `inputs` holds each run's
// input tensors back to back in the model's input order; `outputs` receives output 0 per run.
int lstm_run(const void* model, int flags, const int8_t* inputs, size_t input_bytes, int runs,
             int8_t* outputs, size_t output_bytes);
const char* lstm_log(void);
void lstm_clear_log(void);
size_t lstm_arena_used(void);  // the last run's interpreter.arena_used_bytes()
uint32_t lstm_op_ticks(void);  // the last run's LSTM invoke time, in lstm_clock ticks
}

#endif  // TINYHAR_TESTS_LSTM_HARNESS_H_
