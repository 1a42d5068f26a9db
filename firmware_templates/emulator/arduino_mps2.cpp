/*
 * arduino_mps2.cpp - the Arduino layer of tinyhar's emulated board on QEMU's mps2-an386.
 *
 * Serial is the CMSDK APB UART0: polled transmit, interrupt-driven receive into a buffer. Time is
 * SysTick on the 25 MHz CPU clock with a 1 ms interrupt: under `qemu-system-arm -icount shift=0`
 * one instruction takes 1 ns of virtual time, so micros() counts virtual microseconds and a
 * latency of N us is about N * 1000 instructions. Between loop() calls the board sleeps (WFI)
 * until the next interrupt when nothing was received; QEMU lets virtual time follow real time
 * while it sleeps, so the IMU replay and the prediction stream run at about real-time pace.
 */
#include <Arduino.h>

#include "mps2_an386.h"

UartSerial Serial;

/* ---- time ------------------------------------------------------------------------------- */

static volatile uint32_t g_ms;  // SysTick interrupts since start (one per millisecond)

extern "C" void tinyhar_emu_time_init(void)
{
    MPS2_SYST_RVR = MPS2_SYSTICK_RELOAD;
    MPS2_SYST_CVR = 0u;
    MPS2_SYST_CSR = MPS2_SYST_CSR_ENABLE | MPS2_SYST_CSR_TICKINT | MPS2_SYST_CSR_CLKSOURCE;
    MPS2_TIMER0_RELOAD = 0xFFFFFFFFu;
    MPS2_TIMER0_VALUE = 0xFFFFFFFFu;
    MPS2_TIMER0_CTRL = MPS2_TIMER_CTRL_EN;
}

extern "C" void SysTick_Handler(void)
{
    g_ms = g_ms + 1u;
}

/* Milliseconds since start and the SysTick ticks into the current one, read consistently. */
static void now(uint32_t *ms_out, uint32_t *ticks_out)
{
    uint32_t ms, val, pending;
    do {
        ms = g_ms;
        val = MPS2_SYST_CVR;
        pending = MPS2_SCB_ICSR & MPS2_SCB_ICSR_PENDSTSET;
    } while (ms != g_ms);
    if (pending != 0u && val > MPS2_SYSTICK_RELOAD / 2u) {
        ms++;  // the counter wrapped after g_ms was read and before its interrupt ran
    }
    /* QEMU can show the reloaded counter a few instructions before it marks the interrupt
       pending: time would step back a millisecond. Time never goes back. */
    static uint64_t last;
    const uint64_t per_ms = (uint64_t)MPS2_SYSTICK_RELOAD + 1u;
    uint64_t total = (uint64_t)ms * per_ms + (MPS2_SYSTICK_RELOAD - val);
    if (total < last) {
        ms++;
        total += per_ms;
    }
    last = total;
    *ms_out = ms;
    *ticks_out = MPS2_SYSTICK_RELOAD - val;
}

extern "C" unsigned long micros(void)
{
    uint32_t ms, ticks;
    now(&ms, &ticks);
    return (unsigned long)(ms * 1000u + ticks / MPS2_TICKS_PER_US);
}

/* Virtual nanoseconds since start: under -icount shift=0, instructions (40 per SysTick tick). The
   runner's profiler reads it (TINYHAR_PROFILE). */
/* Nanoseconds (= instructions under -icount shift=0), modulo 2^32: timer 0's ticks of 40 ns. */
extern "C" uint32_t tinyhar_profile_clock(void)
{
    return (0xFFFFFFFFu - MPS2_TIMER0_VALUE) * (1000u / MPS2_TICKS_PER_US);
}

extern "C" unsigned long millis(void)
{
    return (unsigned long)g_ms;
}

extern "C" void delayMicroseconds(unsigned int us)
{
    const uint32_t start = (uint32_t)micros();
    while ((uint32_t)micros() - start < (uint32_t)us) {
    }
}

extern "C" void delay(unsigned long ms)
{
    const uint32_t start = (uint32_t)micros();
    while ((uint32_t)micros() - start < (uint32_t)ms * 1000u) {
    }
}

/* ---- pins: the MPS2's user LEDs are not wired to anything a host sees ---------------------- */

static uint8_t g_pins[64];

extern "C" void pinMode(uint8_t pin, uint8_t mode)
{
    (void)pin;
    (void)mode;
}

extern "C" void digitalWrite(uint8_t pin, uint8_t value)
{
    g_pins[pin % sizeof g_pins] = value != 0u ? HIGH : LOW;
}

extern "C" int digitalRead(uint8_t pin)
{
    return g_pins[pin % sizeof g_pins];
}

/* ---- Print -------------------------------------------------------------------------------- */

size_t Print::write(const uint8_t *data, size_t len)
{
    size_t n = 0;
    while (n < len && write(data[n]) == 1u) {
        n++;
    }
    return n;
}

size_t Print::print(unsigned long n, int base)
{
    char buf[8 * sizeof(unsigned long) + 1];
    char *p = &buf[sizeof buf - 1];
    *p = '\0';
    if (base < 2 || base > 36) {
        base = 10;
    }
    do {
        const unsigned long digit = n % (unsigned long)base;
        *--p = (char)(digit < 10u ? '0' + digit : 'A' + digit - 10u);
        n /= (unsigned long)base;
    } while (n != 0u);
    return write(p);
}

size_t Print::print(long n, int base)
{
    if (n < 0 && base == 10) {
        return print('-') + print((unsigned long)0u - (unsigned long)n, 10);
    }
    return print((unsigned long)n, base);
}

