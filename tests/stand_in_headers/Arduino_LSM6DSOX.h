// STAND-IN for Arduino_LSM6DSOX's Arduino_LSM6DSOX.h: the IMU API the generated sketch uses (syntax checks only).
#ifndef TINYHAR_STAND_IN_LSM6DSOX
#define TINYHAR_STAND_IN_LSM6DSOX
class LSM6DSOXClass {
public:
    int begin();
    int accelerationAvailable();
    int gyroscopeAvailable();
    int readAcceleration(float &x, float &y, float &z);
    int readGyroscope(float &x, float &y, float &z);
    float accelerationSampleRate();
    float gyroscopeSampleRate();
};
extern LSM6DSOXClass IMU_LSM6DSOX;
#define IMU IMU_LSM6DSOX
#endif
