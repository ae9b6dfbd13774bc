"""Speed and memory measurements that print figures (never timed tests)."""
