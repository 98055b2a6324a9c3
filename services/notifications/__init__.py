"""Notifications: Telegram (the bot's HTTP client, the outbox, linking and commands, what to tell and when)."""
