/* Edge bridge reference firmware for an Arduino Uno or Nano (ATmega328P, 5 V).
 *
 * The protocol core (firmware/core, copied into src/ by `make -C firmware_bridge arduino`) does
 * everything on the wire; this file is only the board layer: which pins, which conversions.
 *
 * Wiring:
 *   A0   TMP36 temperature sensor output (10 mV per degree C, 500 mV at 0 degrees C)
 *   A1   HIH-4030 humidity sensor output (powered from 5 V)
 *   A2   light: photoresistor from 5 V to A2, 10 kOhm from A2 to GND
 *   D2   push button to GND (internal pull-up; pressed reads 1)
 *   D13  LED (the on-board one)
 *   D7   relay module input
 *   D9   fan through a logic-level MOSFET, PWM 0..255
 */
#include <Arduino.h>

#include "src/ebp_device.h"

enum { TEMPERATURE, HUMIDITY, LIGHT, BUTTON };
enum { LED, RELAY, FAN };

static const uint8_t PIN_TEMPERATURE = A0;
static const uint8_t PIN_HUMIDITY = A1;
static const uint8_t PIN_LIGHT = A2;
static const uint8_t PIN_BUTTON = 2;
static const uint8_t PIN_LED = 13;
static const uint8_t PIN_RELAY = 7;
static const uint8_t PIN_FAN = 9; /* a Timer1 PWM pin */

static const ebp_sensor_t sensors[] = {
    {TEMPERATURE, "temperature", "\xc2\xb0" "C", -40.0f, 125.0f},
    {HUMIDITY, "humidity", "%RH", 0.0f, 100.0f},
    {LIGHT, "light", "%", 0.0f, 100.0f},
    {BUTTON, "button", "", 0.0f, 1.0f},
};

static const int32_t on_off[] = {0, 1};

static const ebp_actuator_t actuators[] = {
    {LED, "led", "", EBP_ACT_SET, 0, 0, on_off, 2},
    {RELAY, "relay", "", EBP_ACT_SET, 0, 0, on_off, 2},
    {FAN, "fan", "pwm", EBP_ACT_RANGE, 0, 255, nullptr, 0},
};

static const ebp_caps_t caps = {"edge-bridge-uno", "1.0.0", sensors, 4, actuators, 3};

static float millivolts(uint8_t pin)
{
    return (float)analogRead(pin) * (5000.0f / 1023.0f);
}

static uint32_t board_now_ms(void *)
{
    return millis();
}

static bool board_read(void *, uint8_t id, float *value)
{
    switch (id) {
    case TEMPERATURE:
        *value = (millivolts(PIN_TEMPERATURE) - 500.0f) / 10.0f;
        return true;
    case HUMIDITY: /* datasheet: Vout = Vsupply * (0.0062 * RH + 0.16) */
        *value = constrain((millivolts(PIN_HUMIDITY) / 5000.0f - 0.16f) / 0.0062f, 0.0f, 100.0f);
        return true;
    case LIGHT:
        *value = (float)analogRead(PIN_LIGHT) * (100.0f / 1023.0f);
        return true;
    case BUTTON:
        *value = digitalRead(PIN_BUTTON) == LOW ? 1.0f : 0.0f;
        return true;
    default:
        return false;
    }
}

static bool board_set(void *, uint8_t id, int32_t value, uint16_t)
{
    switch (id) {
    case LED:
        digitalWrite(PIN_LED, value ? HIGH : LOW);
        return true;
    case RELAY:
        digitalWrite(PIN_RELAY, value ? HIGH : LOW);
        return true;
    case FAN:
        analogWrite(PIN_FAN, (int)value); /* the core already checked 0..255 */
        return true;
    default:
        return false;
    }
}

static void board_write(void *, const uint8_t *data, size_t len)
{
    Serial.write(data, len);
}

static const ebp_board_t board = {nullptr, board_now_ms, board_read, board_set, board_write};
static ebp_device_t device;

void setup()
{
    Serial.begin(115200);
    pinMode(PIN_BUTTON, INPUT_PULLUP);
    pinMode(PIN_LED, OUTPUT);
    pinMode(PIN_RELAY, OUTPUT);
    pinMode(PIN_FAN, OUTPUT);
    if (!ebp_device_init(&device, &caps, &board)) {
        for (;;) { /* capabilities too large for one payload: blink forever */
            digitalWrite(PIN_LED, !digitalRead(PIN_LED));
            delay(100);
        }
    }
    Serial.write((uint8_t)0); /* ends whatever partial frame the host saw during reset */
}

void loop()
{
    while (Serial.available() > 0) {
        uint8_t received = (uint8_t)Serial.read();
        ebp_device_feed(&device, &received, 1);
    }
    ebp_device_poll(&device);
}
