"""What the tests share: factories of models and logs, training helpers, servers and a browser."""
