/* Minimal Cortex-M4F start-up for QEMU's mps2-an386: vector table, FPU on, .data/.bss, main(). */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

typedef struct {
    void *initial_sp;
    void (*handlers[15])(void);
} vector_table_t;

__attribute__((section(".isr_vector"), used)) const vector_table_t vector_table = {
    &_estack,
    {Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, 0, 0,
     0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler}};

static void semihost_exit(uint32_t reason)
{
    register uint32_t r0 __asm__("r0") = 0x18u;
    register uint32_t r1 __asm__("r1") = reason;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

void Fault_Handler(void)
{
    semihost_exit(0x20023u); /* QEMU exits with status 1 */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst;
    /* full access to CP10 and CP11 (the FPU) before any floating-point instruction */
    SCB_CPACR |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    semihost_exit(main() == 0 ? 0x20026u : 0x20023u);
    for (;;) {
    }
}
