"""Resource models (desired state, policy, config), YAML loading with line numbers, validation."""
