"""The MQTT bridge as a front door of `edge-os serve` (``edge_os.scheduler.service.FrontDoor``).

```python
doors = [MqttFrontDoor(bridge_config_from_args(args))] if args.mqtt else []
serve(options_from_args(args), front_doors=doors)
```
"""

from __future__ import annotations

from edge_os.mqtt.bridge import MqttBridge
from edge_os.mqtt.config import BridgeConfig
from edge_os.scheduler.api import SchedulerAPI


class MqttFrontDoor:
    """Starts an ``MqttBridge`` on the service's scheduler and stops it with the service."""

    name = "mqtt"

    def __init__(self, config: BridgeConfig, agent=None) -> None:
        self.config = config
        self.agent = agent  # an edge_os.api.agent_runs.AgentRuns: agent requests (edge_os.mqtt.agent_door)
        self.bridge: MqttBridge | None = None

    def start(self, scheduler: SchedulerAPI) -> None:
        self.bridge = MqttBridge(scheduler, self.config, agent=self.agent).start()

    def stop(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
