"""The OpenAI-compatible HTTP front door of ``edge-os serve --http`` (docs/http-api.md).

``HttpFrontDoor`` (in ``front_door``) runs a starlette app on uvicorn and submits every request
to the scheduler, like the MQTT bridge does. Only ``front_door`` and ``app`` import starlette and
uvicorn; the rest (address parsing, request validation, response shapes) is plain Python.
"""
