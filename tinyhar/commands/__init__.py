"""The `tinyhar` commands, one module per command or group; `options` words the shared ones."""
