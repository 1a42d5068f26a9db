// tinyhar_host.cpp: what the host build of the firmware's TFLM needs in place of the Arduino glue
// (the library's system_setup.cpp and peripherals/utility_arduino.cpp): logging and a clock.
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "peripherals/utility.h"

extern "C" void DebugLog(const char *s)
{
    fputs(s, stderr);
}

namespace peripherals {

uint32_t MicrosecondsCounter()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

uint32_t MillisecondsCounter()
{
    return MicrosecondsCounter() / 1000u;
}

}  // namespace peripherals
