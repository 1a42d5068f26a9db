// STAND-IN for Arduino_LSM9DS1's Arduino_LSM9DS1.h: the IMU API the generated sketch uses (syntax checks only).
#ifndef TINYHAR_STAND_IN_LSM9DS1
#define TINYHAR_STAND_IN_LSM9DS1
class LSM9DS1Class {
public:
    int begin();
    int accelerationAvailable();
    int gyroscopeAvailable();
    int readAcceleration(float &x, float &y, float &z);
    int readGyroscope(float &x, float &y, float &z);
    float accelerationSampleRate();
    float gyroscopeSampleRate();
};
extern LSM9DS1Class IMU;
#endif
