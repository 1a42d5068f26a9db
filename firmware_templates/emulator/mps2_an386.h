/*
 * mps2_an386.h - the few registers of QEMU's mps2-an386 (Cortex-M4F, AN386) the emulated board
 * uses: CMSDK APB UART0, SysTick, SCB; and the layer's internal C functions.
 */
#ifndef TINYHAR_EMU_MPS2_AN386_H
#define TINYHAR_EMU_MPS2_AN386_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* QEMU's MPS2 machines clock the CPU, SysTick and the APB peripherals at 25 MHz. */
#define MPS2_SYSCLK_HZ 25000000u
#define MPS2_TICKS_PER_US (MPS2_SYSCLK_HZ / 1000000u)
#define MPS2_SYSTICK_RELOAD (MPS2_SYSCLK_HZ / 1000u - 1u) /* one interrupt per millisecond */

/* CMSDK APB UART (ARM DDI 0479): UART0 is QEMU's first serial port (-serial ...). */
typedef struct {
    volatile uint32_t DATA;    /* 0x00 RX byte (read) / TX byte (write) */
    volatile uint32_t STATE;   /* 0x04 bit0 TX full, bit1 RX full, bits2-3 overrun */
    volatile uint32_t CTRL;    /* 0x08 bit0 TX enable, bit1 RX enable, bits2-5 interrupts */
    volatile uint32_t INTR;    /* 0x0C interrupt status / clear */
    volatile uint32_t BAUDDIV; /* 0x10 clock divider, >= 16 */
} mps2_uart_t;

#define MPS2_UART0 ((mps2_uart_t *)0x40004000u)
#define MPS2_UART_STATE_TX_FULL 0x1u
#define MPS2_UART_STATE_RX_FULL 0x2u
#define MPS2_UART_CTRL_TX_EN 0x1u
#define MPS2_UART_CTRL_RX_EN 0x2u
#define MPS2_UART_CTRL_RX_INTEN 0x8u
#define MPS2_UART_INT_RX 0x2u
#define MPS2_UART0_RX_IRQ 0 /* external interrupt number of UART0's receive interrupt */

/* CMSDK APB timer 0 (ARM DDI 0479), free-running from 0xFFFFFFFF without interrupts: the
   profiler's clock, read straight from the emulated time (no interrupt that can lag). */
#define MPS2_TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)   /* bit0 enable */
#define MPS2_TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)  /* counts down at 25 MHz */
#define MPS2_TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)
#define MPS2_TIMER_CTRL_EN 0x1u

/* SysTick and the System Control Block (ARMv7-M) */
#define MPS2_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define MPS2_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define MPS2_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define MPS2_SYST_CSR_ENABLE 0x1u
#define MPS2_SYST_CSR_TICKINT 0x2u
#define MPS2_SYST_CSR_CLKSOURCE 0x4u /* 1: the CPU clock */
#define MPS2_NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define MPS2_SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define MPS2_SCB_ICSR_PENDSTSET (1u << 26)
#define MPS2_SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define MPS2_SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define MPS2_SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define MPS2_SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define MPS2_SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)

/* Start SysTick (1 ms interrupt on the CPU clock). */
void tinyhar_emu_time_init(void);
/* Between two loop() calls: sleep until the next interrupt unless a received byte waits. */
void tinyhar_emu_idle(void);
/* UART0's receive interrupt: move bytes into Serial's buffer. */
void UART0RX_Handler(void);
/* One byte out of UART0, enabling its transmitter if nobody did. */
void tinyhar_emu_uart_putc(uint8_t b);
/* Report a fatal condition on UART0 (and QEMU's semihosting console), then stop QEMU. */
void tinyhar_emu_fatal(const char *what) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TINYHAR_EMU_MPS2_AN386_H */
