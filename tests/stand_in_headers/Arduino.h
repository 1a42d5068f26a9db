// STAND-IN for the Arduino core's Arduino.h: only what the generated sketch uses (syntax checks).
#ifndef TINYHAR_STAND_IN_ARDUINO_H
#define TINYHAR_STAND_IN_ARDUINO_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HIGH 0x1
#define LOW 0x0
#define OUTPUT 0x1
#define LED_BUILTIN 13

class StandInSerial {
public:
    void begin(unsigned long baud);
    int available();
    int read();
    size_t write(const uint8_t *data, size_t len);
    explicit operator bool() const;
};
extern StandInSerial Serial;

unsigned long micros();
unsigned long millis();
void delay(unsigned long ms);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
#endif
