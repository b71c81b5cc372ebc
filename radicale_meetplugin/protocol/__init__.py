"""The decide -> call -> settle protocol, once for both shells, and the outbox that runs the calls."""