size_t Print::print(double x, int digits)
{
    if (isnan(x)) {
        return print("nan");
    }
    if (isinf(x)) {
        return print(x < 0 ? "-inf" : "inf");
    }
    size_t n = 0;
    if (x < 0.0) {
        n += print('-');
        x = -x;
    }
    double rounding = 0.5;
    for (int i = 0; i < digits; i++) {
        rounding /= 10.0;
    }
    x += rounding;
    const unsigned long whole = (unsigned long)x;
    n += print(whole, 10);
    if (digits > 0) {
        n += print('.');
    }
    double rest = x - (double)whole;
    for (int i = 0; i < digits; i++) {
        rest *= 10.0;
        const unsigned int d = (unsigned int)rest;
        n += print((char)('0' + d));
        rest -= d;
    }
    return n;
}

/* ---- Serial on UART0 ---------------------------------------------------------------------- */

/* Received bytes: the receive interrupt moves them from the UART (which holds one) into this
   buffer, as a board's serial driver does. When it is full the byte stays in the UART, so QEMU
   holds the rest in the pty: nothing is ever dropped. */
static volatile uint8_t g_rx[1024];
static volatile uint32_t g_rx_head;  // written by the interrupt
static volatile uint32_t g_rx_tail;  // written by the reader

static uint32_t rx_count(void)
{
    return (g_rx_head - g_rx_tail) % sizeof g_rx;
}

/* UART -> buffer while there is room; with interrupts masked, or from the interrupt. */
static void rx_pump(void)
{
    MPS2_UART0->INTR = MPS2_UART_INT_RX;
    while ((MPS2_UART0->STATE & MPS2_UART_STATE_RX_FULL) != 0u && rx_count() < sizeof g_rx - 1u) {
        g_rx[g_rx_head] = (uint8_t)MPS2_UART0->DATA;
        g_rx_head = (g_rx_head + 1u) % sizeof g_rx;
    }
}

extern "C" void UART0RX_Handler(void)
{
    rx_pump();
}

static uint32_t rx_available(void)
{
    if ((MPS2_UART0->STATE & MPS2_UART_STATE_RX_FULL) != 0u) {
        __asm__ volatile("cpsid i" ::: "memory");
        rx_pump();  // a byte left in the UART while the buffer was full
        __asm__ volatile("cpsie i" ::: "memory");
    }
    return rx_count();
}

extern "C" void tinyhar_emu_idle(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    if (rx_count() == 0u && (MPS2_UART0->STATE & MPS2_UART_STATE_RX_FULL) == 0u) {
        __asm__ volatile("dsb\n\twfi" ::: "memory");  // the next SysTick or received byte wakes us
    }
    __asm__ volatile("cpsie i\n\tisb" ::: "memory");
}

void UartSerial::begin(unsigned long baud)
{
    if (baud == 0u) {
        baud = 115200u;
    }
    uint32_t div = MPS2_SYSCLK_HZ / (uint32_t)baud;
    MPS2_UART0->BAUDDIV = div < 16u ? 16u : div;  // the CMSDK UART's minimum
    MPS2_UART0->CTRL = MPS2_UART_CTRL_TX_EN | MPS2_UART_CTRL_RX_EN | MPS2_UART_CTRL_RX_INTEN;
    MPS2_NVIC_ISER0 = 1u << MPS2_UART0_RX_IRQ;
}

int UartSerial::available()
{
    return (int)rx_available();
}

int UartSerial::read()
{
    if (rx_available() == 0u) {
        return -1;
    }
    const uint8_t c = g_rx[g_rx_tail];
    g_rx_tail = (g_rx_tail + 1u) % sizeof g_rx;
    return c;
}

int UartSerial::peek()
{
    return rx_available() != 0u ? g_rx[g_rx_tail] : -1;
}

size_t UartSerial::write(uint8_t b)
{
    tinyhar_emu_uart_putc(b);
    return 1;
}

size_t UartSerial::write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        tinyhar_emu_uart_putc(data[i]);
    }
    return len;
}

void UartSerial::flush()
{
    while ((MPS2_UART0->STATE & MPS2_UART_STATE_TX_FULL) != 0u) {
    }
}

/* Used by the fault handlers too (C linkage, no Serial object needed). */
extern "C" void tinyhar_emu_uart_putc(uint8_t b)
{
    if ((MPS2_UART0->CTRL & MPS2_UART_CTRL_TX_EN) == 0u) {
        MPS2_UART0->BAUDDIV = MPS2_SYSCLK_HZ / 115200u;
        MPS2_UART0->CTRL |= MPS2_UART_CTRL_TX_EN;
    }
    while ((MPS2_UART0->STATE & MPS2_UART_STATE_TX_FULL) != 0u) {
    }
    MPS2_UART0->DATA = b;
}

/* ---- C++ runtime and newlib hooks --------------------------------------------------------- */

extern "C" void __cxa_pure_virtual(void)
{
    tinyhar_emu_fatal("pure virtual function called");
}

extern "C" void _exit(int status)
{
    tinyhar_emu_fatal(status == 0 ? "exit(0)" : "exit/abort");
}

extern "C" void *_sbrk(ptrdiff_t incr)
{
    extern uint8_t __heap_start[], __heap_end[];
    static uint8_t *brk = __heap_start;
    if (incr < 0 || (size_t)(__heap_end - brk) < (size_t)incr) {
        tinyhar_emu_fatal("out of heap (_sbrk)");
    }
    uint8_t *prev = brk;
    brk += incr;
    return prev;
}
