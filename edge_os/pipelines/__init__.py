"""Sensor stream → TFLite model → action (an MQTT event, or a question to the LLM); see docs/tflite.md."""
