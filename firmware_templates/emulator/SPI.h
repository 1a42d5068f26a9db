/*
 * SPI.h - an SPI stub for tinyhar's emulated board: some IMU libraries' headers (Arduino_LSM6DSOX)
 * declare an SPI constructor; the emulated board has no SPI device, so every transfer reads 0.
 */
#ifndef TINYHAR_EMU_SPI_H
#define TINYHAR_EMU_SPI_H

#include <Arduino.h>

#define MSBFIRST 1
#define LSBFIRST 0
#define SPI_MODE0 0

class SPISettings {
public:
    SPISettings() {}
    SPISettings(uint32_t, uint8_t, uint8_t) {}
};

class SPIClass {
public:
    void begin() {}
    void end() {}
    void beginTransaction(SPISettings) {}
    void endTransaction() {}
    uint8_t transfer(uint8_t) { return 0; }
    void transfer(void *buf, size_t len) { memset(buf, 0, len); }
};

template <typename Unused>
struct TinyharEmuSpi {
    static SPIClass spi;
};
template <typename Unused>
SPIClass TinyharEmuSpi<Unused>::spi;
static SPIClass &SPI = TinyharEmuSpi<void>::spi;  // one object per program (see Wire.h)

#endif  // TINYHAR_EMU_SPI_H
