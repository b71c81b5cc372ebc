"""The Radicale shell: the storage plugin, the PUT/ETag rule, reconcile over Radicale storage."""
