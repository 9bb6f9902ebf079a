"""The on-device agent: a model reads sensors and drives actuators as tools, under a policy, into an audit log.

    from edge_os.agent import Agent, AuditLog, Policy, from_device
    agent = Agent(engine, from_device(device), Policy.load("policy.toml"), AuditLog("audit.jsonl"))
    result = agent.run("Turn the fan to half speed")

See docs/agent.md.
"""

from edge_os.agent.audit import AuditLog
from edge_os.agent.loop import Agent, AgentResult, Step
from edge_os.agent.model import ChatModel, EngineModel, SchedulerModel
from edge_os.agent.policy import ActuatorRule, Policy, PolicyState
from edge_os.agent.tools import AgentTool, from_device, tool

__all__ = ["ActuatorRule", "Agent", "AgentResult", "AgentTool", "AuditLog", "ChatModel", "EngineModel", "Policy",
           "PolicyState", "SchedulerModel", "Step", "from_device", "tool"]
