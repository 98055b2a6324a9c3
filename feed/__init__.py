"""The WebSocket market-data feed: OpenAlgo's streaming protocol on WEBSOCKET_HOST:WEBSOCKET_PORT, in a
process of its own (`python -m feed`, or a child of the web server: feed.process).

- protocol.py: the messages; server.py: connections, subscriptions, the hub, order updates;
- sources.py: the simulator (analyze mode, whose ticks also match resting paper orders) and the users'
  broker streams (live mode); bus.py: fan-out in-process or across processes and hosts through Redis.
"""
