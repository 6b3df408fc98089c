"""The Faust shell around the engine: app, tables, agents and web views."""
