// The LSTM harness on the Cortex-M4F under QEMU (mps2-an386, semihosting): runs the cases of the
// generated lstm_cases.h (tests/helpers/lstm_models.py) and prints, per case,
//   CASE <k> rc=<lstm_run's code> arena=<arena_used_bytes> ticks=<SysTick ticks in the LSTM op>
//   OUT <k> <output bytes in hex>   (one or more lines per run)
// then DONE. Under -icount shift=0 SysTick (25 MHz) advances one tick per 40 instructions.
#include <stddef.h>
#include <stdint.h>

#include "lstm_cases.h"
#include "lstm_harness.h"

namespace {

volatile uint32_t& kSystCsr = *reinterpret_cast<volatile uint32_t*>(0xE000E010u);
volatile uint32_t& kSystRvr = *reinterpret_cast<volatile uint32_t*>(0xE000E014u);
volatile uint32_t& kSystCvr = *reinterpret_cast<volatile uint32_t*>(0xE000E018u);
constexpr uint32_t kReload = 0xFFFFFFu;

int8_t g_out[LSTM_MAX_OUTPUT_BYTES];
char g_line[2 * 1024 + 32];

uint32_t Ticks() { return kReload - kSystCvr; }  // SysTick counts down

void Semihost(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

void Puts(const char* s) { Semihost(0x04, s); }  // SYS_WRITE0

char* PutStr(char* p, const char* s) {
  while (*s != '\0') *p++ = *s++;
  return p;
}

char* PutDec(char* p, uint32_t v) {
  char tmp[10];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

void PrintOutputs(int k, const int8_t* data, size_t bytes) {
  static const char kHex[] = "0123456789abcdef";
  for (size_t start = 0; start < bytes; start += 1024) {
    char* p = PutDec(PutStr(g_line, "OUT "), static_cast<uint32_t>(k));
    *p++ = ' ';
    for (size_t i = start; i < bytes && i < start + 1024; ++i) {
      const uint8_t b = static_cast<uint8_t>(data[i]);
      *p++ = kHex[b >> 4];
      *p++ = kHex[b & 0xFu];
    }
    *p++ = '\n';
    *p = '\0';
    Puts(g_line);
  }
}

}  // namespace

// C++ static constructors: tests/c/startup_m4.c does not run them, and without crti.o
// (-nostartfiles) __libc_init_array's _init has nothing to do.
extern "C" void __libc_init_array(void);
extern "C" void _init(void) {}

int main() {
  __libc_init_array();
  kSystRvr = kReload;
  kSystCvr = 0;
  kSystCsr = 0x5u;  // enabled, the CPU clock, no interrupt
  lstm_clock = Ticks;
  for (size_t k = 0; k < sizeof(kCases) / sizeof(kCases[0]); ++k) {
    const LstmCase& c = kCases[k];
    const int rc = lstm_run(c.model, c.flags, c.inputs, c.input_bytes, c.runs, g_out,
                            c.output_bytes);
    char* p = PutDec(PutStr(g_line, "CASE "), static_cast<uint32_t>(k));
    p = PutDec(PutStr(p, " rc="), static_cast<uint32_t>(rc));
    p = PutDec(PutStr(p, " arena="), static_cast<uint32_t>(lstm_arena_used()));
    p = PutDec(PutStr(p, " ticks="), lstm_op_ticks());
    p = PutStr(p, "\n");
    *p = '\0';
    Puts(g_line);
    if (rc != kLstmOk) {
      Puts(lstm_log());
      Puts("\n");
      continue;
    }
    PrintOutputs(static_cast<int>(k), g_out, c.output_bytes);
  }
  Puts("DONE\n");
  return 0;
}
