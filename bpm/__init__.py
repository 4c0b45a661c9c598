"""Domain core and engine adapter of the BPMN process server (no web or queue framework in here)."""
