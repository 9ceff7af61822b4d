"""Redis connections, subscriptions and the cluster request engine."""
