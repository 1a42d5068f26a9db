/* Output and exit for the test harnesses: stdio on the host, semihosting on the Cortex-M4 under
   QEMU (SYS_WRITE0 = 0x04, SYS_EXIT = 0x18 via BKPT 0xAB). */
#ifndef TINYHAR_TEST_IO_H
#define TINYHAR_TEST_IO_H

#ifdef TINYHAR_SEMIHOSTING
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void io_puts(const char *s)
{
    (void)semihost(0x04, s);
}
static void io_exit(int code)
{
    /* ADP_Stopped_ApplicationExit ends QEMU with status 0, RunTimeErrorUnknown with 1 */
    (void)semihost(0x18, (const void *)(code == 0 ? 0x20026 : 0x20023));
    for (;;) {
    }
}
#else
#include <stdio.h>
#include <stdlib.h>
static void io_puts(const char *s)
{
    fputs(s, stdout);
}
static void io_exit(int code)
{
    fflush(stdout);
    exit(code);
}
#endif

#endif
