// STAND-IN for Arduino_BMI270_BMM150's Arduino_BMI270_BMM150.h: the IMU API the generated sketch uses (syntax checks only).
#ifndef TINYHAR_STAND_IN_BMI270
#define TINYHAR_STAND_IN_BMI270
class BoschSensorClass {
public:
    int begin();
    int accelerationAvailable();
    int gyroscopeAvailable();
    int readAcceleration(float &x, float &y, float &z);
    int readGyroscope(float &x, float &y, float &z);
    float accelerationSampleRate();
    float gyroscopeSampleRate();
};
extern BoschSensorClass IMU;
#endif
