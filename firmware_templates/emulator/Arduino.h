/*
 * Arduino.h - tinyhar's Arduino layer for QEMU's mps2-an386 (Cortex-M4F), the emulated board of
 * `tinyhar sim --emulate`. It declares the part of the Arduino API the generated sketch and the
 * TFLM library use: Serial on the CMSDK UART0, micros()/millis()/delay() on SysTick, and pin
 * stubs. arduino_mps2.cpp implements it. Not ARDUINO_ARCH_MBED: the TFLM library then brings its
 * own RingBufferN (system_ArduinoRingBuffer.h). Portable C/C++: the host build of the board's
 * TFLM (tinyhar/deploy/board_reference.py) compiles against these declarations too.
 */
#ifndef TINYHAR_EMU_ARDUINO_H
#define TINYHAR_EMU_ARDUINO_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x0
#define OUTPUT 0x1
#define INPUT_PULLUP 0x2
#define LED_BUILTIN 13

#ifdef __cplusplus
extern "C" {
#endif

typedef uint8_t byte;
typedef bool boolean;

unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
int digitalRead(uint8_t pin);

/* The sketch's entry points, called by the start-up code. */
void setup(void);
void loop(void);

#ifdef __cplusplus
}  // extern "C"

/* A small fixed-capacity String: what libraries use to build messages (Arduino_BMI270_BMM150's
   error texts). Longer text is cut, not allocated. */
class String {
public:
    String(const char *s = "") { set(s); }
    String(int n) { snprintf_(n); }
    String(long n) { snprintf_(n); }
    String(unsigned int n) { snprintf_((long)n); }
    String(unsigned long n) { snprintf_((long)n); }
    const char *c_str() const { return buf_; }
    size_t length() const { return strlen(buf_); }
    String &operator+=(const char *s)
    {
        size_t n = length();
        strncpy(buf_ + n, s, sizeof buf_ - 1 - n);
        buf_[sizeof buf_ - 1] = 0;
        return *this;
    }
    String &operator+=(const String &s) { return *this += s.c_str(); }
    friend String operator+(String a, const String &b) { return a += b; }
    friend String operator+(String a, const char *b) { return a += b; }
    friend String operator+(const char *a, const String &b) { return String(a) += b; }

private:
    void set(const char *s)
    {
        strncpy(buf_, s ? s : "", sizeof buf_ - 1);
        buf_[sizeof buf_ - 1] = 0;
    }
    void snprintf_(long n)
    {
        char tmp[24];
        size_t i = sizeof tmp - 1;
        unsigned long u = n < 0 ? 0ul - (unsigned long)n : (unsigned long)n;
        tmp[i] = 0;
        do {
            tmp[--i] = (char)('0' + u % 10u);
            u /= 10u;
        } while (u != 0u && i > 1);
        if (n < 0) {
            tmp[--i] = '-';
        }
        set(tmp + i);
    }
    char buf_[96];
};

/* Text and bytes out, as Arduino's Print: everything ends in write(uint8_t). */
class Print {
public:
    virtual size_t write(uint8_t b) = 0;
    virtual size_t write(const uint8_t *data, size_t len);
    size_t write(const char *s) { return s != NULL ? write((const uint8_t *)s, strlen(s)) : 0; }

    size_t print(const char *s) { return write(s); }
    size_t print(char c) { return write((uint8_t)c); }
    size_t print(int n, int base = 10) { return print((long)n, base); }
    size_t print(unsigned int n, int base = 10) { return print((unsigned long)n, base); }
    size_t print(long n, int base = 10);
    size_t print(unsigned long n, int base = 10);
    size_t print(double x, int digits = 2);

    size_t print(const String &s) { return print(s.c_str()); }
    size_t println(const String &s) { return println(s.c_str()); }
    size_t println(void) { return write("\r\n"); }
    size_t println(const char *s) { return print(s) + println(); }
    size_t println(char c) { return print(c) + println(); }
    size_t println(int n, int base = 10) { return print(n, base) + println(); }
    size_t println(unsigned int n, int base = 10) { return print(n, base) + println(); }
    size_t println(long n, int base = 10) { return print(n, base) + println(); }
    size_t println(unsigned long n, int base = 10) { return print(n, base) + println(); }
    size_t println(double x, int digits = 2) { return print(x, digits) + println(); }

    virtual void flush() {}
};

/* A byte source as well, as Arduino's Stream. */
class Stream : public Print {
public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int peek() = 0;
};

/* Serial: UART0 of the MPS2 (CMSDK APB UART at 0x40004000); QEMU puts it on a pty. */
class UartSerial : public Stream {
public:
    void begin(unsigned long baud);
    void end() {}
    int available() override;
    int read() override;
    int peek() override;
    size_t write(uint8_t b) override;
    size_t write(const uint8_t *data, size_t len) override;
    using Print::write;
    void flush() override;
    /* a UART is always there (a USB CDC port is only once the host opened it) */
    explicit operator bool() const { return true; }
};

extern UartSerial Serial;

#endif  // __cplusplus

#endif  // TINYHAR_EMU_ARDUINO_H
