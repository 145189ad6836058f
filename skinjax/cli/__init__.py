"""What the commands share: flags with one-line errors, and the config value
checks they run before any data or compile work."""
