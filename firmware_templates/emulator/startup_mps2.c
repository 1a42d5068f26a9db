/*
 * startup_mps2.c - start-up of tinyhar's emulated board (QEMU mps2-an386, Cortex-M4F): vector
 * table, FPU on, .data/.bss, SysTick, C++ static constructors, then the sketch's setup() and
 * loop() forever, sleeping between loops while nothing was received (see tinyhar_emu_idle).
 * Faults print one line on UART0 (and QEMU's semihosting console) and stop QEMU.
 */
#include <stdint.h>

#include "mps2_an386.h"

#define MPS2_IRQS 32 /* external interrupts of the AN386 (only SysTick is used) */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void __libc_init_array(void);
void setup(void);
void loop(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
void tinyhar_emu_fault_report(const uint32_t *frame, uint32_t exc_return);
void _init(void);

typedef void (*handler_t)(void);

/* The handle C++ registers static destructors under (__cxa_atexit); crtbegin.o defines it where
   start files are linked, the mbed core's start-up does on the board. */
void *__dso_handle = &__dso_handle;

__attribute__((section(".isr_vector"), used)) const handler_t g_vectors[16 + MPS2_IRQS] = {
    (handler_t)(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    UART0RX_Handler, /* IRQ 0 (MPS2_UART0_RX_IRQ) */
    [17 ... 16 + MPS2_IRQS - 1] = Default_Handler,
};

/* __libc_init_array calls _init(); without crti.o (-nostartfiles) there is nothing to do. */
void _init(void)
{
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst;
    /* full access to CP10 and CP11 (the FPU) before any floating-point instruction */
    MPS2_SCB_CPACR |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    tinyhar_emu_time_init();
    __libc_init_array();
    setup();
    for (;;) {
        loop();
        tinyhar_emu_idle(); /* as Arduino's main runs serialEventRun() between loops */
    }
}

/* ---- reporting ---------------------------------------------------------------------------- */

static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

static char *put_str(char *p, const char *s)
{
    while (*s != '\0') {
        *p++ = *s++;
    }
    return p;
}

static char *put_hex(char *p, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    p = put_str(p, "0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        *p++ = digits[(v >> shift) & 0xFu];
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

static void uart_line(const char *s)
{
    tinyhar_emu_uart_putc(0); /* end any half-sent frame: the host drops the text as garbage */
    while (*s != '\0') {
        tinyhar_emu_uart_putc((uint8_t)*s++);
    }
    tinyhar_emu_uart_putc('\n');
    tinyhar_emu_uart_putc(0);
}

void tinyhar_emu_fatal(const char *what)
{
    static char line[160];
    char *p = put_str(line, "tinyhar emulated board stopped: ");
    const char *end = line + sizeof line - 2;
    while (*what != '\0' && p < end) {
        *p++ = *what++;
    }
    *p = '\0';
    uart_line(line);
    /* QEMU closes the pty when it exits, and Linux drops what the host has not read by then:
       spin for about 10^8 instructions (a fraction of a second) so a busy host still reads it. */
    for (volatile uint32_t spin = 0u; spin < 30000000u; spin++) {
    }
    p[0] = '\n';
    p[1] = '\0';
    semihost(0x04u, line);                    /* SYS_WRITE0 to QEMU's console */
    semihost(0x18u, (const void *)0x20023u); /* SYS_EXIT (RunTimeErrorUnknown): QEMU exits 1 */
    for (;;) {
    }
}

/* The fault's exception number, PC, LR and fault status registers in one line. */
void tinyhar_emu_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    static char msg[144];
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    char *p = put_str(msg, "fault (exception ");
    p = put_dec(p, ipsr & 0x1FFu);
    p = put_str(p, ") pc=");
    p = put_hex(p, frame[6]);
    p = put_str(p, " lr=");
    p = put_hex(p, frame[5]);
    p = put_str(p, " cfsr=");
    p = put_hex(p, MPS2_SCB_CFSR);
    p = put_str(p, " hfsr=");
    p = put_hex(p, MPS2_SCB_HFSR);
    p = put_str(p, " bfar=");
    p = put_hex(p, MPS2_SCB_BFAR);
    p = put_str(p, " exc_return=");
    p = put_hex(p, exc_return);
    *p = '\0';
    tinyhar_emu_fatal(msg);
}

/* Hand the stacked frame (MSP or PSP, by EXC_RETURN bit 2) to the C reporter. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "b tinyhar_emu_fault_report\n\t");
}

void Default_Handler(void)
{
    tinyhar_emu_fatal("unexpected interrupt");
}
