"""nextbest: command line, embedded Redis, process supervision and the demo simulator."""
