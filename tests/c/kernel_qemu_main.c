/* The kernel harness (bmm_harness.cpp) on the emulated Cortex-M4F (QEMU mps2-an386, started by
   tests/c/startup_m4.c): runs the model of the generated kernel_case.h on its inputs and prints,
   over semihosting, the return code, the arena used, each run's output bytes in hex and each
   node's SysTick ticks (25 MHz: under -icount shift=0, 40 instructions per tick). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TINYHAR_SEMIHOSTING 1
#include "kernel_case.h"
#include "test_io.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_MASK 0xFFFFFFu

int bmm_run(const void *model_data, int ops, const int8_t *inputs, size_t input_bytes, int runs,
            int8_t *outputs, size_t output_bytes);
const char *bmm_log(void);
size_t bmm_arena_used(void);
void bmm_set_clock(uint32_t (*clock)(void), uint32_t mask);
int bmm_nodes(void);
const char *bmm_node_name(int node);
uint32_t bmm_node_ticks(int node);
extern void __libc_init_array(void);

/* __libc_init_array calls _init(); without crti.o (-nostartfiles) there is nothing to do. */
void _init(void)
{
}

/* SysTick counts down from SYST_MASK on the CPU clock: its complement counts up. */
static uint32_t systick_up(void)
{
    return SYST_MASK - SYST_CVR;
}

static char *put_str(char *p, const char *s)
{
    while (*s != '\0') {
        *p++ = *s++;
    }
    return p;
}

static char *put_dec(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

static void put_line(const char *key, uint32_t value)
{
    char line[64];
    char *p = put_str(line, key);
    *p++ = ' ';
    p = put_dec(p, value);
    *p++ = '\n';
    *p = '\0';
    io_puts(line);
}

static int8_t g_outputs[KERNEL_CASE_RUNS * KERNEL_CASE_OUTPUT_BYTES];

int main(void)
{
    static const char hex[] = "0123456789abcdef";
    static char line[2 * 64 + 8];
    __libc_init_array();
    SYST_RVR = SYST_MASK;
    SYST_CVR = 0u;
    SYST_CSR = 0x5u; /* ENABLE | CLKSOURCE (processor clock), no interrupt */
    bmm_set_clock(systick_up, SYST_MASK);

    const int rc = bmm_run(kernel_case_model, KERNEL_CASE_OPS, kernel_case_inputs,
                           sizeof kernel_case_inputs, KERNEL_CASE_RUNS, g_outputs,
                           sizeof g_outputs);
    put_line("rc", (uint32_t)rc);
    put_line("arena", (uint32_t)bmm_arena_used());
    if (rc != 0) {
        io_puts(bmm_log());
        io_puts("\n");
        io_exit(1);
    }
    /* the outputs, 64 bytes a line */
    for (size_t i = 0; i < sizeof g_outputs; i += 64) {
        char *p = put_str(line, "out ");
        for (size_t j = i; j < i + 64 && j < sizeof g_outputs; j++) {
            *p++ = hex[((uint8_t)g_outputs[j]) >> 4];
            *p++ = hex[((uint8_t)g_outputs[j]) & 0xFu];
        }
        *p++ = '\n';
        *p = '\0';
        io_puts(line);
    }
    for (int node = 0; node < bmm_nodes(); node++) {
        char key[48];
        char *p = put_str(key, "ticks ");
        p = put_dec(p, (uint32_t)node);
        *p++ = ' ';
        const char *name = bmm_node_name(node);
        for (int k = 0; k < 30 && name[k] != '\0'; k++) {
            *p++ = name[k];
        }
        *p = '\0';
        put_line(key, bmm_node_ticks(node));
    }
    io_puts("done\n");
    io_exit(0);
    return 0;
}
